"""Activation patching between the unconstrained and the constrained run of one item, aligned by spans.

The pair is natural here: the same item's unconstrained prompt (the task alone: the *clean* run, which solved
it) and constrained prompt (task + constraints: the *corrupted* run, which failed), each with its parts' token
spans. Both runs are teacher-forced on the same answer (the correct one, and the failed one), so answer tokens
align by index and prompt parts align by name (a part must have the same token length in both prompts).

- **denoising**: run the constrained prompt, replace the activations at (layer, span) by the unconstrained
  run's; a large gain in log p(correct answer) says that span's residual state at that layer carries the failure.
- **noising**: the reverse (unconstrained run, constrained activations patched in).

Spans: any prompt part present in both prompts (``"task"``), ``"last_prompt"`` (the last prompt position,
which produces the first answer token) and ``"answer"`` (the teacher-forced answer tokens as inputs).
All (layer, span) patches of one run go through the model as one batch (one row each).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .errors import InterpError
from .models.hooked_attention import AttentionHooks
from .models.hooked_resid import check_kind
from .probes.resid import hook_name
from .prompts import Prompt

DIRECTIONS = ("denoise", "noise")
SPECIAL_SPANS = ("last_prompt", "answer")


@dataclass
class PatchResult:
    """log p(answer) per (answer, layer, span) of the patched run, beside both unpatched runs.

    `patched[a, l, s]`: answer `answers[a]`, layer `layers[l]`, span `spans[s]`; `clean` / `corrupt`: the
    unconstrained / constrained runs' log p(answer) ``[n_answers]``. For denoising the patched run is the
    constrained one, for noising the unconstrained one.
    """

    direction: str
    hook: str
    layers: list[int]
    spans: list[str]
    answers: list[str]
    patched: np.ndarray
    clean: np.ndarray
    corrupt: np.ndarray
    meta: dict = field(default_factory=dict)

    def effect(self) -> np.ndarray:
        """Patched minus the run that was patched (denoise: minus corrupt; noise: minus clean) ``[A, L, S]``."""
        base = self.corrupt if self.direction == "denoise" else self.clean
        return self.patched - base[:, None, None]

    def normalised(self) -> np.ndarray:
        """Share of the clean-corrupt gap the patch moves ([A, L, S]; 1 = fully restored/destroyed); NaN where
        the two runs do not differ."""
        gap = self.clean - self.corrupt
        sign = 1.0 if self.direction == "denoise" else -1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.abs(gap)[:, None, None] > 1e-6, sign * self.effect() / gap[:, None, None], np.nan)

    def to_dict(self) -> dict:
        return {"direction": self.direction, "hook": self.hook, "layers": self.layers, "spans": self.spans,
                "answers": self.answers, "patched": self.patched.tolist(), "clean": self.clean.tolist(),
                "corrupt": self.corrupt.tolist(), "meta": self.meta}

    @staticmethod
    def from_dict(d: dict) -> "PatchResult":
        return PatchResult(d["direction"], d["hook"], list(d["layers"]), list(d["spans"]), list(d["answers"]),
                           np.asarray(d["patched"], dtype=float), np.asarray(d["clean"], dtype=float),
                           np.asarray(d["corrupt"], dtype=float), dict(d.get("meta", {})))


def span_positions(prompt: Prompt, span: str, n_answer: int) -> tuple[int, int]:
    """Token positions [start, end) of `span` in the sequence prompt + answer."""
    n_p = len(prompt.input_ids)
    if span == "last_prompt":
        return n_p - 1, n_p
    if span == "answer":
        return n_p, n_p + n_answer
    if span not in prompt.spans:
        raise InterpError(f"span {span!r} is not a part of the prompt (parts: {sorted(prompt.spans)}; "
                          f"or one of {SPECIAL_SPANS})")
    return tuple(prompt.spans[span])  # type: ignore[return-value]


def aligned_spans(clean: Prompt, corrupt: Prompt, spans: Sequence[str], n_answer: int):
    """Per span, (clean positions, corrupt positions); a span of different lengths in the two runs is refused."""
    out = []
    for s in spans:
        a, b = span_positions(clean, s, n_answer), span_positions(corrupt, s, n_answer)
        if a[1] - a[0] != b[1] - b[0]:
            raise InterpError(f"span {s!r} has {a[1] - a[0]} tokens in the unconstrained prompt and {b[1] - b[0]} "
                              "in the constrained one: patching aligns spans token by token, so they must match")
        if a[1] <= a[0]:
            raise InterpError(f"span {s!r} is empty")
        out.append((a, b))
    return out


def answer_logprob(logits: torch.Tensor, n_prompt: int, answer: Sequence[int]) -> torch.Tensor:
    """Sum of log p(answer token t | prefix) over the answer; `logits` ``[B, T, V]`` of prompt + answer."""
    lp = torch.log_softmax(logits[:, n_prompt - 1: n_prompt - 1 + len(answer)].double(), -1)
    idx = torch.as_tensor(list(answer), device=logits.device)
    return lp.gather(-1, idx[None, :, None].expand(lp.shape[0], -1, 1)).squeeze(-1).sum(-1)


def _forward(hf, ids: list[int], hooks: AttentionHooks | None = None, rows: int = 1) -> torch.Tensor:
    dev = next(hf.parameters()).device
    x = torch.tensor([ids] * rows, device=dev)
    with torch.no_grad():
        if hooks is None:
            return hf(input_ids=x).logits
        with hooks:
            return hf(input_ids=x).logits


def _acts(hf, ids: list[int], names: list[str]) -> dict[str, torch.Tensor]:
    got: dict[str, torch.Tensor] = {}
    h = AttentionHooks()
    def keep(n: str):
        def fn(x: torch.Tensor, call) -> None:
            got[n] = x[0].detach().clone()
        return fn
    for n in names:
        h.add(n, keep(n))
    _forward(hf, ids, h)
    return got


def patch_pair(model, clean: Prompt, corrupt: Prompt, answers: dict[str, Sequence[int]], *,
               layers: Sequence[int] | None = None, spans: Sequence[str] = ("task", "last_prompt", "answer"),
               hook: str = "hook_resid_pre", direction: str = "denoise") -> PatchResult:
    """Patch one item's runs at every (layer, span) and return log p(answer) per answer (see module doc).

    `answers`: name -> answer token ids (``{"correct": ..., "failed": ...}``), each teacher-forced in both runs.
    `hook`: a residual or output hook kind (``hook_resid_pre``, ``hook_attn_out``, ``hook_mlp_out``, ...).
    """
    if direction not in DIRECTIONS:
        raise InterpError(f"direction={direction!r}: expected one of {DIRECTIONS}")
    check_kind(model.config, hook)
    if hook in ("hook_z", "hook_result"):
        raise InterpError("patch_pair patches [pos, d_model] activations; per-head hook_z/hook_result: not yet")
    if not isinstance(answers, dict) or not answers:
        raise InterpError("answers: pass a dict name -> token ids, e.g. {'correct': [...], 'failed': [...]}")
    for k, toks in answers.items():
        if len(toks) == 0:
            raise InterpError(f"answer {k!r} is empty")
    layers = list(range(model.n_layers)) if layers is None else [int(x) for x in layers]
    bad = [x for x in layers if not 0 <= x < model.n_layers]
    if bad or not layers:
        raise InterpError(f"layers {bad or layers}: pass indices in 0..{model.n_layers - 1}")
    spans = list(spans)
    hf = model.hf
    names = [hook_name(hook, x) for x in layers]
    src_p, dst_p = (clean, corrupt) if direction == "denoise" else (corrupt, clean)
    A, L, S = len(answers), len(layers), len(spans)
    patched, base_clean, base_corrupt = np.zeros((A, L, S)), np.zeros(A), np.zeros(A)
    for a, answer in enumerate(answers.values()):
        ans = [int(t) for t in answer]
        al = aligned_spans(clean, corrupt, spans, len(ans))
        pos = [(c, k) if direction == "denoise" else (k, c) for c, k in al]  # (source, destination) positions
        src_ids, dst_ids = list(src_p.input_ids) + ans, list(dst_p.input_ids) + ans
        src_acts = _acts(hf, src_ids, names)
        base_clean[a], base_corrupt[a] = (
            float(answer_logprob(_forward(hf, list(p.input_ids) + ans), len(p.input_ids), ans)[0])
            for p in (clean, corrupt))
        h = AttentionHooks()
        for li, name in enumerate(names):
            h.add(name, _patch_fn(src_acts[name], [(li * S + si, s, d) for si, (s, d) in enumerate(pos)]))
        lp = answer_logprob(_forward(hf, dst_ids, h, rows=L * S), len(dst_p.input_ids), ans)
        patched[a] = lp.view(L, S).cpu().numpy()
    return PatchResult(direction, hook, layers, spans, list(answers), patched, base_clean, base_corrupt)


def _patch_fn(src: torch.Tensor, edits: list[tuple[int, tuple[int, int], tuple[int, int]]]):
    """Row r of the destination batch gets the source positions s0:s1 at its positions d0:d1."""

    def fn(x: torch.Tensor, call) -> torch.Tensor:
        x = x.clone()
        for r, (s0, s1), (d0, d1) in edits:
            x[r, d0:d1] = src[s0:s1].to(x.dtype)
        return x
    return fn


def failed_pairs(run_dir) -> list[tuple]:
    """(baseline record, constrained record) of a run's failed items: the constrained run failed where the same
    item's baseline (unconstrained) run succeeded (``ConstrainedRecord.baseline_key``)."""
    from .rundir import RunDir

    rd = RunDir(run_dir)
    base = {r.key: r for r in rd.typed("baseline")}
    return [(base[c.baseline_key], c) for c in rd.typed("constrained")
            if not c.success and c.baseline_key in base and base[c.baseline_key].success]


def patch_run(model, run_dir, *, layers: Sequence[int] | None = None, spans: Sequence[str] = ("last_prompt", "answer"),
              hook: str = "hook_resid_pre", direction: str = "denoise", max_answer_tokens: int = 16,
              max_items: int | None = None, progress: bool = True) -> list[PatchResult]:
    """`patch_pair` over a run's failed items (`failed_pairs`), answers = the baseline's output ("correct") and the
    constrained run's output ("failed"), each cut to `max_answer_tokens`. Appends one line per item to
    ``<run_dir>/patching.jsonl`` (keyed by the constrained record's key and the settings) and skips items already
    there, so an interrupted run resumes. Returns every item's result (old and new) for these settings."""
    import json
    from pathlib import Path

    from tqdm.auto import tqdm

    if max_answer_tokens < 1:
        raise InterpError("max_answer_tokens must be >= 1")
    path = Path(run_dir) / "patching.jsonl"
    layers = list(range(model.n_layers)) if layers is None else [int(x) for x in layers]
    settings = {"layers": layers, "spans": list(spans), "hook": hook,
                "direction": direction, "max_answer_tokens": max_answer_tokens}
    have = {}
    if path.exists():
        for line in path.read_text().splitlines():
            d = json.loads(line)
            if d.get("settings") == settings:
                have[d["key"]] = PatchResult.from_dict(d["result"])
    pairs = failed_pairs(run_dir)[:max_items]
    if not pairs:
        raise InterpError(f"{run_dir}: no failed items (constrained failed where the baseline succeeded)")
    out = []
    for b, c in tqdm(pairs, desc="patch", disable=not progress, leave=False):
        if c.key in have:
            out.append(have[c.key])
            continue
        clean = Prompt(b.prompt_text, list(b.prompt_ids), {k: (int(v[0]), int(v[1])) for k, v in b.spans.items()})
        corrupt = Prompt(c.prompt_text, list(c.prompt_ids), {k: (int(v[0]), int(v[1])) for k, v in c.spans.items()})
        answers: dict[str, Sequence[int]] = {
            k: v for k, v in (("correct", list(b.output_ids)[:max_answer_tokens]),
                              ("failed", list(c.output_ids)[:max_answer_tokens])) if v}
        if not answers:
            continue
        r = patch_pair(model, clean, corrupt, answers, layers=layers, spans=spans, hook=hook, direction=direction)
        r.meta = {"key": c.key, "item_id": c.item_id, "condition": c.condition}
        with path.open("a") as f:
            f.write(json.dumps({"key": c.key, "settings": settings, "result": r.to_dict()}) + "\n")
        out.append(r)
    return out


def single_answer(r: PatchResult, answer: str) -> PatchResult:
    """`r` restricted to one answer (items of a run may lack one, e.g. an empty output)."""
    i = r.answers.index(answer)
    return PatchResult(r.direction, r.hook, r.layers, r.spans, [answer], r.patched[i:i + 1], r.clean[i:i + 1],
                       r.corrupt[i:i + 1], r.meta)
