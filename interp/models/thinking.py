"""Thinking traces of reasoning models: delimiters, segmentation, think on/off, thinking budgets.

A reasoning model's output is a thinking trace followed by the answer the user sees
(``<think>...</think> answer`` for Qwen3 / DeepSeek-R1 distills / QwQ / OLMo think models; the
``analysis`` then ``final`` channels for gpt-oss). Everything that reads an output for what the user
sees (task scoring, constraint proposal and checks) reads the answer phase; the CAS analysis splits
generation steps by phase. Nothing here is active for a model that emits no delimiter: its whole
output is the answer and its records are unchanged.

Segmentation works on the raw decode (special tokens kept, since delimiters can be special tokens);
token ranges come from a binary search over prefix decodes, so a delimiter split over several tokens,
or merged into a token with neighbouring text, is still found. Phase of generation step t (the step
producing output token t): thinking for t < ``answer_start``, answer from there on, so the steps that
produce the end delimiter belong to the thinking phase.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import torch

from ..errors import InterpError
from ..probes.base import Capability, HookProvider, RowResult

THINKING_MODES = ("auto", "none", "think", "gpt-oss")
PHASE_SCOPES = ("answer", "output")


@dataclass(frozen=True)
class ThinkingSpec:
    """Delimiters of a thinking trace. `answer_start` (optional) marks where the answer begins after `end`;
    `force` is the text forced when a thinking budget runs out (default: `end` and a blank line)."""

    start: str
    end: str
    answer_start: str = ""
    force: str = ""

    @property
    def force_text(self) -> str:
        return self.force or self.end + "\n\n"


PRESETS = {
    "think": ThinkingSpec("<think>", "</think>"),
    "gpt-oss": ThinkingSpec("<|channel|>analysis<|message|>", "<|end|>", answer_start="<|channel|>final<|message|>",
                            force="<|end|><|start|>assistant<|channel|>final<|message|>"),
}


def thinking_spec(mode: str = "auto", delimiters: Sequence[str] | None = None) -> ThinkingSpec | None:
    """The spec of a config's `thinking` mode ("auto" detects `<think>` traces; "none" turns segmentation off)
    or of explicit `delimiters` [start, end] or [start, end, answer_start]."""
    if delimiters is not None:
        d = list(delimiters)
        if not 2 <= len(d) <= 3 or not all(isinstance(x, str) for x in d) or not d[0] or not d[1]:
            raise InterpError(f"thinking_delimiters must be [start, end] or [start, end, answer_start] "
                              f"non-empty strings, got {delimiters!r}")
        return ThinkingSpec(d[0], d[1], d[2] if len(d) == 3 else "")
    if mode not in THINKING_MODES:
        raise InterpError(f"unknown thinking mode {mode!r}; choose from {', '.join(THINKING_MODES)}")
    if mode == "none":
        return None
    return PRESETS["think" if mode == "auto" else mode]


def starts_in_thinking(prompt_text: str, spec: ThinkingSpec | None) -> bool:
    """True when the rendered prompt already opened the trace (R1-style templates end with ``<think>\\n``)."""
    return spec is not None and prompt_text.rstrip().endswith(spec.start)


def template_kwargs(tokenizer, think: bool | None) -> dict:
    """Chat-template keyword arguments that turn thinking on/off (`enable_thinking`); {} when `think` is None.

    Refused with a clear error when the model's chat template has no such switch: a silently ignored
    "think off" would mislabel a whole condition.
    """
    if think is None:
        return {}
    tpl = getattr(tokenizer, "chat_template", None) or ""
    if not isinstance(tpl, str):
        tpl = " ".join(str(v) for v in (tpl.values() if isinstance(tpl, dict) else tpl))
    if "enable_thinking" in tpl:
        return {"enable_thinking": bool(think)}
    raise InterpError("think on/off needs a chat template with an `enable_thinking` switch (Qwen3 style); this "
                      "model's template has none. Leave `think` unset, or use a thinking budget (0 = no thinking)")


@dataclass
class Segments:
    """One output split into phases. state: none (no trace) | complete | unterminated (output ended while
    thinking: budget or EOS). Token ranges are half-open [s, e) over the output ids; `answer_start` is the
    first answer step (the phase boundary), len(output) for an unterminated trace and 0 without a trace."""

    state: str
    thinking_text: str
    answer_text: str
    thinking_range: tuple[int, int] = (0, 0)
    answer_range: tuple[int, int] = (0, 0)
    forced: bool = False

    @property
    def answer_start(self) -> int:
        return self.answer_range[0]

    @property
    def thinking_tokens(self) -> int:
        return self.thinking_range[1] - self.thinking_range[0]

    def to_record(self) -> dict:
        return {"thinking_state": self.state, "thinking_text": self.thinking_text, "answer_text": self.answer_text,
                "phase_ranges": {"thinking": list(self.thinking_range), "answer": list(self.answer_range)},
                "thinking_tokens": self.thinking_tokens, "thinking_forced": self.forced}


def _strip_special(text: str, tokenizer) -> str:
    for t in sorted(getattr(tokenizer, "all_special_tokens", []) if tokenizer is not None else [], key=len,
                    reverse=True):
        if t:
            text = text.replace(t, "")
    return text.strip()


def segment_text(raw: str, spec: ThinkingSpec | None, in_thinking: bool = False, tokenizer=None) -> Segments:
    """Split a raw output string (delimiters kept) into thinking and answer text (no token ranges).

    An `end` delimiter with no `start` before it counts as a trace opened by the prompt.
    """
    if spec is None:
        return Segments("none", "", raw)
    s_at = raw.find(spec.start)
    e_at = raw.find(spec.end, 0 if in_thinking or s_at < 0 else s_at + len(spec.start))
    if not in_thinking and (s_at < 0 or (0 <= e_at < s_at)):
        if e_at < 0:
            return Segments("none", "", raw)
        in_thinking, s_at = True, -1
    t0 = 0 if in_thinking else s_at + len(spec.start)
    if e_at < 0:
        return Segments("unterminated", _strip_special(raw[t0:], tokenizer), "")
    a0 = e_at + len(spec.end)
    if spec.answer_start and (m := raw.find(spec.answer_start, a0)) >= 0:
        a0 = m + len(spec.answer_start)
    return Segments("complete", _strip_special(raw[t0:e_at], tokenizer), _strip_special(raw[a0:], tokenizer))


def _first_end(ids: Sequence[int], lo: int, pattern: str, dec) -> int | None:
    """Smallest j in (lo, n] with `pattern` in decode(ids[lo:j]) (binary search), or None."""
    n = len(ids)
    if pattern not in dec(lo, n):
        return None
    a, b = lo + 1, n
    while a < b:
        m = (a + b) // 2
        if pattern in dec(lo, m):
            b = m
        else:
            a = m + 1
    return a


def _last_start(ids: Sequence[int], lo: int, hi: int, pattern: str, dec) -> int:
    """Largest k in [lo, hi) with `pattern` in decode(ids[k:hi]) (it is in decode(ids[lo:hi]))."""
    a, b = lo, hi - 1
    while a < b:
        m = (a + b + 1) // 2
        if pattern in dec(m, hi):
            a = m
        else:
            b = m - 1
    return a


def segment_ids(output_ids: Sequence[int], tokenizer, spec: ThinkingSpec | None, in_thinking: bool = False,
                output_text: str | None = None) -> Segments:
    """Segments of a generated output with token ranges. Without a trace the answer is `output_text`
    (the stored output, unchanged) and the whole output is the answer phase."""
    ids = list(output_ids)
    n = len(ids)

    def dec(i: int, j: int) -> str:
        return tokenizer.decode(ids[i:j], skip_special_tokens=False)

    raw = dec(0, n)
    seg = segment_text(raw, spec, in_thinking, tokenizer)
    if seg.state == "none":
        return Segments("none", "", raw if output_text is None else output_text, (0, 0), (0, n))
    assert spec is not None  # a trace was found, so there are delimiters
    opened = in_thinking or raw.find(spec.start) < 0 or 0 <= raw.find(spec.end) < raw.find(spec.start)
    t0 = 0 if opened else _first_end(ids, 0, spec.start, dec)
    assert t0 is not None  # not opened: the start delimiter is in the decoded output
    e1 = _first_end(ids, t0, spec.end, dec)
    if e1 is None:
        seg.thinking_range, seg.answer_range = (t0, n), (n, n)
        return seg
    e0 = _last_start(ids, t0, e1, spec.end, dec)
    a0 = e1
    if spec.answer_start and (m := _first_end(ids, e1, spec.answer_start, dec)) is not None:
        a0 = m
    seg.thinking_range, seg.answer_range = (t0, e0), (a0, n)
    return seg


def segment_generation(gen, tokenizer, spec: ThinkingSpec | None) -> Segments:
    """Segments of a `Generation` (prompt, output ids/text; `ThinkingForced` from a budget)."""
    seg = segment_ids(gen.output_ids, tokenizer, spec, starts_in_thinking(gen.prompt.text, spec), gen.output_text)
    forced = gen.results.typed(ThinkingForced)
    seg.forced = bool(forced.thinking_forced) if forced is not None else False
    return seg


def answer_text(record: dict) -> str:
    """What the user sees of a stored output: its answer phase (records without thinking fields: the output)."""
    return record.get("answer_text", record["output_text"])


def phase_boundary(record: dict) -> int:
    """First answer step of a stored generation (0 when it has no thinking trace, e.g. an old record)."""
    pr = record.get("phase_ranges")
    return int(pr["answer"][0]) if pr else 0


@dataclass(frozen=True)
class ThinkingForced(RowResult):
    """Whether the budget forced this row's trace closed (``extras["thinking_forced"]`` in older code)."""

    thinking_forced: bool


@dataclass
class ThinkingBudget(HookProvider):
    """Generation-loop token forcer: once a row has thought `budget` tokens without closing its trace, the
    tokens of `spec.force_text` are forced (s1-style budget forcing). A hook provider with no hooks plus a
    `force` method the generation loop calls after sampling each step.

    Trace tracking is by token ids (the start/end delimiters' own tokenisation), which is exact for reasoning
    models whose delimiters are single added tokens. `in_thinking[b]`: row b's prompt opened the trace.
    """

    tokenizer: object
    spec: ThinkingSpec
    budget: int
    in_thinking: list[bool] | None = None
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.FORCES_TOKENS})
    _rows: list[dict] = field(default_factory=list, repr=False)

    def __post_init__(self):
        if self.budget < 0:
            raise InterpError(f"think_budget must be >= 0 tokens, got {self.budget}")
        enc = lambda s: list(self.tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
        self.start_ids, self.end_ids, self.force_ids = enc(self.spec.start), enc(self.spec.end), \
            enc(self.spec.force_text)

    def attach(self, hooks, batch) -> None:
        opened = self.in_thinking if self.in_thinking is not None else \
            [starts_in_thinking(p.text, self.spec) for p in batch.prompts]
        self._rows = [{"t0": 0 if o else None, "closed": False, "queue": [], "forced": False} for o in opened]

    def force(self, nxt: torch.Tensor, out_ids: list[list[int]], done: torch.Tensor) -> torch.Tensor:
        """Row-wise override of this step's sampled tokens (out_ids hold the tokens before this step)."""
        for b, r in enumerate(self._rows):
            if bool(done[b]):
                continue
            o = out_ids[b]
            if r["t0"] is None and self.start_ids and o[-len(self.start_ids):] == self.start_ids:
                r["t0"] = len(o)
            if r["t0"] is not None and not r["closed"] and len(o) - r["t0"] >= len(self.end_ids) \
                    and o[-len(self.end_ids):] == self.end_ids:
                r["closed"] = True
            if r["queue"]:
                nxt[b] = r["queue"].pop(0)
            elif r["t0"] is not None and not r["closed"] and len(o) - r["t0"] >= self.budget:
                nxt[b] = self.force_ids[0]
                r["queue"], r["closed"], r["forced"] = list(self.force_ids[1:]), True, True
        return nxt

    def collect(self, batch, n_tokens: list[int]) -> list[ThinkingForced]:
        return [ThinkingForced(r["forced"]) for r in self._rows]
