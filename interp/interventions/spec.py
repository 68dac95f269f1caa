"""Interventions on attention as declarative, serialisable values (pyvene/nnsight style).

An `Intervention` names a target span, an operation and where it acts; `InterventionProvider`
turns per-row lists of them into attention hooks for one batch, so a batch can run a different
intervention in every row (batched sweeps) and several interventions compose in one row.

Operations (applied to pre-softmax scores of the selected query rows, heads and target keys):
- ``knockout``: scores set to the dtype's minimum (attention on the target becomes exactly 0);
- ``scale``: add log(alpha); alpha < 1 damps, alpha > 1 boosts, softmax renormalises (PASTA-style);
- ``mean_ablate``: the target keys' value vectors replaced by the mean value over the prompt.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..models.generation import Batch
from ..models.hooked_attention import AttentionHooks, AttnCall
from ..prompts import Prompt

OPS = ("knockout", "scale", "mean_ablate")


@dataclass(frozen=True)
class Intervention:
    """What to do to attention. `target`: part names (unioned), "constraints" (all constraint_* parts),
    or "random:<name>" (a random span of the same length as <name> elsewhere in the prompt, seeded).
    `layers`/`heads`: None = all; `heads` as (layer, head) pairs overrides `layers`.
    `steps`: [start, end) of generated-token steps (end None = to the end); `prefill`: also prompt rows.
    """

    target: tuple[str, ...] = ("constraints",)
    op: str = "scale"
    alpha: float = 1.0
    layers: tuple[int, ...] | None = None
    heads: tuple[tuple[int, int], ...] | None = None
    steps: tuple[int, int | None] = (0, None)
    prefill: bool = False
    seed: int = 0
    label: str = ""

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; choose from {OPS}")
        if self.op == "scale" and not self.alpha > 0:
            raise ValueError("scale needs alpha > 0 (use knockout for alpha = 0)")
        object.__setattr__(self, "target", tuple([self.target] if isinstance(self.target, str) else self.target))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        if self.heads is not None:
            object.__setattr__(self, "heads", tuple((int(a), int(b)) for a, b in self.heads))
        object.__setattr__(self, "steps", (int(self.steps[0]), None if self.steps[1] is None else int(self.steps[1])))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target"] = list(self.target)
        d["layers"] = None if self.layers is None else list(self.layers)
        d["heads"] = None if self.heads is None else [list(h) for h in self.heads]
        d["steps"] = list(self.steps)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Intervention":
        d = dict(d)
        d["target"] = tuple(d.get("target", ("constraints",)))
        d["steps"] = tuple(d.get("steps", (0, None)))
        if d.get("heads") is not None:
            d["heads"] = tuple(tuple(h) for h in d["heads"])
        if d.get("layers") is not None:
            d["layers"] = tuple(d["layers"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def key(self) -> str:
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    def head_mask(self, n_layers: int, n_heads: int) -> np.ndarray:
        """[layers, heads] bool of where this intervention acts."""
        m = np.zeros((n_layers, n_heads), dtype=bool)
        if self.heads is not None:
            for l, h in self.heads:
                m[l, h] = True
        else:
            m[list(range(n_layers)) if self.layers is None else list(self.layers)] = True
        return m


def target_positions(prompt: Prompt, iv: Intervention) -> list[int]:
    """Token positions (unpadded) of an intervention's target in `prompt`."""
    pos: set[int] = set()
    for t in iv.target:
        if t.startswith("random:"):
            ref = prompt.spans.get(t.split(":", 1)[1])
            if ref is None:
                continue
            pos.update(random_span(prompt, ref, iv.seed))
        elif t == "constraints":
            for n, (s, e) in prompt.spans.items():
                if n.startswith("constraint_"):
                    pos.update(range(s, e))
        elif t in prompt.spans:
            s, e = prompt.spans[t]
            pos.update(range(s, e))
    return sorted(pos)


def random_span(prompt: Prompt, ref: tuple[int, int], seed: int) -> range:
    """A contiguous span as long as `ref`, elsewhere in the prompt (not overlapping it, not token 0)."""
    n = ref[1] - ref[0]
    P = len(prompt.input_ids)
    starts = [s for s in range(1, P - n + 1) if s + n <= ref[0] or s >= ref[1]]
    if not starts or n == 0:
        return range(0)
    h = int(hashlib.sha1(f"{seed}|{prompt.input_ids}".encode()).hexdigest()[:8], 16)
    s = starts[np.random.default_rng(h).integers(len(starts))]
    return range(s, s + n)


@dataclass
class InterventionProvider:
    """Hook provider: row b runs `shared + batch.extras[b]["interventions"]` (composed in order)."""

    n_layers: int
    n_heads: int
    shared: Sequence[Intervention] = ()
    _slots: list = field(default_factory=list, repr=False)
    _prompt_mask: torch.Tensor | None = field(default=None, repr=False)

    def rows(self, batch: Batch) -> list[list[Intervention]]:
        out = []
        for b in range(batch.size):
            extra = batch.extras[b] if batch.extras else {}
            ivs = [iv if isinstance(iv, Intervention) else Intervention.from_dict(iv)
                   for iv in extra.get("interventions", [])]
            out.append(list(self.shared) + ivs)
        return out

    def attach(self, hooks: AttentionHooks, batch: Batch) -> None:
        rows = self.rows(batch)
        n_slots = max((len(r) for r in rows), default=0)
        if n_slots == 0:
            return
        dev = batch.input_ids.device
        B, P = batch.size, batch.prompt_len
        self._slots = []
        any_prefill = False
        for i in range(n_slots):
            keys = torch.zeros(B, P, dtype=torch.bool)
            cells = torch.zeros(B, self.n_layers, self.n_heads, dtype=torch.bool)
            lo = torch.zeros(B, dtype=torch.long)
            hi = torch.full((B,), -1, dtype=torch.long)
            pre = torch.zeros(B, dtype=torch.bool)
            op = torch.full((B,), -1, dtype=torch.long)
            logalpha = torch.zeros(B)
            for b, r in enumerate(rows):
                if i >= len(r):
                    continue
                iv = r[i]
                for p in target_positions(batch.prompts[b], iv):
                    keys[b, batch.pad[b] + p] = True
                cells[b] = torch.from_numpy(iv.head_mask(self.n_layers, self.n_heads))
                lo[b], hi[b] = iv.steps[0], (1 << 40) if iv.steps[1] is None else iv.steps[1]
                pre[b] = iv.prefill
                any_prefill |= iv.prefill
                op[b] = OPS.index(iv.op)
                logalpha[b] = math.log(iv.alpha) if iv.op == "scale" else 0.0
            self._slots.append({k: v.to(dev) for k, v in dict(keys=keys, cells=cells, lo=lo, hi=hi, pre=pre, op=op,
                                                               logalpha=logalpha).items()})
        self._prompt_mask = torch.zeros(B, P, dtype=torch.bool, device=dev)  # prompt tokens only, never outputs
        for b, p in enumerate(batch.prompts):
            self._prompt_mask[b, batch.pad[b]: batch.pad[b] + len(p.input_ids)] = True
        hooks.all_rows = hooks.all_rows or any_prefill
        ops = {int(o) for s in self._slots for o in s["op"].tolist() if o >= 0}
        for l in range(self.n_layers):
            if not any(bool(s["cells"][:, l].any()) for s in self._slots):
                continue
            if ops & {0, 1}:
                hooks.add(f"blocks.{l}.attn.hook_attn_scores", self._scores_hook)
            if 2 in ops:
                hooks.add(f"blocks.{l}.attn.hook_v", self._v_hook)

    def _select(self, slot, call: AttnCall, K: int, device=None):
        """[B, H, R, K] bool of the score entries a slot acts on in this call."""
        if device is not None and slot["keys"].device != device:
            slot = {k: v.to(device) for k, v in slot.items()}
        steps = call.query_steps.to(slot["keys"].device)
        act = ((steps >= slot["lo"][:, None]) & (steps < slot["hi"][:, None])) | ((steps < 0) & slot["pre"][:, None])
        keys = call.key_slice(slot["keys"])
        cell = slot["cells"][:, call.layer]
        return act[:, None, :, None] & cell[:, :, None, None] & keys[:, None, None, :]

    def _scores_hook(self, scores: torch.Tensor, call: AttnCall):
        for slot in self._slots:
            sel = self._select(slot, call, scores.shape[-1], scores.device)
            op = slot["op"].to(scores.device)
            knock = sel & (op == 0)[:, None, None, None]
            scale = sel & (op == 1)[:, None, None, None]
            if bool(scale.any()):
                scores = scores + scale * slot["logalpha"].to(scores.device, scores.dtype)[:, None, None, None]
            if bool(knock.any()):
                scores = scores.masked_fill(knock, torch.finfo(scores.dtype).min)
        return scores

    def _v_hook(self, v: torch.Tensor, call: AttnCall):
        for slot in self._slots:
            is_mean = slot["op"].to(v.device) == 2
            if not bool(is_mean.any()):
                continue
            sel = self._select(slot, call, v.shape[2], v.device).any(2)  # [B, H, K]: active for any row in this call
            sel = sel & is_mean[:, None, None]
            if not bool(sel.any()):
                continue
            prompt_keys = call.key_slice(self._prompt_mask.to(v.device))
            mean = (v * prompt_keys[:, None, :, None]).sum(2, keepdim=True) / prompt_keys.sum(1).clamp(min=1)[:, None, None, None]
            v = torch.where(sel[..., None], mean.expand_as(v), v)
        return v

    def collect(self, batch: Batch, n_tokens: list[int]) -> list[dict]:
        rows = self.rows(batch)
        self._slots = []
        return [{"interventions": [iv.to_dict() for iv in r]} for r in rows]
