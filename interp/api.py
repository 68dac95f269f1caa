"""The researcher-facing calls: generate, trace and run with hooks, TransformerLens / nnsight style.

- `generate(m, prompts, capture=[CAS()], interventions=[...])`: batched, KV-cached generation returning
  `Generation`s with ``g.cas`` (labelled xarray) and ``g.interventions``. What to record and what to change are
  values (`interp.CAS`, `interp.Intervention`); their per-batch hook providers are built here with the model's
  shapes. `interventions` is one list for every prompt or one list per prompt.
- ``with interp.hooks(m, [("blocks.3.attn.hook_pattern", fn)]):`` (or ``m.hooks(...)``) makes the named hook
  points fire on every forward of the model inside the block: a plain ``m.hf(**inputs)``, HF ``generate`` and
  `generate` alike. Names are checked against the model, so a hook that could never fire is an error.
- `run_with_hooks(m, prompts, fwd_hooks)` -> logits; `run_with_cache(m, prompts, names, rows)` -> (logits,
  cache) with the hooked tensors of the query rows asked for (``rows=[-1]``: each prompt's last token).
- `trace(m, prompts, outputs, capture=[CAS()], interventions=...)`: a teacher-forced pass over stored outputs
  with the same capture and intervention values as `generate`, returning `Generation`s plus logits.

Prompts are `Prompt`s or plain strings (a one-part chat prompt). Batches are left-padded: row b's first
``pad[b]`` positions (``cache.pad``, ``result.pad``) are padding. The layers below: `interp.models.generation`
(the decoding loop and hook providers), `interp.models.hooked_attention` (hook points).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

import torch

from .errors import InterpError
from .interventions.ops import Intervention
from .interventions.spec import InterventionProvider, RowInterventions
from .models.generation import (Batch, CaptureSpec, GenConfig, Generation, forward_teacher_forced, make_batch)
from .models.generation import generate as _generate
from .models.hooked_attention import (AttentionHooks, AttnCall, HookFn, hook_names, hooks,  # noqa: F401
                                      require_hooked, resolve_hook_names)
from .prompts import Part, Prompt, build_prompt


def _as_prompt(model, p: Prompt | str) -> Prompt:
    """A plain string becomes a one-part ("task") chat prompt of the model's template."""
    if isinstance(p, Prompt):
        return p
    if isinstance(p, str):
        return build_prompt(model.tokenizer, [Part("task", p)])
    raise InterpError(f"prompts must be interp.Prompt (build_prompt) or str, got {type(p).__name__}")


def _prompt_list(model, prompts) -> list[Prompt]:
    """The prompts of a call as `Prompt`s; a bare string or Prompt (not a list of them) is refused."""
    if isinstance(prompts, (str, Prompt)):
        raise InterpError(f"pass a list of prompts, got one {type(prompts).__name__}: wrap it as [...] "
                          "(a bare string would be read as one prompt per character)")
    return [_as_prompt(model, p) for p in prompts]


def _as_list(value, what: str, example: str) -> list:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise InterpError(f"{what} takes a list, got one {type(value).__name__}: pass {what}=[{example}]")
    return list(value)


def _per_prompt(interventions, n: int) -> list[list]:
    """`interventions` as one list per prompt: a flat list applies to every prompt, a list of lists is per prompt."""
    ivs = _as_list(interventions, "interventions", "interp.Intervention(...)")
    if all(isinstance(x, (Intervention, dict)) for x in ivs):
        one = [_intervention(x) for x in ivs]
        return [list(one) for _ in range(n)]
    if len(ivs) != n or not all(isinstance(x, (list, tuple)) for x in ivs):
        raise InterpError(f"interventions: give one list for all prompts or one list per prompt ({n} lists), "
                          f"got {type(ivs[0]).__name__} items" if ivs else "interventions: empty")
    return [[_intervention(v) for v in x] for x in ivs]


def _intervention(x) -> Intervention:
    """An `Intervention` value (a dict, e.g. from JSON, is read once here)."""
    if isinstance(x, Intervention):
        return x
    if isinstance(x, dict):
        return Intervention.from_dict(x)
    raise InterpError(f"interventions hold interp.Intervention values, got {type(x).__name__}")


def providers_for(model, probes: Sequence[CaptureSpec], max_steps: int, interventions: bool,
                  extra: Sequence = ()) -> list:
    """The hook providers of one batch: interventions first (so captures see their effect), then `extra`
    (low-level providers of the caller), then one per probe. The one place they are assembled."""
    out: list = [InterventionProvider(model.n_layers, model.n_heads)] if interventions else []
    return out + list(extra) + [p.provider(model, max_steps) for p in probes]


def generate(model, prompts: Sequence[Prompt | str], cfg: GenConfig | None = None, *,
             capture: Sequence[CaptureSpec] = (), interventions: Sequence[Any] | None = None, progress: bool = True,
             row_keys: Sequence[str] | None = None, providers_for_batch=None, **gen_kwargs) -> list[Generation]:
    """Generate for `prompts` with `capture` recorded and `interventions` applied; `Generation`s in input order.

    `gen_kwargs` are `GenConfig` fields (``max_new_tokens=32``, ``temperature=0.7``, ...), over `cfg`.
    `row_keys` seed each row's sampler (a row's sample does not depend on its batch). `providers_for_batch`
    adds low-level hook providers of your own (e.g. a `ThinkingBudget`), built per batch.
    """
    if gen_kwargs:
        bad = set(gen_kwargs) - set(GenConfig.__dataclass_fields__)
        if bad:
            raise InterpError(f"generate() got unknown settings {sorted(bad)}; GenConfig has "
                              f"{sorted(GenConfig.__dataclass_fields__)}")
        cfg = GenConfig(**{**asdict(cfg or GenConfig()), **gen_kwargs})
    cfg = cfg or GenConfig()
    ps = _prompt_list(model, prompts)
    capture = _as_list(capture, "capture", "interp.CAS()")
    rows = None if interventions is None else _per_prompt(interventions, len(ps))

    def providers(batch: Batch) -> list:
        extra = list(providers_for_batch(batch)) if providers_for_batch else []
        return providers_for(model, capture, cfg.max_new_tokens, rows is not None, extra)

    return _generate(model, ps, cfg, providers_for_batch=providers, progress=progress, row_keys=row_keys,
                     row_interventions=rows)


def _batch(model, prompts: Sequence[Prompt | str]) -> Batch:
    ps = _prompt_list(model, prompts)
    if not ps:
        raise InterpError("no prompts")
    return make_batch(model.tokenizer, ps, model.device)


def _forward(model, batch: Batch) -> torch.Tensor:
    require_hooked(model.hf)
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
    wanted = [n for x in ([names] if isinstance(names, str) or callable(names) else names)
              for n in resolve_hook_names(model, x)]
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
    h.check_layers(model.n_layers)
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
    ps = _prompt_list(model, prompts)
    capture = _as_list(capture, "capture", "interp.CAS()")
    if outputs is None:
        outs: list[list[int]] = [[] for _ in ps]
    else:
        if len(outputs) != len(ps):
            raise InterpError(f"{len(ps)} prompts but {len(outputs)} outputs")
        outs = [model.tokenizer(o, add_special_tokens=False)["input_ids"] if isinstance(o, str) else list(o)
                for o in outputs]
    n_max = max((len(o) for o in outs), default=0)
    extra = [] if interventions is None else [
        RowInterventions(model.n_layers, model.n_heads, _per_prompt(interventions, len(ps)))]
    provs = providers_for(model, capture, max(1, n_max), False, extra)
    logits, batch, extras = forward_teacher_forced(model, ps, outs, provs, grad=grad)
    text = [model.tokenizer.decode(o, skip_special_tokens=True) for o in outs]
    gens = [Generation(p, t, o, "teacher_forced", e) for p, t, o, e in zip(ps, text, outs, extras)]
    return TraceResult(logits, gens, list(batch.pad))
