"""`Resid`: capture residual-stream / attention-output / MLP-output activations, bounded by what is asked.

``interp.generate(m, prompts, capture=[Resid(hooks=("hook_resid_post",), layers=(3, 7))])`` records, per row,
``g.result(Resid).acts["blocks.3.hook_resid_post"]``: ``[steps, d_model]`` where step t is the query row that
produces generated token t (the last prompt position for t = 0), or ``[prompt_len, d_model]`` with
``positions="prompt"``, or the mean over those positions with ``reduce="mean"``. Device memory per batch is
``B x (max_steps or prompt_len) x features`` per (hook, layer) asked for, nothing for the rest; no host
synchronisation per step (rows are written with on-device scatters, copied to the host once after the batch).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import InterpError
from ..models.hooked_attention import ATTN_OUT_KINDS, RESID_KINDS
from ..models.hooked_resid import check_kind
from .base import HookProvider, Probe, RowResult, register_probe

POSITIONS = ("steps", "prompt")
REDUCE = (None, "mean")


def hook_name(kind: str, layer: int) -> str:
    """TransformerLens name of `kind` at `layer` (``blocks.3.attn.hook_z``, ``blocks.3.hook_resid_pre``)."""
    return f"blocks.{layer}.attn.{kind}" if kind in ATTN_OUT_KINDS else f"blocks.{layer}.{kind}"


@dataclass(frozen=True, eq=False)
class ResidResult(RowResult):
    """One row's activations by hook name, as float32 numpy arrays."""

    acts: dict[str, np.ndarray] = field(default_factory=dict)

    def legacy(self) -> dict[str, Any]:
        return {"resid": self.acts}


@register_probe
@dataclass(frozen=True)
class Resid(Probe):
    """Record activations at `hooks` (kinds: hook_resid_pre/mid/post, hook_attn_out, hook_mlp_out, hook_z,
    hook_result) of `layers` (None: all), at `positions` ("steps": rows producing generated tokens; "prompt":
    the prompt's own positions), optionally reduced over positions (`reduce="mean"`)."""

    name: ClassVar[str] = "resid"
    result: ClassVar[type[RowResult]] = ResidResult
    hooks: tuple[str, ...] = ("hook_resid_post",)
    layers: tuple[int, ...] | None = None
    positions: str = "steps"
    reduce: str | None = None

    def __post_init__(self):
        hooks = (self.hooks,) if isinstance(self.hooks, str) else tuple(self.hooks)
        object.__setattr__(self, "hooks", hooks)
        if not hooks:
            raise InterpError("Resid(hooks=...) is empty; pass e.g. hooks=('hook_resid_post',)")
        for k in hooks:
            if k not in RESID_KINDS + ATTN_OUT_KINDS:
                raise InterpError(f"Resid: unknown hook kind {k!r}; expected {', '.join(RESID_KINDS + ATTN_OUT_KINDS)}")
        if self.layers is not None:
            layers = tuple(int(x) for x in self.layers)
            if not layers or any(x < 0 for x in layers):
                raise InterpError(f"Resid(layers={self.layers!r}): pass non-negative layer indices or None (all)")
            object.__setattr__(self, "layers", layers)
        if self.positions not in POSITIONS:
            raise InterpError(f"Resid(positions={self.positions!r}): expected one of {POSITIONS}")
        if self.reduce not in REDUCE:
            raise InterpError(f"Resid(reduce={self.reduce!r}): expected one of {REDUCE}")

    def provider(self, model, max_steps: int) -> "ResidCapture":
        cfg = model.config if hasattr(model, "config") else model
        n_layers = int(cfg.num_hidden_layers)
        layers = self.layers if self.layers is not None else tuple(range(n_layers))
        bad = [x for x in layers if x >= n_layers]
        if bad:
            raise InterpError(f"Resid: layers {bad} out of range for a model with {n_layers} layers")
        for k in self.hooks:
            check_kind(cfg, k)
        return ResidCapture(self, [hook_name(k, x) for k in self.hooks for x in layers], max(1, int(max_steps)))


class ResidCapture(HookProvider):
    """The per-batch provider of `Resid`: one device buffer per hook name, filled in place."""

    def __init__(self, spec: Resid, names: list[str], max_steps: int):
        self.spec, self.names, self.max_steps = spec, names, max_steps
        self.bufs: dict[str, torch.Tensor] = {}

    def attach(self, hooks, batch) -> None:
        self.bufs = {}
        for n in self.names:
            hooks.add(n, self._fn(n))

    def _fn(self, name: str):
        S = self.max_steps

        def fn(x: torch.Tensor, call) -> None:
            if self.spec.positions == "prompt":
                if x.shape[1] > 1 and name not in self.bufs:  # the prefill (or teacher-forced) pass
                    self.bufs[name] = x.detach().float().clone()
                return
            buf = self.bufs.get(name)
            if buf is None:
                buf = self.bufs[name] = x.new_zeros((x.shape[0], S + 1, *x.shape[2:]), dtype=torch.float32)
            if call.step is not None:
                if call.step < S:
                    buf[:, call.step] = x[:, 0].float()
                return
            qs = call.query_steps
            target = torch.where((qs >= 0) & (qs < S), qs, torch.full_like(qs, S))  # S: a discarded slot
            idx = target.reshape(*target.shape, *([1] * (x.dim() - 2))).expand_as(x)
            buf.scatter_(1, idx, x.detach().float())
        return fn

    def collect(self, batch, n_tokens: list[int]) -> list[ResidResult]:
        host = {n: b.cpu().numpy() for n, b in self.bufs.items()}
        out = []
        for b in range(batch.size):
            acts = {}
            for n in self.names:
                if n not in host:
                    raise InterpError(f"Resid: hook point {n} never fired in this batch")
                if self.spec.positions == "prompt":
                    n_p = len(batch.prompts[b].input_ids)
                    a = host[n][b, batch.pad[b]: batch.pad[b] + n_p]
                else:
                    a = host[n][b, : min(n_tokens[b], self.max_steps)]
                acts[n] = a.mean(0) if self.spec.reduce == "mean" else a.copy()
            out.append(ResidResult(acts))
        return out
