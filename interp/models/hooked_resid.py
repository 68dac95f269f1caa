"""Residual-stream and attention/MLP output hook points on every supported family (TransformerLens names).

Installed by `hooked_attention.install` as PyTorch module hooks that do nothing unless an active
`AttentionHooks` block has functions for them; inside ``with hooks:`` they fire, per layer l, on every
forward (each step of KV-cached generation, a teacher-forced pass, a plain ``m.hf(...)``):

- ``blocks.{l}.hook_resid_pre``   the residual stream entering block l ``[B, T, d_model]``
- ``blocks.{l}.attn.hook_z``      the attention output per head before the output projection ``[B, T, H, d_head]``
- ``blocks.{l}.attn.hook_result`` per-head output ``z_h @ W_O[h]`` ``[B, T, H, d_model]`` (no bias; sums + b_O to
  the projection's output)
- ``blocks.{l}.hook_attn_out``    what the attention branch adds to the residual stream ``[B, T, d_model]``
  (after a post-attention norm: gemma2/3, olmo2; times ``residual_multiplier``: granite)
- ``blocks.{l}.hook_resid_mid``   the residual stream between attention and MLP (``resid_pre + attn_out``);
  not defined for parallel attention+MLP blocks (phi, gpt-neox with ``use_parallel_residual``): refused
- ``blocks.{l}.hook_mlp_out``     what the MLP branch adds ``[B, T, d_model]``
- ``blocks.{l}.hook_resid_post``  the residual stream leaving block l

Each hook gets ``(tensor, call: ResidCall)``; returning a tensor replaces it (an edited ``resid_mid`` changes
what the attention branch adds, so the MLP *and* the residual see it). ``call.query_steps`` says which generated
token each row produces, as for attention hooks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InterpError
from .hooked_attention import ATTN_OUT_KINDS, RESID_KINDS, AttentionHooks, active_hooks

# families whose decoder layer adds a normed branch output (the module named here) instead of the branch itself
_POST_NORM = {"gemma2": ("post_attention_layernorm", "post_feedforward_layernorm"),
              "gemma3_text": ("post_attention_layernorm", "post_feedforward_layernorm"),
              "olmo2": ("post_attention_layernorm", "post_feedforward_layernorm")}
_ATTN = ("self_attn", "attn", "attention")
_O_PROJ = ("o_proj", "c_proj", "dense")


@dataclass
class ResidCall:
    """What a residual hook knows: layer, kind, which generated step each row produces (-1: none)."""

    layer: int
    kind: str
    query_steps: torch.Tensor  # [B, T] long
    hooks: AttentionHooks
    step: int | None = None  # the one step all rows produce (KV-cached decoding), else None


@dataclass
class BlockModules:
    """The modules of one decoder layer the hook points are attached to."""

    layer: torch.nn.Module
    attn_side: torch.nn.Module  # output = what the attention branch adds (before `multiplier`)
    mlp_side: torch.nn.Module
    o_proj: torch.nn.Module
    conv1d: bool  # gpt2's Conv1D (weight [in, out]) instead of Linear ([out, in])


def parallel_blocks(config) -> bool:
    """Whether attention and MLP read the same residual (no resid_mid): phi, gpt-neox with parallel residual."""
    mt = config.model_type
    return mt == "phi" or (mt == "gpt_neox" and bool(getattr(config, "use_parallel_residual", True)))


def decoder_layers(hf) -> list[torch.nn.Module]:
    base = hf.base_model
    for name in ("layers", "h"):
        if hasattr(base, name):
            return list(getattr(base, name))
    raise InterpError(f"cannot find the decoder layers of {type(hf).__name__} (looked for .layers, .h)")


def block_modules(hf, layer: torch.nn.Module) -> BlockModules:
    attn = next((getattr(layer, n) for n in _ATTN if hasattr(layer, n)), None)
    if attn is None:
        raise InterpError(f"no attention module in {type(layer).__name__} (looked for {', '.join(_ATTN)})")
    o = next((getattr(attn, n) for n in _O_PROJ if hasattr(attn, n)), None)
    if o is None:
        raise InterpError(f"no output projection in {type(attn).__name__} (looked for {', '.join(_O_PROJ)})")
    post = _POST_NORM.get(hf.config.model_type)
    attn_side = getattr(layer, post[0]) if post else attn
    mlp_side = getattr(layer, post[1]) if post else layer.mlp
    return BlockModules(layer, attn_side, mlp_side, o, conv1d=not isinstance(o, torch.nn.Linear))


def w_o(mods: BlockModules, n_heads: int) -> torch.Tensor:
    """The output projection as ``[H, d_head, d_model]`` (TransformerLens's W_O)."""
    W = mods.o_proj.weight
    W = W if mods.conv1d else W.T  # [H * d_head, d_model]
    return W.reshape(n_heads, W.shape[0] // n_heads, W.shape[1])


def resid_hook_names(model) -> list[str]:
    """Every residual / attention-output hook point of `model` (``blocks.{l}.hook_resid_pre`` ...)."""
    kinds = [k for k in RESID_KINDS if not (k == "hook_resid_mid" and parallel_blocks(model.config))]
    return [f"blocks.{l}.{k}" for l in range(model.n_layers) for k in kinds] + [
        f"blocks.{l}.attn.{k}" for l in range(model.n_layers) for k in ATTN_OUT_KINDS]


def check_kind(config, kind: str) -> None:
    """Refuse a hook kind this family does not have."""
    if kind not in RESID_KINDS + ATTN_OUT_KINDS:
        raise InterpError(f"unknown hook kind {kind!r}; expected one of {', '.join(RESID_KINDS + ATTN_OUT_KINDS)}")
    if kind == "hook_resid_mid" and parallel_blocks(config):
        raise InterpError(f"{config.model_type} runs attention and MLP in parallel on the same residual: there is "
                          "no hook_resid_mid (use hook_resid_pre / hook_attn_out / hook_mlp_out)")


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _replace_first(x, new):
    return (new, *x[1:]) if isinstance(x, tuple) else new


def _run(hooks: AttentionHooks, layer: int, kind: str, x: torch.Tensor) -> torch.Tensor:
    qs = hooks.query_steps
    if qs is None or qs.shape[:2] != x.shape[:2]:
        qs = torch.full(x.shape[:2], -1, dtype=torch.long, device=x.device)
    call = ResidCall(layer, kind, qs, hooks, hooks.step if x.shape[1] == 1 else None)
    for fn in hooks.fns(layer, kind):
        r = fn(x, call)  # type: ignore[arg-type]  # residual hooks get a ResidCall
        if r is not None:
            if r.shape != x.shape:
                raise InterpError(f"hook on blocks.{layer}.{kind} returned shape {tuple(r.shape)}, "
                                  f"expected {tuple(x.shape)}")
            x = r
    return x


class _LayerHooks:
    """The module hooks of one decoder layer (state: this forward's resid_pre, for resid_mid)."""

    def __init__(self, hf, idx: int, mods: BlockModules):
        self.idx, self.mods = idx, mods
        self.n_heads = int(hf.config.num_attention_heads)
        self.mult = float(getattr(hf.config, "residual_multiplier", 1.0) or 1.0)
        self.parallel = parallel_blocks(hf.config)
        self.model_type = hf.config.model_type
        self.resid_pre: torch.Tensor | None = None
        mods.layer.register_forward_pre_hook(self.pre, with_kwargs=True)
        mods.layer.register_forward_hook(self.post)
        mods.o_proj.register_forward_pre_hook(self.z)
        mods.o_proj.register_forward_hook(self.result)
        mods.attn_side.register_forward_hook(self.attn_out)
        mods.mlp_side.register_forward_hook(self.mlp_out)

    def _active(self, *kinds: str) -> AttentionHooks | None:
        h = active_hooks()
        if h is None or not h.has_layer(self.idx) or not any(h.fns(self.idx, k) for k in kinds):
            return None
        return h

    def pre(self, module, args, kwargs):
        h = self._active("hook_resid_pre", "hook_resid_mid")
        if h is None:
            return None
        x = args[0] if args else kwargs["hidden_states"]
        new = _run(h, self.idx, "hook_resid_pre", x)
        self.resid_pre = new
        if new is x:
            return None
        return ((new, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": new})

    def post(self, module, args, out):
        h = self._active("hook_resid_post")
        if h is None:
            return None
        x = _first(out)
        new = _run(h, self.idx, "hook_resid_post", x)
        return None if new is x else _replace_first(out, new)

    def z(self, module, args):
        h = self._active("hook_z")
        if h is None:
            return None
        x = args[0]
        z = x.view(*x.shape[:-1], self.n_heads, x.shape[-1] // self.n_heads)
        new = _run(h, self.idx, "hook_z", z)
        return None if new is z else (new.reshape(x.shape), *args[1:])

    def result(self, module, args, out):
        h = self._active("hook_result")
        if h is None:
            return None
        x = args[0]
        z = x.view(*x.shape[:-1], self.n_heads, x.shape[-1] // self.n_heads)
        res = torch.einsum("bthd,hdm->bthm", z, w_o(self.mods, self.n_heads).to(z.dtype))
        new = _run(h, self.idx, "hook_result", res)
        if new is res:
            return None
        b = getattr(module, "bias", None)
        return new.sum(2) + (b if b is not None else 0)

    def attn_out(self, module, args, out):
        h = self._active("hook_attn_out", "hook_resid_mid")
        if h is None:
            return None
        x = _first(out)
        a = x * self.mult if self.mult != 1.0 else x
        new = _run(h, self.idx, "hook_attn_out", a)
        if h.fns(self.idx, "hook_resid_mid"):
            if self.parallel:
                raise InterpError(f"{self.model_type} has no hook_resid_mid (parallel attention and MLP)")
            if self.resid_pre is None or self.resid_pre.shape != new.shape:
                raise InterpError("hook_resid_mid: the block's input was not seen in this forward")
            mid = self.resid_pre + new
            mid2 = _run(h, self.idx, "hook_resid_mid", mid)
            if mid2 is not mid:
                new = mid2 - self.resid_pre
        self.resid_pre = None
        if new is a:
            return None
        return _replace_first(out, new / self.mult if self.mult != 1.0 else new)

    def mlp_out(self, module, args, out):
        h = self._active("hook_mlp_out")
        if h is None:
            return None
        x = _first(out)
        a = x * self.mult if self.mult != 1.0 else x
        new = _run(h, self.idx, "hook_mlp_out", a)
        if new is a:
            return None
        return _replace_first(out, new / self.mult if self.mult != 1.0 else new)


def install_resid(hf) -> None:
    """Attach the residual / output hook points to every decoder layer of `hf` (idempotent)."""
    if getattr(hf, "_interp_resid_hooks", None) is not None:
        return
    layers: list[Any] = [_LayerHooks(hf, i, block_modules(hf, lay)) for i, lay in enumerate(decoder_layers(hf))]
    hf._interp_resid_hooks = layers
