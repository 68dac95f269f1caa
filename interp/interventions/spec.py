"""Interventions on attention as declarative, serialisable values (pyvene/nnsight style).

An `Intervention` names a target span, an operation and where it acts; `InterventionProvider`
turns per-row lists of them into attention hooks for one batch, so a batch can run a different
intervention in every row (batched sweeps) and several interventions compose in one row.

Operations are small registered classes (`InterventionOp`; one class = one op, `register_op`):
- ``knockout``: the selected (query row, head, target key) entries of the attention mask set to the
  dtype's minimum (attention on the target becomes exactly 0);
- ``scale``: log(alpha) added to those mask entries; alpha < 1 damps, alpha > 1 boosts, softmax
  renormalises (PASTA-style);
- ``mean_ablate``: the target keys' value vectors replaced by the mean value over the prompt.

Everything a batch needs (per-layer key biases, knockout selections, per-row step windows) is built
once per batch on the model's device; each hook is then a few fused tensor operations with no Python
loop over rows or interventions and no host synchronisation. Mask ops use ``hook_attn_mask``, so
their layers stay on SDPA; layers no row touches get no hook.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import ClassVar, Sequence

import numpy as np
import torch

from ..errors import InterpError
from ..models.generation import Batch
from ..models.hooked_attention import AttentionHooks, AttnCall
from ..prompts import Prompt
from ..registry import Registry, ref_of


class InterventionOp:
    """One intervention operation. Subclasses set `name` and override exactly one way of editing:

    - `mask_bias(iv)`: a float added to the attention mask on the selected entries (``-inf`` = knockout);
      runs as a ``hook_attn_mask`` (SDPA stays on);
    - `edit_values(v, sel, ctx)`: new values ``[B, H, K, D]`` given ``sel`` ``[B, H, K]`` (the selected keys)
      and ``ctx.prompt_keys`` ``[B, K]``; runs as a ``hook_v``.
    `check(iv)` validates an intervention's parameters (raise `InterpError`).
    """

    name: ClassVar[str] = ""
    edits: ClassVar[str] = "mask"  # "mask" | "values"

    def check(self, iv: "Intervention") -> None:
        return None

    def mask_bias(self, iv: "Intervention") -> float:
        raise NotImplementedError

    def edit_values(self, v: torch.Tensor, sel: torch.Tensor, ctx: "_ValueContext") -> torch.Tensor:
        raise NotImplementedError


OPS: Registry[InterventionOp] = Registry("intervention op", group="interp.ops",
                                         hint="define an InterventionOp subclass with @register_op")


def register_op(cls=None, *, replace: bool = False):
    """Class decorator: registers one instance of an `InterventionOp` subclass under `cls.name` in `OPS`
    (the registry shared with tasks and constraint types; installed packages add ops via `interp.ops`).

    A second op under a taken name is an error unless `replace=True` says it is meant.
    """

    def deco(c):
        inst = c()
        if not inst.name or inst.edits not in ("mask", "values"):
            raise InterpError(f"{c.__name__} needs a `name` and `edits` in ('mask', 'values')")
        OPS.register(inst.name, inst, replace=replace, ref=ref_of(c))
        return c

    return deco if cls is None else deco(cls)


def get_op(name: str) -> InterventionOp:
    """The op registered as `name` (entry-point plugins loaded on a miss); `InterpError` when unknown."""
    return OPS.lookup(name)


@register_op
class Knockout(InterventionOp):
    """Attention on the target becomes exactly 0 (mask entries set to the dtype's minimum)."""

    name = "knockout"

    def mask_bias(self, iv):
        return -math.inf


@register_op
class Scale(InterventionOp):
    """Attention on the target multiplied by alpha before renormalisation (log(alpha) added to the mask)."""

    name = "scale"

    def check(self, iv):
        if not iv.alpha > 0:
            raise InterpError("scale needs alpha > 0 (use knockout for alpha = 0)")

    def mask_bias(self, iv):
        return math.log(iv.alpha)


@register_op
class MeanAblate(InterventionOp):
    """The target keys' value vectors replaced by the mean value over the prompt's tokens."""

    name = "mean_ablate"
    edits = "values"

    def edit_values(self, v, sel, ctx):
        mean = ctx.memo.get("mean")
        if mean is None:  # the prompt's values are the same at every decoding step: averaged once per layer
            pk = ctx.prompt_keys[:, None, :, None].to(v.dtype)
            mean = ctx.memo["mean"] = (v * pk).sum(2, keepdim=True) / pk.sum(2, keepdim=True).clamp(min=1)
        return torch.where(sel[..., None], mean, v)


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
        get_op(self.op).check(self)
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
class _ValueContext:
    """What a value op may use besides the values: which keys are prompt tokens (``[B, K]`` bool), and `memo`,
    a dict private to this op and layer that lasts for the batch while the call's keys start at the same
    absolute position (for quantities of the prompt's keys, which no decoding step changes)."""

    prompt_keys: torch.Tensor
    memo: dict


@dataclass
class _Plan:
    """One batch's interventions as tensors on the model's device (S = interventions per row, padded).

    keys ``[S*B, P]`` float (target key positions), window ``lo``/``hi``/``pre`` ``[S, B, 1]``; per layer
    ``bias[l]``/``knock[l]`` ``[S, B, H]`` (additive mask bias / knockout flag where the slot acts) and per
    value op ``values[name][l]`` ``[S, B, H]``, present only for layers some row touches (they get the hooks).
    """

    S: int
    B: int
    keys: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    pre: torch.Tensor
    prompt: torch.Tensor
    bias: dict[int, torch.Tensor]
    knock: dict[int, torch.Tensor]
    values: dict[str, dict[int, torch.Tensor]]


_NO_END = 1 << 40


@dataclass
class InterventionProvider:
    """Hook provider: row b runs `shared + batch.extras[b]["interventions"]` (composed in order).

    Composition: additive biases add up, a knockout wins over any bias, and several value ops of one kind
    act on the union of their selections (values computed from the unedited values).
    """

    n_layers: int
    n_heads: int
    shared: Sequence[Intervention] = ()
    _plan: _Plan | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

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
        S = max((len(r) for r in rows), default=0)
        if S == 0:
            return
        B, P, L, H = batch.size, batch.prompt_len, self.n_layers, self.n_heads
        keys = np.zeros((S, B, P), np.float32)
        cells = np.zeros((S, B, L, H), bool)
        lo = np.zeros((S, B), np.int64)
        hi = np.full((S, B), -1, np.int64)
        pre = np.zeros((S, B), bool)
        bias = np.zeros((S, B), np.float64)
        knock = np.zeros((S, B), bool)
        vals: dict[str, np.ndarray] = {}
        for b, r in enumerate(rows):
            for s, iv in enumerate(r):
                op = get_op(iv.op)
                pos = [batch.pad[b] + p for p in target_positions(batch.prompts[b], iv)]
                if not pos:
                    raise InterpError(
                        f"intervention {iv.label or iv.op!r} targets {list(iv.target)}, which covers no token of "
                        f"prompt {b} of the batch (its parts: {sorted(batch.prompts[b].spans)}); 'constraints' "
                        "is the union of the parts named constraint_<i>, 'random:<part>' needs that part")
                bad = [(l, h) for l, h in (iv.heads or ()) if not (0 <= l < L and 0 <= h < H)]
                bad += [(l, None) for l in (iv.layers or ()) if not 0 <= l < L]
                if bad:
                    raise InterpError(f"intervention {iv.label or iv.op!r} names (layer, head) {bad} outside the "
                                      f"model's {L} layers x {H} heads")
                keys[s, b, pos] = 1.0
                cells[s, b] = iv.head_mask(L, H)
                lo[s, b], hi[s, b] = iv.steps[0], _NO_END if iv.steps[1] is None else iv.steps[1]
                pre[s, b] = iv.prefill
                if op.edits == "values":
                    vals.setdefault(op.name, np.zeros((S, B), bool))[s, b] = True
                else:
                    bb = op.mask_bias(iv)
                    knock[s, b] = bb == -math.inf
                    bias[s, b] = 0.0 if knock[s, b] else bb
        dev = batch.input_ids.device
        tens = lambda a, dt: torch.as_tensor(a, dtype=dt, device=dev)  # noqa: E731
        prompt = np.zeros((B, P), bool)
        for b, p in enumerate(batch.prompts):
            prompt[b, batch.pad[b]: batch.pad[b] + len(p.input_ids)] = True
        plan = _Plan(S, B, tens(keys.reshape(S * B, P), torch.float32), tens(lo[..., None], torch.long),
                     tens(hi[..., None], torch.long), tens(pre[..., None], torch.bool), tens(prompt, torch.float32),
                     {}, {}, {})
        for l in range(L):
            c = cells[:, :, l]  # [S, B, H]
            b_l, k_l = c * bias[..., None], c & knock[..., None]
            if b_l.any():
                plan.bias[l] = tens(b_l, torch.float32)
            if k_l.any():
                plan.knock[l] = tens(k_l, torch.float32)
            if plan.bias.get(l) is not None or plan.knock.get(l) is not None:
                hooks.add(f"blocks.{l}.attn.hook_attn_mask", self._mask_hook)
            touched = False
            for name, m in vals.items():
                v_l = c & m[..., None]
                if v_l.any():
                    plan.values.setdefault(name, {})[l] = tens(v_l, torch.float32)
                    touched = True
            if touched:
                hooks.add(f"blocks.{l}.attn.hook_v", self._v_hook)
        hooks.all_rows = hooks.all_rows or bool(pre.any())
        self._plan, self._cache = plan, {}

    def _active(self, call: AttnCall) -> torch.Tensor:
        """``[S, B, rows]`` float: 1 where a slot's step window (or prefill) covers a query row of this call."""
        steps = call.query_steps
        hit = self._cache.get("act")
        if hit is not None and hit[0] is steps:
            return hit[1]
        p = self._plan
        s = steps[None]
        act = (((s >= p.lo) & (s < p.hi)) | ((s < 0) & p.pre)).float()
        self._cache["act"] = (steps, act)
        return act

    def _keys(self, call: AttnCall) -> torch.Tensor:
        """``[S, B, kv_len]`` float target-key indicator for this call's keys (shared by all layers of a step)."""
        k = (call.key_offset, call.kv_len)
        hit = self._cache.get("keys")
        if hit is not None and hit[0] == k:
            return hit[1]
        p = self._plan
        keys = call.key_slice(p.keys).view(p.S, p.B, call.kv_len)
        self._cache["keys"] = (k, keys)
        return keys

    def _mask_hook(self, mask: torch.Tensor, call: AttnCall):
        p = self._plan
        act, keys = self._active(call), self._keys(call)
        b, k = p.bias.get(call.layer), p.knock.get(call.layer)
        if b is not None:
            mask = mask + torch.einsum("sbq,sbh,sbk->bhqk", act, b, keys).to(mask.dtype)
        if k is not None:
            mask = mask.masked_fill(torch.einsum("sbq,sbh,sbk->bhqk", act, k, keys) > 0, torch.finfo(mask.dtype).min)
        return mask

    def _v_hook(self, v: torch.Tensor, call: AttnCall):
        p = self._plan
        act = self._active(call).amax(-1)  # [S, B]: active for any query row of this call
        keys = self._keys(call)
        prompt_keys = call.key_slice(p.prompt) > 0
        for name, per_layer in p.values.items():
            sel_l = per_layer.get(call.layer)
            if sel_l is not None:
                memo = self._cache.setdefault(("memo", name, call.layer, call.key_offset), {})
                v = OPS[name].edit_values(v, torch.einsum("sb,sbh,sbk->bhk", act, sel_l, keys) > 0,
                                          _ValueContext(prompt_keys, memo))
        return v

    def collect(self, batch: Batch, n_tokens: list[int]) -> list[dict]:
        rows = self.rows(batch)
        self._plan, self._cache = None, {}
        return [{"interventions": [iv.to_dict() for iv in r]} for r in rows]
