"""Attribution patching: a first-order estimate of every head's intervention effect from one forward + backward.

A gate g[layer, head] (a leaf tensor, 1 = no change) scales the attention pattern's entries on the
target keys and renormalises each row: g = 0 is exactly a knockout, g = alpha exactly `scale(alpha)`.
The gradient of the answer's sum log p with respect to g gives the linear estimate
effect ~ grad * (g_new - 1) for all heads at once. It is only a tangent-line estimate, so
`attribution_vs_actual` reports its Spearman correlation with the exact per-head effects of a sweep.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from ..models.generation import Batch, forward_teacher_forced
from ..models.hooked_attention import AttentionHooks, AttnCall
from ..probes.base import HookProvider, RowResult
from ..prompts import Prompt
from .spec import Intervention, target_positions
from .sweep import answer_logp, sweep_heads


@dataclass
class GateProvider(HookProvider):
    """Hook provider: multiplies attention on the target keys by `gate[layer, head]` on generated rows, renormalised."""

    gate: torch.Tensor  # [layers, heads], requires grad
    target: tuple[str, ...] = ("constraints",)
    _keys: torch.Tensor | None = field(default=None, repr=False)

    def attach(self, hooks: AttentionHooks, batch: Batch) -> None:
        keys = torch.zeros(batch.size, batch.prompt_len, dtype=torch.bool)
        probe = Intervention(target=self.target)
        for b, p in enumerate(batch.prompts):
            for pos in target_positions(p, probe):
                keys[b, batch.pad[b] + pos] = True
        self._keys = keys.to(batch.input_ids.device)
        for l in range(self.gate.shape[0]):
            hooks.add(f"blocks.{l}.attn.hook_pattern", self._hook)

    def _hook(self, pattern: torch.Tensor, call: AttnCall):
        keys = call.key_slice(self._keys)
        sel = (call.query_steps >= 0)[:, None, :, None] & keys[:, None, None, :]
        g = self.gate[call.layer].to(pattern.dtype)[None, :, None, None]
        p = pattern * torch.where(sel, g, torch.ones_like(g))
        # a learned sink (gpt-oss) keeps its share of the row: renormalise over keys + sink
        sink = call.sink_share if call.sink_share is not None else 0.0
        return p / (p.sum(-1, keepdim=True) + sink)

    def collect(self, batch: Batch, n_tokens: list[int]) -> list[RowResult]:  # type: ignore[override]
        self._keys = None
        return [RowResult() for _ in range(batch.size)]


def attribution_scores(model, prompt: Prompt, output_ids: Sequence[int], target="constraints", op: str = "knockout",
                       alpha: float = 1.0) -> pd.DataFrame:
    """Per head: d(sum log p of `output_ids`)/d(gate) and the linear estimate of the `op` effect.

    Returns columns layer, head, grad, estimate (estimate = grad * (0 - 1) for knockout, grad * (alpha - 1) for scale).
    """
    if op not in ("knockout", "scale"):
        raise ValueError(f"attribution patching estimates knockout and scale only, not {op!r}")
    target = (target,) if isinstance(target, str) else tuple(target)
    gate = torch.ones(model.n_layers, model.n_heads, device=model.device, requires_grad=True)
    n_p, n_o = len(prompt.input_ids), len(output_ids)
    logits, _, _ = forward_teacher_forced(model.hf, model.tokenizer, [prompt], [output_ids],
                                          [GateProvider(gate, target)], grad=True)
    with torch.enable_grad():
        logp = answer_logp(logits[:, n_p - 1: n_p - 1 + n_o], output_ids)[0]
        (grad,) = torch.autograd.grad(logp, gate)
    g = grad.detach().cpu().numpy()
    delta = -1.0 if op == "knockout" else alpha - 1.0
    L, H = g.shape
    return pd.DataFrame({"layer": np.repeat(np.arange(L), H), "head": np.tile(np.arange(H), L),
                         "grad": g.ravel(), "estimate": g.ravel() * delta})


def attribution_vs_actual(model, prompt: Prompt, output_ids: Sequence[int], target="constraints",
                          op: str = "knockout", alpha: float = 1.0, sweep: pd.DataFrame | None = None,
                          batch_size: int = 32):
    """(Spearman rho, p, frame) of attribution estimates vs exact per-head effects (from `sweep` or a new sweep).

    The frame has one row per head: layer, head, estimate, actual.
    """
    est = attribution_scores(model, prompt, output_ids, target, op, alpha)
    if sweep is None:
        sweep = sweep_heads(model, prompt, output_ids, target, op, alpha, batch_size=batch_size, per_layer=False)
    act = sweep[sweep.kind == "head"][["layer", "head", "effect"]].rename(columns={"effect": "actual"})
    df = est.merge(act, on=["layer", "head"])[["layer", "head", "estimate", "actual"]]
    rho, p = spearman(df.estimate, df.actual)
    return rho, p, df


def spearman(a, b) -> tuple[float, float]:
    """Spearman rank correlation and its p-value; (nan, nan) when either side is constant or too short."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    r = sps.spearmanr(a, b)
    return float(r.statistic), float(r.pvalue)
