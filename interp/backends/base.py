"""The generation-backend interface shared by the local hooked model and HTTP (OpenAI-compatible) servers."""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable


@runtime_checkable
class TextGenerator(Protocol):
    """Anything that turns chat conversations into completions (used for extraction/judging and plain runs)."""

    model_id: str

    def generate_texts(self, conversations: Sequence[list[dict]], max_new_tokens: int = 256,
                       temperature: float = 0.0, seed: int = 0, stop: Sequence[str] = ()) -> list[str]:
        """One completion per conversation (a list of {"role", "content"} messages), in order."""
        ...
