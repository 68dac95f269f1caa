"""The local hooked model as a TextGenerator (plain chat completions through our generation loop)."""
from __future__ import annotations

from typing import Sequence

from ..models.generation import GenConfig, generate
from ..models.thinking import PRESETS, ThinkingSpec, segment_generation
from ..prompts import Part, build_prompt


class LocalGenerator:
    """Chat completions from a LoadedModel; used for extraction/judging and anywhere hooks are not needed.

    A reasoning model's completion is its answer phase (`thinking`: the trace delimiters; None keeps the raw
    output), so an extractor or judge that thinks first is parsed on what it concluded."""

    def __init__(self, model, batch_size: int = 8, progress: bool = False,
                 thinking: ThinkingSpec | None = PRESETS["think"]):
        self.model = model
        self.thinking = thinking
        self.model_id = model.model_id
        self.batch_size = batch_size
        self.progress = progress

    def generate_texts(self, conversations: Sequence[list[dict]], max_new_tokens: int = 256,
                       temperature: float = 0.0, seed: int = 0, stop: Sequence[str] = ()) -> list[str]:
        prompts = [build_prompt(self.model.tokenizer,
                                [Part(f"m{i}", m["content"], role=m["role"]) for i, m in enumerate(conv)])
                   for conv in conversations]
        cfg = GenConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, stop=tuple(stop),
                        batch_size=self.batch_size)
        return [segment_generation(g, self.model.tokenizer, self.thinking).answer_text
                for g in generate(self.model, prompts, cfg, progress=self.progress)]
