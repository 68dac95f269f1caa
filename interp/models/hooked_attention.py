"""Named, context-managed hook points inside every attention layer of a transformers model.

We register an attention function ("interp") with transformers' AttentionInterface. With no hooks
active it runs SDPA; inside `with hooks:` it computes the rows that produce generated tokens eagerly
and calls, per layer l (TransformerLens naming):

- ``blocks.{l}.attn.hook_attn_mask``    additive attention mask ``[batch, 1 or heads, q_rows, keys]`` (may edit;
  a layer with only mask hooks stays on SDPA, no pattern is materialised)
- ``blocks.{l}.attn.hook_attn_scores``  pre-softmax scores ``[batch, heads, rows, keys]`` (may edit)
- ``blocks.{l}.attn.hook_v``            values after GQA expansion ``[batch, heads, keys, d_head]`` (may edit)
- ``blocks.{l}.attn.hook_pattern``      post-softmax pattern ``[batch, heads, rows, keys]`` (may edit)

Each hook gets ``(tensor, call: AttnCall)``; returning a tensor replaces it. ``call.query_steps``
tells for every row which generated token it produces (-1: a prompt row that produces none), so
hooks see every decoding step of the same KV-cached generation, and a teacher-forced pass alike.
"""
from __future__ import annotations

import contextvars
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

HOOK_KINDS = ("hook_attn_mask", "hook_attn_scores", "hook_v", "hook_pattern")
_NAME = re.compile(r"^blocks\.(\d+|\*)\.attn\.(" + "|".join(HOOK_KINDS) + r")$")
_ACTIVE: contextvars.ContextVar["AttentionHooks | None"] = contextvars.ContextVar("interp_hooks", default=None)
ATTN_NAME = "interp"


@dataclass
class AttnCall:
    """What a hook knows about the call: layer, which generated step each row produces, key length."""

    layer: int
    query_steps: torch.Tensor  # [batch, rows] long, -1 = prompt row
    kv_len: int
    hooks: "AttentionHooks"
    step: int | None = None  # the one step all rows produce (KV-cached decoding), else None
    key_offset: int = 0  # keys of this call are absolute positions [key_offset, key_offset + kv_len)

    def key_slice(self, mask: torch.Tensor) -> torch.Tensor:
        """``[..., T]`` over absolute positions -> ``[..., kv_len]`` for this call's keys (zero/False past T)."""
        part = mask[..., self.key_offset: self.key_offset + self.kv_len]
        short = self.kv_len - part.shape[-1]
        return F.pad(part, (0, short)) if short > 0 else part


HookFn = Callable[[torch.Tensor, AttnCall], "torch.Tensor | None"]


class AttentionHooks:
    """A set of hook functions by name; active (and removed on exit) inside a `with` block.

    `all_rows=True` makes the hooked path run on every query row, prompt rows included (needed by
    interventions that act during prefill); otherwise only rows that produce generated tokens.
    """

    def __init__(self):
        self._fns: dict[int | str, dict[str, list[HookFn]]] = defaultdict(lambda: defaultdict(list))
        self.all_rows = False
        self.query_steps: torch.Tensor | None = None
        self.step: int | None = None
        self.seq_len: int | None = None  # absolute sequence length of this forward (set by the decoding loop)
        self._token = None

    def add(self, name: str, fn: HookFn) -> "AttentionHooks":
        m = _NAME.match(name)
        if not m:
            raise ValueError(f"unknown hook point {name!r}; expected blocks.<layer|*>.attn.<{'|'.join(HOOK_KINDS)}>")
        layer = "*" if m.group(1) == "*" else int(m.group(1))
        self._fns[layer][m.group(2)].append(fn)
        return self

    def fns(self, layer: int, kind: str) -> list[HookFn]:
        return self._fns.get(layer, {}).get(kind, []) + self._fns.get("*", {}).get(kind, [])

    def has_layer(self, layer: int) -> bool:
        return layer in self._fns or "*" in self._fns

    def needs_eager(self, layer: int) -> bool:
        """Whether this layer has hooks that need the eager path (anything but mask hooks)."""
        return any(self.fns(layer, k) for k in HOOK_KINDS if k != "hook_attn_mask")

    def __enter__(self):
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc):
        _ACTIVE.reset(self._token)
        self._token = None
        return False


def active_hooks() -> "AttentionHooks | None":
    return _ACTIVE.get()


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def _sdpa(query, key, value, attention_mask, scaling):
    n_rep = query.shape[1] // key.shape[1]
    return F.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask if attention_mask is None else attention_mask[:, :, :, : key.shape[-2]],
        scale=scaling, enable_gqa=n_rep > 1)


def hooked_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention for transformers models: SDPA, plus an eager path through the active hooks."""
    hooks = _ACTIVE.get()
    layer = getattr(module, "layer_idx", 0)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        attention_mask = torch.zeros(attention_mask.shape, dtype=query.dtype, device=query.device).masked_fill(
            ~attention_mask, torch.finfo(query.dtype).min)
    if hooks is None or hooks.query_steps is None or not hooks.has_layer(layer):
        out = _sdpa(query, key, value, attention_mask, scaling)
        return out.transpose(1, 2).contiguous(), None
    steps = hooks.query_steps
    q_len, kv_len = query.shape[2], key.shape[2]
    key_offset = 0 if hooks.seq_len is None else hooks.seq_len - kv_len
    mask_fns = hooks.fns(layer, "hook_attn_mask")
    if mask_fns:
        m = (torch.zeros(1, 1, q_len, kv_len, dtype=query.dtype, device=query.device) if attention_mask is None
             else attention_mask[:, :, :, :kv_len])
        call = AttnCall(layer=layer, query_steps=steps, kv_len=kv_len, hooks=hooks,
                        step=hooks.step if q_len == 1 else None, key_offset=key_offset)
        for fn in mask_fns:
            r = fn(m, call)
            if r is not None:
                m = r
        attention_mask = m
        if not hooks.needs_eager(layer):
            out = _sdpa(query, key, value, attention_mask, scaling)
            return out.transpose(1, 2).contiguous(), None
    if hooks.all_rows or q_len == 1:
        rows = None
        q_rows, steps_rows = query, steps
        out = None
    else:
        sel = (steps >= 0).any(0).nonzero().squeeze(-1)
        if sel.numel() == 0:
            out = _sdpa(query, key, value, attention_mask, scaling)
            return out.transpose(1, 2).contiguous(), None
        rows = sel
        out = _sdpa(query, key, value, attention_mask, scaling)
        q_rows, steps_rows = query[:, :, rows], steps[:, rows]
    call = AttnCall(layer=layer, query_steps=steps_rows, kv_len=kv_len, hooks=hooks,
                    step=hooks.step if q_len == 1 else None, key_offset=key_offset)
    B, H, R, D = q_rows.shape
    KVH = key.shape[1]
    n_rep = H // KVH
    # grouped-query attention without copying the KV cache: query heads kv*n_rep + r share KV head kv
    scores = torch.matmul(q_rows.reshape(B, KVH, n_rep * R, D), key.transpose(2, 3)).view(B, H, R, kv_len) * scaling
    if attention_mask is not None:
        m = attention_mask[:, :, :, :kv_len]
        scores = scores + (m if rows is None else m[:, :, rows])
    for fn in hooks.fns(layer, "hook_attn_scores"):
        r = fn(scores, call)
        if r is not None:
            scores = r
    pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    v_hooks = hooks.fns(layer, "hook_v")
    v = _repeat_kv(value, n_rep) if v_hooks else None
    for fn in v_hooks:
        r = fn(v, call)
        if r is not None:
            v = r
    for fn in hooks.fns(layer, "hook_pattern"):
        r = fn(pattern, call)
        if r is not None:
            pattern = r
    if v is None:
        out_rows = torch.matmul(pattern.reshape(B, KVH, n_rep * R, kv_len), value).view(B, H, R, D)
    else:
        out_rows = torch.matmul(pattern, v)
    if rows is None:
        out = out_rows
    else:
        out = out.clone()
        out[:, :, rows] = out_rows
    return out.transpose(1, 2).contiguous(), None


_installed = False


def install(model) -> None:
    """Register the hooked attention with transformers and switch `model` to it (idempotent)."""
    global _installed
    if not _installed:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

        AttentionInterface.register(ATTN_NAME, hooked_attention_forward)
        ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN_NAME, eager_mask)
        _installed = True
    model.set_attn_implementation(ATTN_NAME)
