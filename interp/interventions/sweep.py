"""Head/layer sweeps: the effect of one intervention per head (and per layer) on an answer's log-likelihood.

Teacher-forced and batched: one item is repeated down the batch and every row carries its own
intervention, so an all-heads sweep (heads + layers + the unablated pass) costs a few passes.
Two exact shortcuts keep it cheap: interventions act only on generated steps, so the prompt prefix
runs once and its KV cache is shared by all rows; and layers below a batch's lowest intervened layer
run on a single row that is expanded to the batch there. `sweep_heads_sequential` is the plain
reference (one `forward_teacher_forced` per intervention) the batched sweep is tested against.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ..models.generation import Batch, cache_kwargs, forward_teacher_forced
from ..models.hooked_attention import AttentionHooks
from ..prompts import Prompt
from .spec import Intervention, InterventionProvider, RowInterventions  # noqa: F401 (re-exported)


def sweep_interventions(n_layers: int, n_heads: int, target="constraints", op: str = "knockout", alpha: float = 1.0,
                        layers: Sequence[int] | None = None, per_layer: bool = True) -> list[Intervention]:
    """One intervention per (layer, head), then one per whole layer, labelled ``L{l}H{h}`` / ``L{l}``."""
    layers = range(n_layers) if layers is None else layers
    ivs = [Intervention(target=target, op=op, alpha=alpha, heads=((l, h),), label=f"L{l}H{h}")
           for l in layers for h in range(n_heads)]
    if per_layer:
        ivs += [Intervention(target=target, op=op, alpha=alpha, layers=(l,), label=f"L{l}") for l in layers]
    return ivs


def _first_layer(ivs: Sequence[Intervention], n_layers: int, n_heads: int) -> int:
    acts = [int(np.flatnonzero(iv.head_mask(n_layers, n_heads).any(1))[0]) for iv in ivs
            if iv.head_mask(n_layers, n_heads).any()]
    return min(acts, default=n_layers)


def _decoder_layers(hf):
    inner = getattr(hf, "model", None)
    return getattr(inner, "layers", None)


def answer_logp(logits: torch.Tensor, output_ids: Sequence[int]) -> torch.Tensor:
    """Sum over tokens of log p(output token t | ...) from logits ``[B, n_out, V]`` aligned to the outputs."""
    ids = torch.as_tensor(list(output_ids), device=logits.device)
    x = logits.float()
    picked = x.gather(-1, ids.expand(logits.shape[0], -1)[..., None]).squeeze(-1)
    return (picked - torch.logsumexp(x, -1)).sum(-1)


class PrefixCache:
    """KV cache of a prompt without its last token, computed once; `cache(B, l_min)` hands out fresh copies
    whose layers from `l_min` on are expanded to B rows (layers below stay single-row)."""

    def __init__(self, model, prompt: Prompt):
        from transformers import DynamicCache

        if len(prompt.input_ids) < 2:
            raise ValueError("a sweep needs a prompt of at least two tokens")
        self.model, self.prompt = model, prompt
        cache = DynamicCache(config=model.hf.config)
        ids = torch.tensor([prompt.input_ids[:-1]], device=model.device)
        with torch.no_grad():
            model.hf(input_ids=ids, attention_mask=torch.ones_like(ids), **cache_kwargs(model.hf, cache), use_cache=True,
                     logits_to_keep=1)
        self.kv = [(layer.keys, layer.values) for layer in cache.layers]

    def cache(self, B: int, l_min: int):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.hf.config)
        for l, (k, v) in enumerate(self.kv):
            n = B if l >= l_min else 1
            cache.update(k.expand(n, -1, -1, -1).contiguous(), v.expand(n, -1, -1, -1).contiguous(), l)
        return cache


@torch.no_grad()
def logp_rows(model, prompt: Prompt, output_ids: Sequence[int], rows: Sequence[Sequence[Intervention]],
              prefix: PrefixCache | None = None) -> torch.Tensor:
    """Teacher-forced sum log p of `output_ids` after `prompt`, one value per row (row b runs `rows[b]`).

    Rows with prefill interventions change the prompt's own states, so they take the plain batched pass.
    """
    B, n_p, n_o = len(rows), len(prompt.input_ids), len(output_ids)
    flat = [iv for r in rows for iv in r]
    if any(iv.prefill for iv in flat):
        logits, _, _ = forward_teacher_forced(model.hf, model.tokenizer, [prompt] * B, [output_ids] * B,
                                              [RowInterventions(model.n_layers, model.n_heads, rows)])
        return answer_logp(logits[:, n_p - 1: n_p - 1 + n_o], output_ids)
    prefix = prefix or PrefixCache(model, prompt)
    layers = _decoder_layers(model.hf)
    l_min = _first_layer(flat, model.n_layers, model.n_heads) if layers is not None else 0
    split = 0 < l_min < model.n_layers
    dev = model.device
    suffix = torch.tensor([[prompt.input_ids[-1]] + list(output_ids[:-1])], device=dev)
    n_in = 1 if split else B
    batch = Batch([prompt] * B, torch.tensor([prompt.input_ids] * B, device=dev),
                  torch.ones(B, n_p, dtype=torch.long, device=dev), [0] * B)
    hooks = AttentionHooks()
    if flat:
        RowInterventions(model.n_layers, model.n_heads, rows).attach(hooks, batch)
    hooks.query_steps = torch.arange(n_o, device=dev).expand(B, -1)
    hooks.seq_len = n_p - 1 + n_o
    handle = None
    if split:
        def expand(_module, args, kwargs):
            return (args[0].expand(B, -1, -1).contiguous(), *args[1:]), kwargs

        handle = layers[l_min].register_forward_pre_hook(expand, with_kwargs=True)
    try:
        with hooks:
            logits = model.hf(input_ids=suffix.expand(n_in, -1),
                              attention_mask=torch.ones(n_in, n_p - 1 + n_o, dtype=torch.long, device=dev),
                              position_ids=torch.arange(n_p - 1, n_p - 1 + n_o, device=dev)[None].expand(n_in, -1),
                              **cache_kwargs(model.hf, prefix.cache(B, 0 if not split else l_min)), use_cache=True).logits
    finally:
        if handle is not None:
            handle.remove()
    return answer_logp(logits.expand(B, -1, -1), output_ids)


def _frame(ivs: Sequence[Intervention], logp: Sequence[float], base: float, n_layers: int, n_heads: int) -> pd.DataFrame:
    rows = [{"label": "none", "kind": "none", "layer": -1, "head": -1, "logp": base, "effect": 0.0}]
    for iv, lp in zip(ivs, logp):
        kind = "head" if iv.heads is not None and len(iv.heads) == 1 else "layer"
        l, h = (iv.heads[0] if kind == "head" else (iv.layers[0], -1))
        rows.append({"label": iv.label, "kind": kind, "layer": l, "head": h, "logp": float(lp),
                     "effect": float(lp) - base})
    return pd.DataFrame(rows)


def sweep_heads(model, prompt: Prompt, output_ids: Sequence[int], target="constraints", op: str = "knockout",
                alpha: float = 1.0, batch_size: int = 32, layers: Sequence[int] | None = None,
                per_layer: bool = True) -> pd.DataFrame:
    """Batched sweep: per head (and layer) the change in sum log p of `output_ids` when `op` hits `target`.

    Returns one row per intervention plus the unablated row: label, kind (none|head|layer), layer, head,
    logp and effect = logp - logp(unablated); positive effect = the intervention makes the answer likelier.
    """
    ivs = sweep_interventions(model.n_layers, model.n_heads, target, op, alpha, layers, per_layer)
    prefix = PrefixCache(model, prompt)
    base = float(logp_rows(model, prompt, output_ids, [[]], prefix)[0])
    order = sorted(range(len(ivs)), key=lambda i: _first_layer([ivs[i]], model.n_layers, model.n_heads))
    logp = np.zeros(len(ivs))
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        logp[idx] = logp_rows(model, prompt, output_ids, [[ivs[i]] for i in idx], prefix).cpu().numpy()
    return _frame(ivs, logp, base, model.n_layers, model.n_heads)


@torch.no_grad()
def sweep_heads_sequential(model, prompt: Prompt, output_ids: Sequence[int], target="constraints",
                           op: str = "knockout", alpha: float = 1.0, layers: Sequence[int] | None = None,
                           per_layer: bool = True) -> pd.DataFrame:
    """Reference sweep: one full teacher-forced pass per intervention (same output as `sweep_heads`).

    For mean_ablate the two differ slightly: `forward_teacher_forced`'s batch spans prompt + output, so the
    mean value also covers the output keys, while `sweep_heads` (like generation) averages over the prompt.
    """
    ivs = sweep_interventions(model.n_layers, model.n_heads, target, op, alpha, layers, per_layer)
    n_p, n_o = len(prompt.input_ids), len(output_ids)

    def one(rows):
        provs = [RowInterventions(model.n_layers, model.n_heads, rows)] if rows[0] else []
        logits, _, _ = forward_teacher_forced(model.hf, model.tokenizer, [prompt], [output_ids], provs)
        return float(answer_logp(logits[:, n_p - 1: n_p - 1 + n_o], output_ids)[0])

    base = one([[]])
    return _frame(ivs, [one([[iv]]) for iv in ivs], base, model.n_layers, model.n_heads)


def effect_grid(df: pd.DataFrame, n_layers: int, n_heads: int) -> tuple[np.ndarray, np.ndarray]:
    """(head effects [layers, heads], layer effects [layers]) from a sweep frame (NaN where not swept)."""
    heads = np.full((n_layers, n_heads), np.nan)
    lay = np.full(n_layers, np.nan)
    for r in df.itertuples():
        if r.kind == "head":
            heads[r.layer, r.head] = r.effect
        elif r.kind == "layer":
            lay[r.layer] = r.effect
    return heads, lay
