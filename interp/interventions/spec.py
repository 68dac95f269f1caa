"""Interventions on attention as hooks: `InterventionProvider` turns per-row lists of `Intervention` values
(`interp.interventions.ops`) into attention hooks for one batch, so a batch can run a different intervention in
every row (batched sweeps) and several interventions compose in one row.

Everything a batch needs (per-layer key biases, knockout selections, per-row step windows) is built
once per batch on the model's device; each hook is then a few fused tensor operations with no Python
loop over rows or interventions and no host synchronisation. Mask ops use ``hook_attn_mask``, so
their layers stay on SDPA; layers no row touches get no hook.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np
import torch

from ..errors import InterpError
from ..models.generation import Batch
from ..models.hooked_attention import AttentionHooks, AttnCall
from ..probes.base import Capability, HookProvider
from .ops import (OPS, Intervention, InterventionOp, InterventionsResult, Knockout, MeanAblate,  # noqa: F401
                  Scale, _ValueContext, get_op, random_span, register_op, target_positions)


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
class InterventionProvider(HookProvider):
    """Hook provider: row b runs `shared + batch.interventions[b]` (composed in order).

    Composition: additive biases add up, a knockout wins over any bias, and several value ops of one kind
    act on the union of their selections (values computed from the unedited values).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.READS_INTERVENTIONS})
    n_layers: int
    n_heads: int
    shared: Sequence[Intervention] = ()
    _plan: _Plan | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def rows(self, batch: Batch) -> list[list[Intervention]]:
        out = []
        for b in range(batch.size):
            ivs = list(batch.interventions[b]) if batch.interventions else []
            bad = [type(iv).__name__ for iv in ivs if not isinstance(iv, Intervention)]
            if bad:
                raise InterpError(f"row {b} carries {bad} where interp.Intervention values belong")
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

    def collect(self, batch: Batch, n_tokens: list[int]) -> list[InterventionsResult]:  # type: ignore[override]
        rows = self.rows(batch)
        self._plan, self._cache = None, {}
        return [InterventionsResult(tuple(r)) for r in rows]


@dataclass
class RowInterventions(HookProvider):
    """Hook provider that runs `rows[b]` in row b of a batch it did not build (e.g. a teacher-forced pass)."""

    n_layers: int
    n_heads: int
    rows: Sequence[Sequence[Intervention]]
    _inner: InterventionProvider | None = field(default=None, repr=False)

    def attach(self, hooks: AttentionHooks, batch: Batch) -> None:
        batch.interventions = [list(r) for r in self.rows]
        self._inner = InterventionProvider(self.n_layers, self.n_heads)
        self._inner.attach(hooks, batch)

    def collect(self, batch: Batch, n_tokens: list[int]) -> list[InterventionsResult]:  # type: ignore[override]
        return self._inner.collect(batch, n_tokens)  # type: ignore[union-attr]
