"""One record as the page shows it: texts, where each prompt part lies in the prompt text, tokens and CAS.

Token strings come from the run's tokenizer (`interp.models.loading.load_tokenizer`, loaded once, on first
use); when it cannot be loaded the tokens are shown as ids. Prompt part spans are token ranges: they are mapped
to characters by re-tokenising the stored prompt text with offsets and checking the ids equal the stored ones,
else by finding the constraint texts in the prompt; a part that cannot be located is reported, not guessed.
"""
from __future__ import annotations

import base64
import threading
from typing import Any

import numpy as np

from ..errors import InterpError
from .index import RunIndex

HIDDEN = ("prompt_ids", "output_ids", "cas")  # large fields the page does not show as such


def jsonable(obj: Any) -> Any:
    """`obj` with NaN and infinities as None (JSON has neither; the page shows None as a dash)."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


class Tokens:
    """The run's tokenizer, loaded lazily and at most once (None, with the reason, when it cannot be)."""

    def __init__(self, spec: str | None):
        self.spec = spec
        self._tok: Any = None
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._use = threading.Lock()  # a fast tokenizer is not safe to call from several server threads at once
        self._tried = False

    def get(self):
        with self._lock:
            if not self._tried:
                self._tried = True
                try:
                    from ..models.loading import load_tokenizer

                    self._tok = load_tokenizer(self.spec)
                except Exception as e:  # noqa: BLE001 - any failure means: show ids instead
                    self.problem = f"tokenizer of {self.spec!r} not available ({type(e).__name__}: {e}); tokens shown as ids"
            return self._tok

    def pieces(self, ids: list[int]) -> list[str]:
        """The text each token adds to the decoded output (joined they give the decoded text)."""
        tok = self.get()
        if tok is None:
            return [f"#{i}" for i in ids]
        with self._use:
            return self._pieces(tok, ids)

    @staticmethod
    def _pieces(tok, ids: list[int]) -> list[str]:
        out: list[str] = []
        prev = ""
        for n in range(1, len(ids) + 1):
            text = tok.decode(ids[:n], skip_special_tokens=False)
            if text.endswith("\ufffd") and n < len(ids):  # a multi-byte character continues in the next token
                out.append("")
                continue
            out.append(text[len(prev):] if text.startswith(prev) else text)
            prev = text
        return out

    def prompt_spans(self, prompt_text: str, prompt_ids: list[int], spans: dict) -> tuple[list[dict], str]:
        """Character ranges of the prompt parts and how they were found."""
        tok = self.get()
        if tok is None or not prompt_ids:
            return [], "not located (no tokenizer)"
        with self._use:
            enc = tok(prompt_text, add_special_tokens=False, return_offsets_mapping=True)
        if list(enc["input_ids"]) != list(prompt_ids):
            return [], "not located (the stored prompt text does not re-tokenise to the stored ids)"
        offs = enc["offset_mapping"]
        out = []
        for name, (s, e) in spans.items():
            if 0 <= s < e <= len(offs):
                a, b = int(offs[s][0]), int(offs[e - 1][1])
                while a < b and prompt_text[a].isspace():  # a token's leading space is not the part's text
                    a += 1
                while b > a and prompt_text[b - 1].isspace():
                    b -= 1
                out.append({"name": name, "start": a, "end": b})
        return out, "token offsets"


def _text_spans(prompt_text: str, rec: dict) -> list[dict]:
    """Constraint parts found by their text (used when the tokenizer cannot map token spans)."""
    out, cursor = [], 0
    texts = rec.get("insert_texts") or [c.get("text", "") for c in rec.get("constraints") or []]
    for i, t in enumerate(texts):
        at = prompt_text.find(t, cursor) if t else -1
        if at >= 0:
            out.append({"name": f"constraint_{i}", "start": at, "end": at + len(t)})
            cursor = at + len(t)
    return out


def _cas_summary(cas: Any) -> dict[str, float]:
    """Mean over layers and heads of each span of an ablation record's CAS (its `cas` field)."""
    out = {}
    if isinstance(cas, dict):
        for span, v in cas.items():
            a = np.asarray(v, dtype=float)
            if a.size and np.isfinite(a).any():
                out[span] = float(np.nanmean(a))
    return out


def record_view(index: RunIndex, tokens: Tokens, key: str) -> dict:
    """What the record panel shows: the stored fields (without id lists), located prompt parts, ablation arms."""
    rec = index.record(key)
    view = {k: v for k, v in rec.items() if k not in HIDDEN}
    view["n_prompt_tokens"] = len(rec.get("prompt_ids") or [])
    view["n_output_tokens"] = len(rec.get("output_ids") or [])
    if "cas" in rec:
        view["cas_summary"] = _cas_summary(rec["cas"])
    if rec.get("prompt_text"):
        spans, how = tokens.prompt_spans(rec["prompt_text"], rec.get("prompt_ids") or [], rec.get("spans") or {})
        if not spans:
            found = _text_spans(rec["prompt_text"], rec)
            if found:
                spans, how = found, "constraint text found in the prompt"
        view["prompt_spans"], view["prompt_spans_how"] = spans, how
    view["ablations"] = index.ablations_of(key)
    return jsonable(view)


def cas_view(index: RunIndex, tokens: Tokens, key: str, span: str | None = None) -> dict:
    """One generation's stored CAS of `span` as float32 [step, layer, head] (base64), with its token strings."""
    from ..attention.storage import read_cas

    row = index.row(key)
    rec = index.record(key)
    if not rec.get("cas_file"):
        raise InterpError(f"record {key} has no stored CAS (the run was made with --no-cas, or it is an ablation)")
    cas, spans, span_len = read_cas(index.path, rec["cas_file"])
    shown = [s for s in spans if not s.startswith("__")]
    if span is None:
        span = "constraints" if "constraints" in spans else shown[0]
    if span not in spans:
        raise InterpError(f"span {span!r} is not stored for record {key}; stored: {spans}")
    x = np.ascontiguousarray(cas[:, :, spans.index(span), :], dtype="<f4")
    ids = rec.get("output_ids") or []
    T, L, H = x.shape
    return {"key": key, "stage": row["stage"], "span": span, "spans": shown, "all_spans": spans,
            "span_len": dict(zip(spans, map(float, span_len))), "shape": [T, L, H],
            "values": base64.b64encode(x.tobytes()).decode(), "tokens": tokens.pieces(ids[:T]),
            "n_output_tokens": len(ids), "phase_ranges": rec.get("phase_ranges"),
            "tokens_problem": tokens.problem}
