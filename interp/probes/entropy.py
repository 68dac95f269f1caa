"""Per-head attention entropy: how spread out each head's attention is at every generated step.

``entropy[t, l, h] = -sum_j A[l, h, q_t, j] log A[l, h, q_t, j]`` (nats) over the keys j the query row q_t
(the row producing generated token t) sees; padding keys have A = 0 and add nothing. One class per piece
of the `interp.probes.Probe` protocol, and nothing outside this file: the example of how to add a probe.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import numpy as np
import torch

from ..errors import InterpError
from .base import HookProvider, Probe, RowResult, register_probe


@dataclass(frozen=True, eq=False)
class EntropyResult(RowResult):
    """``entropy[step, layer, head]`` (nats, float32) of one generation."""

    entropy: np.ndarray

    def legacy(self) -> dict:
        return {"attn_entropy": self.entropy}


@dataclass
class EntropyCapture(HookProvider):
    n_layers: int
    n_heads: int
    max_steps: int
    layers: Sequence[int] | None = None
    _out: torch.Tensor | None = field(default=None, repr=False)

    def attach(self, hooks, batch) -> None:
        self._out = torch.zeros(batch.size, self.max_steps, self.n_layers, self.n_heads, device=batch.input_ids.device)
        for l in range(self.n_layers) if self.layers is None else self.layers:
            hooks.add(f"blocks.{l}.attn.hook_pattern", self._hook)

    def _hook(self, pattern: torch.Tensor, call) -> None:
        p = pattern.float()
        ent = -torch.special.xlogy(p, p).sum(-1).transpose(1, 2)  # [B, rows, H]
        out = self._out
        assert out is not None
        if call.step is not None:
            if call.step < self.max_steps:
                out[:, call.step, call.layer] = ent[:, 0]
            return None
        steps = call.query_steps
        bi, ri = ((steps >= 0) & (steps < self.max_steps)).nonzero(as_tuple=True)
        out[bi, steps[bi, ri], call.layer] = ent[bi, ri]
        return None

    def collect(self, batch, n_tokens: list[int]) -> list[EntropyResult]:
        out = self._out.cpu().numpy()  # type: ignore[union-attr]
        self._out = None
        return [EntropyResult(out[b, :n].copy()) for b, n in enumerate(n_tokens)]


@register_probe
@dataclass(frozen=True)
class AttentionEntropy(Probe):
    """Capture per-head attention entropy (``capture=[AttentionEntropy()]``; ``g.result(AttentionEntropy)``)."""

    name: ClassVar[str] = "attn_entropy"
    result: ClassVar[type[RowResult]] = EntropyResult
    layers: tuple[int, ...] | None = None

    def provider(self, model, max_steps: int) -> EntropyCapture:
        if self.layers is not None and any(not 0 <= int(l) < model.n_layers for l in self.layers):
            raise InterpError(f"AttentionEntropy layers {list(self.layers)} outside the model's 0-{model.n_layers - 1}")
        return EntropyCapture(model.n_layers, model.n_heads, max(1, max_steps), self.layers)
