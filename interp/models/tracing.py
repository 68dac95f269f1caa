"""Hooks on any forward, TransformerLens style: `hooks`, `run_with_hooks`, `run_with_cache`, `trace`.

- ``with interp.hooks(m, [("blocks.3.attn.hook_pattern", fn)]):`` (or ``m.hooks(...)``) makes the named hook
  points fire on every forward of the model inside the block: a plain ``m.hf(**inputs)``, HF ``generate`` and
  `interp.generate` alike. Names are checked against the model, so a hook that could never fire is an error.
- `run_with_hooks(m, prompts, fwd_hooks)` -> logits; `run_with_cache(m, prompts, names, rows)` -> (logits,
  cache) with the hooked tensors of the query rows asked for (``rows=[-1]``: each prompt's last token).
- `trace(m, prompts, outputs, capture=[CAS()], interventions=...)`: a teacher-forced pass over stored outputs
  with the same capture and intervention values as `interp.generate`, returning `Generation`s plus logits.

Prompts are `Prompt`s or plain strings (a one-part chat prompt). Batches are left-padded: row b's first
``pad[b]`` positions (``cache.pad``, ``result.pad``) are padding.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch

from ..errors import InterpError
from ..prompts import Prompt
from .generation import (Batch, CaptureSpec, Generation, _as_prompt, _per_prompt_interventions, forward_teacher_forced,
                         make_batch)
from .hooked_attention import HOOK_KINDS, AttentionHooks, AttnCall, HookFn

def hook_names(model) -> list[str]:
    """Every hook point of `model`, in TransformerLens naming (``blocks.{l}.attn.{kind}``)."""
    return [f"blocks.{l}.attn.{k}" for l in range(model.n_layers) for k in HOOK_KINDS]


def _resolve(model, name: str | Callable[[str], bool]) -> list[str]:
    """A hook name, a ``*`` pattern (``blocks.*.attn.hook_pattern``) or a name filter -> concrete names."""
    every = hook_names(model)
    if callable(name):
        found = [n for n in every if name(n)]
    elif "*" in name:
        rx = re.compile("^" + re.escape(name).replace(r"\*", r"[^.]+") + "$")
        found = [n for n in every if rx.match(n)]
    else:
        m = re.match(r"^blocks\.(\d+)\.attn\.(\w+)$", name)
        if not m or m.group(2) not in HOOK_KINDS:
            raise InterpError(f"unknown hook point {name!r}; expected blocks.<layer>.attn.<{'|'.join(HOOK_KINDS)}>")
        if not 0 <= int(m.group(1)) < model.n_layers:
            raise InterpError(f"hook point {name!r}: the model has layers 0-{model.n_layers - 1}, so it would "
                              "never fire")
        found = [name]
    if not found:
        raise InterpError(f"hook filter {name!r} matches no hook point of this model (see interp.hook_names(m))")
    return found


def hooks(model, fwd_hooks: Any = ()) -> AttentionHooks:
    """An `AttentionHooks` block with `fwd_hooks` (``[(name or filter, fn)]`` or ``{name: fn}``) on `model`.

    ``fn(tensor, call)`` gets the tensor (see `interp.models.hooked_attention`) and an `AttnCall`; returning a
    tensor replaces it. Use as ``with interp.hooks(m, ...):``; hooks are removed on exit.
    """
    pairs = list(fwd_hooks.items()) if isinstance(fwd_hooks, dict) else list(fwd_hooks)
    h = AttentionHooks()
    for name, fn in pairs:
        if not callable(fn):
            raise InterpError(f"hook for {name!r} is not callable")
        for n in _resolve(model, name):
            h.add(n, fn)
    return h


def _batch(model, prompts: Sequence[Prompt | str]) -> Batch:
    ps = [_as_prompt(model, p) for p in prompts]
    if not ps:
        raise InterpError("no prompts")
    return make_batch(model.tokenizer, ps, model.device)


def _forward(model, batch: Batch) -> torch.Tensor:
    pos = (batch.attention_mask.cumsum(-1) - 1).clamp(min=0)
    return model.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=pos,
                    use_cache=False).logits


@torch.no_grad()
def run_with_hooks(model, prompts: Sequence[Prompt | str], fwd_hooks: Any = ()) -> torch.Tensor:
    """Logits ``[batch, positions, vocab]`` of one forward over the (left-padded) prompts with `fwd_hooks` on."""
    batch = _batch(model, prompts)
    with hooks(model, fwd_hooks):
        return _forward(model, batch)


@dataclass
class Cache:
    """Tensors captured by `run_with_cache`: ``cache[name]`` is ``[batch, heads, rows, keys]`` for patterns,
    scores and masks (rows: the positions asked for, per prompt) and ``[batch, heads, keys, d_head]`` for values.

    Keys are the padded positions of the batch; row b's first ``pad[b]`` keys are padding (attention 0 there).
    `rows[b]` lists the absolute (padded) query positions kept for row b.
    """

    tensors: dict[str, torch.Tensor]
    pad: list[int]
    rows: list[list[int]]
    prompts: list[Prompt] = field(default_factory=list)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.tensors:
            raise KeyError(f"{name!r} was not cached; cached: {sorted(self.tensors)}")
        return self.tensors[name]

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def keys(self) -> Iterable[str]:
        return self.tensors.keys()


def _row_index(batch: Batch, rows: int | Sequence[int] | None) -> torch.Tensor:
    """``[B, R]`` absolute query positions: `rows` are positions within each prompt (negative from its end)."""
    T = batch.prompt_len
    if rows is None:
        return torch.arange(T).expand(batch.size, T)
    rel = [rows] if isinstance(rows, int) else list(rows)
    out = []
    for b, p in enumerate(batch.prompts):
        n = len(p.input_ids)
        bad = [r for r in rel if not -n <= r < n]
        if bad:
            raise InterpError(f"rows {bad} outside prompt {b} ({n} tokens)")
        out.append([batch.pad[b] + (r % n) for r in rel])
    return torch.tensor(out)


@torch.no_grad()
def run_with_cache(model, prompts: Sequence[Prompt | str], names: Any = "blocks.*.attn.hook_pattern",
                   rows: int | Sequence[int] | None = None) -> tuple[torch.Tensor, Cache]:
    """(logits, `Cache`) of one forward, keeping the hooked tensors of `names` (a name, a ``*`` pattern, a
    filter function, or a list of these) for the query `rows` of each prompt (None: every position;
    ``-1``: the last prompt token)."""
    batch = _batch(model, prompts)
    idx = _row_index(batch, rows).to(batch.input_ids.device)
    wanted = [n for x in ([names] if isinstance(names, str) or callable(names) else names) for n in _resolve(model, x)]
    store: dict[str, torch.Tensor] = {}

    def saver(name: str, kind: str) -> HookFn:
        def fn(t: torch.Tensor, call: AttnCall):
            if kind == "hook_v":
                store[name] = t.detach().clone()
            else:
                r = idx if t.shape[2] > 1 else torch.zeros_like(idx)
                t = t.expand(idx.shape[0], *t.shape[1:]) if t.shape[0] != idx.shape[0] else t
                g = r[:, None, :, None].expand(t.shape[0], t.shape[1], r.shape[1], t.shape[3])
                store[name] = t.detach().gather(2, g).clone()
            return None

        return fn

    h = AttentionHooks()
    for n in wanted:
        h.add(n, saver(n, n.rsplit(".", 1)[1]))
    with h:
        logits = _forward(model, batch)
    return logits, Cache(store, list(batch.pad), idx.cpu().tolist(), list(batch.prompts))


@dataclass
class TraceResult:
    """A teacher-forced pass: logits ``[batch, positions, vocab]`` (right-aligned rows, ``pad`` in front) and one
    `Generation` per prompt holding the stored output and what `capture` recorded (``generations[b].cas``)."""

    logits: torch.Tensor
    generations: list[Generation]
    pad: list[int]


def trace(model, prompts: Sequence[Prompt | str], outputs: Sequence[Sequence[int] | str] | None = None,
          capture: Sequence[CaptureSpec] = (), interventions: Sequence[Any] | None = None,
          grad: bool = False) -> TraceResult:
    """One forward over prompt + stored output (token ids or text) with `capture` and `interventions` as in
    `interp.generate`: CAS of a stored generation without generating again. `outputs=None`: the prompts alone."""
    ps = [_as_prompt(model, p) for p in prompts]
    if outputs is None:
        outs: list[list[int]] = [[] for _ in ps]
    else:
        if len(outputs) != len(ps):
            raise InterpError(f"{len(ps)} prompts but {len(outputs)} outputs")
        outs = [model.tokenizer(o, add_special_tokens=False)["input_ids"] if isinstance(o, str) else list(o)
                for o in outputs]
    n_max = max((len(o) for o in outs), default=0)
    provs: list = []
    if interventions is not None:
        per = _per_prompt_interventions(interventions, len(ps))
        provs.append(_RowInterventions(model.n_layers, model.n_heads, per))
    provs += [spec.provider(model, max(1, n_max)) for spec in capture]
    logits, batch, extras = forward_teacher_forced(model, ps, outs, provs, grad=grad)
    text = [model.tokenizer.decode(o, skip_special_tokens=True) for o in outs]
    gens = [Generation(p, t, o, "teacher_forced", e) for p, t, o, e in zip(ps, text, outs, extras)]
    return TraceResult(logits, gens, list(batch.pad))


@dataclass
class _RowInterventions:
    """An `InterventionProvider` whose per-row lists are given directly (the teacher-forced batch has no extras)."""

    n_layers: int
    n_heads: int
    per_row: list[list]
    _inner: Any = None

    def attach(self, hooks_: AttentionHooks, batch: Batch) -> None:
        from ..interventions.spec import InterventionProvider

        batch.extras = [{"interventions": r} for r in self.per_row]
        self._inner = InterventionProvider(self.n_layers, self.n_heads)
        self._inner.attach(hooks_, batch)

    def collect(self, batch: Batch, n_tokens: list[int]) -> list[dict]:
        return self._inner.collect(batch, n_tokens)
