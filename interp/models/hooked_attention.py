"""Named, context-managed hook points inside every attention layer of a transformers model.

We register an attention function ("interp") with transformers' AttentionInterface. With no hooks
active it runs SDPA (eager for families SDPA cannot express: logit softcapping, learned sinks);
inside `with hooks:` it calls, per layer l (TransformerLens naming):

- ``blocks.{l}.attn.hook_attn_mask``    additive mask ``[batch, 1 or heads, rows, keys]`` of all query rows
  (causal + padding + sliding window; 0 = allowed, dtype-min = masked); stays on SDPA
- ``blocks.{l}.attn.hook_attn_scores``  pre-softmax scores ``[batch, heads, rows, keys]`` (may edit)
- ``blocks.{l}.attn.hook_v``            values after GQA expansion ``[batch, heads, keys, d_head]`` (may edit)
- ``blocks.{l}.attn.hook_pattern``      post-softmax pattern ``[batch, heads, rows, keys]`` (may edit)

Each hook gets ``(tensor, call: AttnCall)``; returning a tensor replaces it. ``call.query_steps``
tells for every row which generated token it produces (-1: a prompt row that produces none), so
hooks see every decoding step of the same KV-cached generation, and a teacher-forced pass alike.
Score/v/pattern hooks see only the rows that produce generated tokens unless ``hooks.all_rows``.
Hooks also fire on any other forward of the model inside the block (``m.hf(**inputs)``, HF ``generate``):
there every query row is hooked and every row's step is -1, keys start at position 0 (``hooks.seq_len`` unset).
A `with` block inside another adds the outer block's hooks (an outer ``m.hooks(...)`` keeps firing inside
``interp.generate``, on the query rows the inner block hooks: those that produce generated tokens).

Keys of a call are the absolute (left-padded) positions ``[call.key_offset, call.key_offset + kv_len)``:
a sliding-window cache layer keeps only the last window of keys, so consumers map their per-position
masks with ``call.key_slice(mask)``, never ``mask[:, :kv_len]``. The decoding loop sets ``hooks.seq_len``.
The eager path computes what HF's eager attention of each family computes: ``scaling``, ``softcap``
(tanh capping before the mask), ``s_aux`` (a learned per-head sink logit that takes a share of the
softmax and is dropped), ``dropout`` (as passed: transformers passes 0 outside training);
``sliding_window`` is already in the mask.
"""
from __future__ import annotations

import contextvars
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..errors import InterpError

HOOK_KINDS = ("hook_attn_mask", "hook_attn_scores", "hook_v", "hook_pattern")
# Residual-stream and attention-output hook points (module hooks installed by interp.models.hooked_resid).
RESID_KINDS = ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out")
ATTN_OUT_KINDS = ("hook_z", "hook_result")
_NAME = re.compile(r"^blocks\.(\d+|\*)\.(?:attn\.(" + "|".join(HOOK_KINDS + ATTN_OUT_KINDS) + r")|("
                   + "|".join(RESID_KINDS) + r"))$")
_EAGER_KINDS = ("hook_attn_scores", "hook_v", "hook_pattern")
_ACTIVE: contextvars.ContextVar["AttentionHooks | None"] = contextvars.ContextVar("interp_hooks", default=None)
ATTN_NAME = "interp"
# Architectures whose attention goes through transformers' pluggable attention interface and whose hooked
# attention is verified against HF eager attention by tests/test_conformance.py (every entry must be there).
SUPPORTED_MODEL_TYPES = {
    "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo", "olmo2",
    "granite", "starcoder2", "smollm3", "qwen2_moe", "qwen3_moe", "mixtral", "gpt_neox", "gpt_oss", "gpt2", "phi",
}


@dataclass
class AttnCall:
    """What a hook knows about the call: layer, which generated step each row produces, which keys it sees."""

    layer: int
    query_steps: torch.Tensor  # [batch, rows] long, -1 = prompt row
    kv_len: int
    hooks: "AttentionHooks"
    step: int | None = None  # the one step all rows produce (KV-cached decoding), else None
    key_offset: int = 0  # keys are absolute positions [key_offset, key_offset + kv_len)
    sink_share: torch.Tensor | None = None  # [B, H, rows, 1] softmax share of a learned sink (gpt-oss), else None

    def key_slice(self, mask: torch.Tensor) -> torch.Tensor:
        """Columns ``key_offset : key_offset + kv_len`` of a per-position ``[..., T]`` mask (zero/False past T)."""
        lo, hi = self.key_offset, self.key_offset + self.kv_len
        T = mask.shape[-1]
        if lo == 0 and hi == T:
            return mask
        part = mask[..., min(lo, T): min(hi, T)]
        if part.shape[-1] < self.kv_len:
            part = F.pad(part, (0, self.kv_len - part.shape[-1]))
        return part


HookFn = Callable[[torch.Tensor, AttnCall], "torch.Tensor | None"]


class AttentionHooks:
    """A set of hook functions by name; active (and removed on exit) inside a `with` block.

    `all_rows=True` makes the hooked path run on every query row, prompt rows included (needed by
    interventions that act during prefill); otherwise only rows that produce generated tokens.
    `seq_len` is the absolute (padded) sequence length including this call's queries, set by the
    decoding loop at every step; None means the keys are the whole sequence (no cache).
    """

    def __init__(self):
        self._fns: dict[int | str, dict[str, list[HookFn]]] = defaultdict(lambda: defaultdict(list))
        self.all_rows = False
        self.query_steps: torch.Tensor | None = None
        self.step: int | None = None
        self.seq_len: int | None = None
        self._token = None
        self._outer: AttentionHooks | None = None  # the block this one was entered inside (its hooks fire too)

    def add(self, name: str, fn: HookFn) -> "AttentionHooks":
        m = _NAME.match(name)
        if not m:
            raise ValueError(f"unknown hook point {name!r}; expected blocks.<layer|*>.attn.<{'|'.join(HOOK_KINDS)}>")
        layer = "*" if m.group(1) == "*" else int(m.group(1))
        self._fns[layer][m.group(2) or m.group(3)].append(fn)
        return self

    def fns(self, layer: int, kind: str) -> list[HookFn]:
        own = self._fns.get(layer, {}).get(kind, []) + self._fns.get("*", {}).get(kind, [])
        return own + self._outer.fns(layer, kind) if self._outer is not None else own

    def has_layer(self, layer: int) -> bool:
        return layer in self._fns or "*" in self._fns or (self._outer is not None and self._outer.has_layer(layer))

    def check_layers(self, n_layers: int) -> None:
        """Refuse hook points on layers the model does not have (they would never fire)."""
        bad = sorted(l for l in self._fns if l != "*" and not 0 <= int(l) < n_layers)
        if bad:
            raise InterpError(f"hook points on layers {bad} of a model with {n_layers} layers (0-{n_layers - 1}) "
                              "would never fire")

    def __enter__(self):
        outer = _ACTIVE.get()
        self._outer = outer if outer is not self else None
        self._token = _ACTIVE.set(self)
        return self

    def __exit__(self, *exc):
        _ACTIVE.reset(self._token)
        self._token = self._outer = None
        return False


def active_hooks() -> "AttentionHooks | None":
    return _ACTIVE.get()


def hook_names(model) -> list[str]:
    """Every hook point of `model`, in TransformerLens naming (``blocks.{l}.attn.{kind}``)."""
    return [f"blocks.{l}.attn.{k}" for l in range(model.n_layers) for k in HOOK_KINDS]


def resolve_hook_names(model, name: str | Callable[[str], bool]) -> list[str]:
    """Concrete hook point names of `model` for a name, a ``*`` pattern (``blocks.*.attn.hook_pattern``) or a
    name filter; an unknown name or nothing matching is an error (layers outside the model: `check_layers`)."""
    if isinstance(name, str) and "*" not in name:
        if not _NAME.match(name):
            raise InterpError(f"unknown hook point {name!r}; expected blocks.<layer>.attn.<{'|'.join(HOOK_KINDS)}>")
        return [name]
    every = hook_names(model)
    if callable(name):
        found = [n for n in every if name(n)]
    else:
        rx = re.compile("^" + re.escape(name).replace(r"\*", r"[^.]+") + "$")
        found = [n for n in every if rx.match(n)]
    if not found:
        raise InterpError(f"hook filter {name!r} matches no hook point of this model (see interp.hook_names(m))")
    return found


def hooks(model, fwd_hooks: Any = ()) -> AttentionHooks:
    """An `AttentionHooks` block with `fwd_hooks` (``[(name or filter, fn)]`` or ``{name: fn}``) on `model`.

    ``fn(tensor, call)`` gets the tensor (see `interp.models.hooked_attention`) and an `AttnCall`; returning a
    tensor replaces it. Use as ``with interp.hooks(m, ...):``; hooks are removed on exit. A name on a layer
    the model lacks is an error (it would never fire).
    """
    require_hooked(model.hf, "these hooks")
    pairs = list(fwd_hooks.items()) if isinstance(fwd_hooks, dict) else list(fwd_hooks)
    h = AttentionHooks()
    for name, fn in pairs:
        if not callable(fn):
            raise InterpError(f"hook for {name!r} is not callable")
        for n in resolve_hook_names(model, name):
            h.add(n, fn)
    h.check_layers(model.n_layers)
    return h


def _additive_mask(attention_mask, query, kv_len: int) -> torch.Tensor:
    """The call's mask as an additive float ``[B, 1|H, q, kv_len]``; causal (queries last) when HF passes none."""
    q_len = query.shape[2]
    if attention_mask is None:
        i = torch.arange(q_len, device=query.device)[:, None] + (kv_len - q_len)
        allowed = torch.arange(kv_len, device=query.device)[None, :] <= i
        attention_mask = allowed[None, None]
    if attention_mask.dtype == torch.bool:
        return torch.zeros(attention_mask.shape, dtype=query.dtype, device=query.device).masked_fill(
            ~attention_mask, torch.finfo(query.dtype).min)[..., :kv_len]
    return attention_mask[..., :kv_len]


def _sdpa(query, key, value, mask, scaling, dropout):
    n_rep = query.shape[1] // key.shape[1]
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling,
                                          enable_gqa=n_rep > 1)


def _eager(q, key, value, mask, scaling, softcap, sinks, dropout, hooks, call, weights: list | None = None):
    """HF-eager attention of the query rows `q` [B, H, R, D] with the score/v/pattern hooks in between
    (the post-hook pattern is appended to `weights` when given: ``output_attentions=True``)."""
    B, H, R, D = q.shape
    KVH, kv_len = key.shape[1], key.shape[2]
    n_rep = H // KVH
    # grouped-query attention without copying the KV cache: query heads kv*n_rep + r share KV head kv
    scores = torch.matmul(q.reshape(B, KVH, n_rep * R, D), key.transpose(2, 3)).view(B, H, R, kv_len) * scaling
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    scores = scores + mask
    for fn in (hooks.fns(call.layer, "hook_attn_scores") if hooks is not None else []):
        r = fn(scores, call)
        if r is not None:
            scores = r
    if sinks is not None:
        logits = torch.cat([scores, sinks.reshape(1, -1, 1, 1).expand(B, H, R, 1).to(scores.dtype)], dim=-1)
        logits = logits - logits.max(dim=-1, keepdim=True).values
        probs = torch.softmax(logits, dim=-1, dtype=logits.dtype)
        pattern, call.sink_share = probs[..., :-1].to(q.dtype), probs[..., -1:]
    else:
        pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    if dropout:
        pattern = F.dropout(pattern, p=dropout, training=True)
    v_hooks = hooks.fns(call.layer, "hook_v") if hooks is not None else []
    v = _repeat_kv(value, n_rep) if v_hooks else None
    for fn in v_hooks:
        r = fn(v, call)
        if r is not None:
            v = r
    for fn in (hooks.fns(call.layer, "hook_pattern") if hooks is not None else []):
        r = fn(pattern, call)
        if r is not None:
            pattern = r
    if weights is not None:
        weights.append(pattern)
    if v is None:
        return torch.matmul(pattern.reshape(B, KVH, n_rep * R, kv_len), value).view(B, H, R, D)
    return torch.matmul(pattern, v)


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def hooked_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None,
                             s_aux=None, sliding_window=None, **kwargs):
    """Attention for transformers models: SDPA or HF-eager maths, with the active hooks in between.

    `sliding_window` needs no handling here: transformers puts the window into the mask of sliding layers.
    """
    hooks = _ACTIVE.get()
    layer = getattr(module, "layer_idx", 0)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    q_len, kv_len = query.shape[2], key.shape[2]
    mask = _additive_mask(attention_mask, query, kv_len)
    family_eager = softcap is not None or s_aux is not None
    if _attentions_requested():  # output_attentions=True: HF eager's weights of every row (hooks applied)
        steps = query.new_full((query.shape[0], q_len), -1, dtype=torch.long)
        call = AttnCall(layer, steps if hooks is None or hooks.query_steps is None else hooks.query_steps, kv_len,
                        hooks, key_offset=0 if hooks is None or hooks.seq_len is None else max(0, hooks.seq_len - kv_len))
        if hooks is not None and hooks.has_layer(layer):
            for fn in hooks.fns(layer, "hook_attn_mask"):
                r = fn(mask, call)
                mask = mask if r is None else r
        weights: list = []
        out = _eager(query, key, value, mask, scaling, softcap, s_aux, dropout,
                     hooks if hooks is not None and hooks.has_layer(layer) else None, call, weights)
        return out.transpose(1, 2).contiguous(), weights[0]
    if hooks is None or not hooks.has_layer(layer):
        if family_eager:
            out = _eager(query, key, value, mask, scaling, softcap, s_aux, dropout, None,
                         AttnCall(layer, query.new_zeros(0, dtype=torch.long), kv_len, hooks))
        else:
            out = _sdpa(query, key, value, mask, scaling, dropout)
        return out.transpose(1, 2).contiguous(), None
    plain = hooks.query_steps is None  # a forward outside interp's loops: every row hooked, none generated
    steps = query.new_full((query.shape[0], q_len), -1, dtype=torch.long) if plain else hooks.query_steps
    seq_len = hooks.seq_len if hooks.seq_len is not None else kv_len
    offset = max(0, seq_len - kv_len)
    step = hooks.step if q_len == 1 else None
    mask_fns = hooks.fns(layer, "hook_attn_mask")
    if mask_fns:
        call = AttnCall(layer=layer, query_steps=steps, kv_len=kv_len, hooks=hooks, step=step, key_offset=offset)
        for fn in mask_fns:
            r = fn(mask, call)
            if r is not None:
                mask = r
    eager_hooks = any(hooks.fns(layer, k) for k in _EAGER_KINDS)
    if not eager_hooks and not family_eager:
        return _sdpa(query, key, value, mask, scaling, dropout).transpose(1, 2).contiguous(), None
    if plain or hooks.all_rows or q_len == 1 or family_eager:
        rows, out = None, None
    else:
        rows = (steps >= 0).any(0).nonzero().squeeze(-1)
        out = _sdpa(query, key, value, mask, scaling, dropout)
        if rows.numel() == 0:
            return out.transpose(1, 2).contiguous(), None
    q_rows, steps_rows = (query, steps) if rows is None else (query[:, :, rows], steps[:, rows])
    mask_rows = mask if rows is None or mask.shape[2] == 1 else mask[:, :, rows]
    call = AttnCall(layer=layer, query_steps=steps_rows, kv_len=kv_len, hooks=hooks, step=step, key_offset=offset)
    out_rows = _eager(q_rows, key, value, mask_rows, scaling, softcap, s_aux, dropout, hooks, call)
    if rows is None:
        out = out_rows
    else:
        out = out.clone()
        out[:, :, rows] = out_rows
    return out.transpose(1, 2).contiguous(), None


def _attentions_requested() -> bool:
    """True inside a transformers forward called with ``output_attentions=True`` (its output recorder is on)."""
    try:
        from transformers.utils.output_capturing import _active_collector
    except ImportError:  # pragma: no cover - older transformers pass output_attentions to the attention
        return False
    rec = _active_collector.get()
    return bool(rec) and "attentions" in rec


def require_hooked(hf, what: str = "hooks, CAS and interventions") -> None:
    """Refuse a model whose attention is no longer interp's (e.g. after ``m.hf.set_attn_implementation("eager")``):
    its hook points would never fire, so CAS would read zeros and interventions would do nothing."""
    impl = getattr(hf.config, "_attn_implementation", None)
    if impl != ATTN_NAME:
        raise InterpError(
            f"the model's attention implementation is {impl!r}, not interp's hooked attention, so {what} would "
            f"silently do nothing (was m.hf.set_attn_implementation({impl!r}) called?). Switch back with "
            "interp.models.hooked_attention.install(m.hf); `output_attentions=True` works on interp's attention")


def check_supported(config, what: str | None = None) -> None:
    """Raise one `InterpError` naming the supported families (and how to add one) for any other model type."""
    mt = getattr(config, "model_type", None)
    if mt in SUPPORTED_MODEL_TYPES:
        return
    of = f" of {what!r}" if what else ""
    raise InterpError(
        f"model type {mt!r}{of} is not supported for hooked attention (CAS and interventions would not be checked "
        f"against HF eager attention); supported: {', '.join(sorted(SUPPORTED_MODEL_TYPES))}. To add a family, "
        f"add it to SUPPORTED_MODEL_TYPES and to FAMILIES in tests/test_conformance.py and make that suite pass "
        f"(README: 'Adding a model family')")


_installed = False


def install(model) -> None:
    """Register the hooked attention with transformers and switch `model` to it (idempotent).

    Raises `InterpError` for a model type whose hooked attention is not verified (see `check_supported`).
    """
    global _installed
    check_supported(model.config)
    if not _installed:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

        AttentionInterface.register(ATTN_NAME, hooked_attention_forward)
        ALL_MASK_ATTENTION_FUNCTIONS.register(ATTN_NAME, eager_mask)
        _installed = True
    model.set_attn_implementation(ATTN_NAME)
    from .hooked_resid import install_resid

    install_resid(model)
