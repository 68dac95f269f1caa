"""A deterministic generator that returns scripted outputs: tests and demos of the pipeline without a model.

`ScriptedGenerator(script)` calls `script(conversation)` for each conversation (a list of {"role", "content"}
messages) and returns its text, or its (text, finish_reason) pair. It speaks both the TextGenerator protocol
(`generate_texts`) and the OpenAI backend's `generate` (text + finish reason), so a SustainRun can use it in
place of an HTTP server (`SustainRun(..., backend_client=ScriptedGenerator(...))`), e.g. to script reasoning
models' thinking traces and answers.
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

from ..errors import InterpError

Script = Callable[[list[dict]], Union[str, tuple[str, str]]]


class ScriptedGenerator:
    """Outputs from a script; finish_reason "stop" unless the script says otherwise ("length" = out of tokens)."""

    def __init__(self, script: Script, model_id: str = "scripted"):
        self.script = script
        self.model_id = model_id
        self.calls: list[list[dict]] = []

    def generate(self, conversations: Sequence[list[dict]], max_new_tokens: int = 256, temperature: float = 0.0,
                 seed: int = 0, stop: Sequence[str] = ()) -> list[dict]:
        out = []
        for conv in conversations:
            self.calls.append(list(conv))
            r = self.script(list(conv))
            text, reason = (r, "stop") if isinstance(r, str) else r
            if reason not in ("stop", "length"):
                raise InterpError(f"scripted finish_reason must be 'stop' or 'length', got {reason!r}")
            out.append({"text": text, "finish_reason": reason, "usage": {}, "key": "", "cached": False})
        return out

    def generate_texts(self, conversations: Sequence[list[dict]], max_new_tokens: int = 256,
                       temperature: float = 0.0, seed: int = 0, stop: Sequence[str] = ()) -> list[str]:
        return [r["text"] for r in self.generate(conversations, max_new_tokens, temperature, seed, stop)]
