"""Chat prompts built from named parts, with the exact token span of every part.

A prompt is a list of `Part`s (task text, constraint sentence, context, ...). We render the
model's chat template, locate each part's characters in the rendered text, tokenize once with
offset mappings and map character ranges to token ranges. No token-subsequence search.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from .errors import InterpError

CONSTRAINT_PREFIX = "constraint_"
_CONSTRAINT_NAME = re.compile(r"^constraint_\d+$")


def constraint_parts(names: Iterable[str]) -> list[str]:
    """The part names that hold constraints (``constraint_<i>``), in order: what "constraints" means everywhere."""
    return [n for n in names if n.startswith(CONSTRAINT_PREFIX)]


def random_span(n_tokens: int, length: int, avoid: set[int], seed: int, key: object) -> range:
    """A contiguous `length`-token span of a `n_tokens`-token prompt that avoids the positions `avoid` and token 0,
    drawn reproducibly from (`seed`, `key`); empty when none fits or `length` is 0."""
    starts = [s for s in range(1, n_tokens - length + 1) if not avoid.intersection(range(s, s + length))]
    if not starts or length == 0:
        return range(0)
    import numpy as np

    h = int(hashlib.sha1(f"{seed}|{key}".encode()).hexdigest()[:8], 16)
    s = starts[np.random.default_rng(h).integers(len(starts))]
    return range(s, s + length)


@dataclass(frozen=True)
class Part:
    """A named piece of a chat prompt. Parts with the same role are joined with `sep` in order."""

    name: str
    text: str
    role: str = "user"
    sep: str = "\n\n"

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise InterpError(f"a Part needs a non-empty string name, got {self.name!r}")
        if self.name.lower().startswith("constraint") and not _CONSTRAINT_NAME.match(self.name):
            raise InterpError(f"part name {self.name!r} is not counted as a constraint: name constraint parts "
                              "constraint_0, constraint_1, ... (their union is the span 'constraints'), or give "
                              "the part a name that does not start with 'constraint'")


@dataclass
class Prompt:
    """A rendered prompt: text, token ids and, per part name, the half-open token span [start, end)."""

    text: str
    input_ids: list[int]
    spans: dict[str, tuple[int, int]]
    parts: list[Part] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "input_ids": self.input_ids,
            "spans": {k: list(v) for k, v in self.spans.items()},
            "parts": [asdict(p) for p in self.parts],
        }


def messages_from_parts(parts: Sequence[Part]) -> tuple[list[dict], dict[str, tuple[int, int, int]]]:
    """Join consecutive parts of the same role into one chat message (so multi-turn chats stay turns).

    Returns the messages and, per part, (message index, char start, char end) within that message.
    """
    messages: list[dict] = []
    where: dict[str, tuple[int, int, int]] = {}
    for p in parts:
        if p.name in where:
            raise InterpError(f"prompt part name {p.name!r} is used twice; part names must be unique")
        if not messages or messages[-1]["role"] != p.role:
            messages.append({"role": p.role, "content": ""})
        content = messages[-1]["content"]
        if content and p.text:
            content += p.sep
        start = len(content)
        content += p.text
        messages[-1]["content"] = content
        where[p.name] = (len(messages) - 1, start, len(content))
    return messages, where


def build_prompt(tokenizer, parts: Sequence[Part], add_generation_prompt: bool = True,
                 chat_template: bool = True, template_kwargs: dict | None = None) -> Prompt:
    """Render `parts` with the tokenizer's chat template and return ids plus each part's token span.

    `template_kwargs` go to the chat template (e.g. ``enable_thinking``, see interp.models.thinking)."""
    messages, where = messages_from_parts(parts)
    if chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                             **(template_kwargs or {}))
    else:
        text = "\n\n".join(m["content"] for m in messages)
    # locate each message's content in the rendered text, in order
    msg_offsets: list[int] = []
    cursor = 0
    for m in messages:
        idx = text.find(m["content"], cursor)
        if idx < 0:
            raise InterpError(
                "the chat template changed a message's text (e.g. stripped or escaped it), so part spans "
                "cannot be located; strip leading/trailing whitespace from prompt parts"
            )
        msg_offsets.append(idx)
        cursor = idx + len(m["content"])
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = enc["offset_mapping"]
    spans: dict[str, tuple[int, int]] = {}
    for name, (mi, a, b) in where.items():
        ca, cb = msg_offsets[mi] + a, msg_offsets[mi] + b
        spans[name] = char_span_to_token_span(offsets, text, ca, cb)
    return Prompt(text=text, input_ids=ids, spans=spans, parts=list(parts))


def char_span_to_token_span(offsets, text: str, ca: int, cb: int) -> tuple[int, int]:
    """Token range [s, e) of tokens whose characters overlap [ca, cb) in non-whitespace characters."""
    toks = []
    for i, (s, e) in enumerate(offsets):
        lo, hi = max(s, ca), min(e, cb)
        if lo < hi and text[lo:hi].strip():
            toks.append(i)
    if not toks:
        return (0, 0)
    return (toks[0], toks[-1] + 1)
