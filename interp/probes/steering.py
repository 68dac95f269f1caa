"""Steering vectors: add ``alpha * direction`` to the residual stream at one layer during generation.

``interp.generate(m, prompts, capture=[Steer(layer=12, direction=d, alpha=-4.0)])`` adds the vector at
``blocks.12.hook_resid_pre`` (or any residual / output hook kind) on every position of every row, prefill and
each KV-cached decoding step alike (on the device: no host synchronisation). The value is serialisable (the
direction is stored as floats), and every row it produced carries it (``g.result(Steer).steer``), so a record
says exactly how it was steered and can be replayed.

Directions: `mean_difference` (difference of means of the residual stream between two prompt sets, e.g.
constrained minus unconstrained prompts of the same items, or failed minus solved) and `random_direction` (the
control: a seeded random direction of the same norm).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from ..errors import InterpError
from ..models.hooked_attention import ATTN_OUT_KINDS
from ..models.hooked_resid import check_kind
from .base import HookProvider, Probe, RowResult, register_probe
from .resid import Resid, hook_name

POSITIONS = ("all", "generated")


@dataclass(frozen=True, eq=False)
class SteerResult(RowResult):
    """The steering this row ran (the `Steer` value as a dict)."""

    steer: dict

    def legacy(self) -> dict[str, Any]:
        return {"steer": self.steer}


@register_probe
@dataclass(frozen=True)
class Steer(Probe):
    """Add ``alpha * direction`` at `hook` (default ``hook_resid_pre``) of `layer`; `positions` "all" (prompt
    and generated positions) or "generated" (only rows that produce generated tokens). `label` names the
    direction in records (``"constraint"``, ``"random"``)."""

    name: ClassVar[str] = "steer"
    result: ClassVar[type[RowResult]] = SteerResult
    layer: int = 0
    direction: tuple[float, ...] = ()
    alpha: float = 1.0
    hook: str = "hook_resid_pre"
    positions: str = "all"
    label: str = ""

    def __post_init__(self):
        d = np.asarray(self.direction, dtype=np.float64).reshape(-1) if len(self.direction) else np.zeros(0)
        if d.size == 0 or not np.all(np.isfinite(d)):
            raise InterpError("Steer(direction=...): pass a finite 1-D vector of d_model floats "
                              "(e.g. from interp.probes.steering.mean_difference)")
        object.__setattr__(self, "direction", tuple(float(x) for x in d))
        if not isinstance(self.layer, (int, np.integer)) or self.layer < 0:
            raise InterpError(f"Steer(layer={self.layer!r}): pass a non-negative layer index")
        object.__setattr__(self, "layer", int(self.layer))
        if not np.isfinite(float(self.alpha)):
            raise InterpError(f"Steer(alpha={self.alpha!r}) must be finite")
        object.__setattr__(self, "alpha", float(self.alpha))
        if self.hook in ATTN_OUT_KINDS:
            raise InterpError("Steer adds a d_model vector: use a residual / attn_out / mlp_out hook, not per-head")
        if self.positions not in POSITIONS:
            raise InterpError(f"Steer(positions={self.positions!r}): expected one of {POSITIONS}")

    def provider(self, model, max_steps: int) -> "SteerProvider":
        cfg = model.config
        check_kind(cfg, self.hook)
        if self.layer >= int(cfg.num_hidden_layers):
            raise InterpError(f"Steer(layer={self.layer}) on a model with {cfg.num_hidden_layers} layers")
        if len(self.direction) != int(cfg.hidden_size):
            raise InterpError(f"Steer: direction has {len(self.direction)} entries, the model's d_model is "
                              f"{cfg.hidden_size}")
        return SteerProvider(self)


class SteerProvider(HookProvider):
    def __init__(self, spec: Steer):
        self.spec = spec
        self._vec: torch.Tensor | None = None

    def attach(self, hooks, batch) -> None:
        dev = batch.input_ids.device
        self._vec = torch.tensor(self.spec.direction, dtype=torch.float32, device=dev) * self.spec.alpha
        hooks.add(hook_name(self.spec.hook, self.spec.layer), self._fn)

    def _fn(self, x: torch.Tensor, call) -> torch.Tensor:
        v = self._vec.to(x.dtype)  # type: ignore[union-attr]
        if self.spec.positions == "all" or call.step is not None:
            return x + v
        return x + (call.query_steps >= 0).to(x.dtype)[..., None] * v

    def collect(self, batch, n_tokens: list[int]) -> list[SteerResult]:
        return [SteerResult(self.spec.to_dict()) for _ in range(batch.size)]


def mean_residual(model, prompts, layers: Sequence[int], hook: str = "hook_resid_pre",
                  where: str = "last") -> np.ndarray:
    """Mean over `prompts` of the residual at `hook` of each of `layers` ``[len(layers), d_model]``, at each
    prompt's last position (`where="last"`) or averaged over its positions (`where="mean"`)."""
    from ..models.generation import forward_teacher_forced

    if not prompts:
        raise InterpError("mean_residual: no prompts")
    if where not in ("last", "mean"):
        raise InterpError(f"where={where!r}: expected 'last' or 'mean'")
    spec = Resid(hooks=(hook,), layers=tuple(layers), positions="prompt", reduce=None)
    prov = spec.provider(model, 1)
    _, batch, _ = forward_teacher_forced(model, list(prompts), [[] for _ in prompts], [prov])
    rows = prov.collect(batch, [0] * len(prompts))
    out = []
    for l in layers:
        a = [r.acts[hook_name(hook, l)] for r in rows]
        out.append(np.mean([x[-1] if where == "last" else x.mean(0) for x in a], axis=0))
    return np.stack(out)


def mean_difference(model, prompts_a, prompts_b, layers: Sequence[int], hook: str = "hook_resid_pre",
                    where: str = "last") -> np.ndarray:
    """Difference of means ``mean(a) - mean(b)`` per layer ``[len(layers), d_model]`` (e.g. a = constrained
    prompts, b = the same items' unconstrained prompts: the "constraint direction")."""
    return mean_residual(model, prompts_a, layers, hook, where) - mean_residual(model, prompts_b, layers, hook, where)


def random_direction(like: np.ndarray, seed: int = 0) -> np.ndarray:
    """A seeded random direction with the norm of `like` (the control for a steering direction)."""
    like = np.asarray(like, dtype=np.float64)
    r = np.random.default_rng(seed).standard_normal(like.shape)
    return r * (np.linalg.norm(like) / np.linalg.norm(r))
