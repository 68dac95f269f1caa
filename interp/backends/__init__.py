"""Generation backends: the TextGenerator protocol, the local model and OpenAI-compatible HTTP servers."""
from __future__ import annotations

from .base import TextGenerator
from .openai_http import OpenAIChatBackend


def __getattr__(name: str):
    """`LocalGenerator` is imported on first use so the HTTP client does not pull in torch."""
    if name == "LocalGenerator":
        from .local import LocalGenerator

        return LocalGenerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LocalGenerator", "OpenAIChatBackend", "TextGenerator"]
