"""Constraint Attention Score: attention mass from each generated token onto named prompt spans.

CAS[t, l, h, s] = sum_{j in span s} A[l, h, q_t, j], where q_t is the query that produces generated
token t (the last prompt position for t = 0). Captured by a pattern hook inside the same KV-cached
generation (or a teacher-forced pass over a stored output): only [steps, layers, spans, heads] is
kept, never full attention. Grouped-query models are handled because patterns are per query head.

Two bookkeeping spans are always captured so normalisations can be computed later:
``__sink__`` (the first real token) and ``__prompt__`` (all prompt tokens).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Mapping, Sequence

import numpy as np
import torch

from ..errors import InterpError
from ..models.generation import Batch
from ..models.hooked_attention import AttentionHooks, AttnCall
from ..probes.base import HookProvider, Probe, RowResult, register_probe
from ..prompts import constraint_parts
from ..registry import Registry

SINK, PROMPT = "__sink__", "__prompt__"


def default_span_groups(part_names: Sequence[str]) -> dict[str, list[str]]:
    """Every part as its own span, plus the union of all constraint parts as ``constraints``."""
    groups = {n: [n] for n in part_names}
    cons = constraint_parts(part_names)
    if cons:
        groups["constraints"] = cons
    return groups


@dataclass(frozen=True, eq=False)
class CASResult(RowResult):
    """One generation's CAS: float32 ``cas[step, layer, span, head]`` (step t = the query row producing generated
    token t), `spans` naming the span axis and `span_len` their token counts (for the density normalisation)."""

    cas: np.ndarray
    spans: tuple[str, ...]
    span_len: tuple[float, ...]

    def legacy(self) -> dict:
        return {"cas": self.cas, "cas_spans": list(self.spans), "cas_span_len": list(self.span_len)}

    def to_xarray(self):
        """An `xarray.DataArray` with dims (step, layer, span, head), span names as coordinates."""
        import xarray as xr

        T, L, _, H = self.cas.shape
        return xr.DataArray(self.cas, dims=("step", "layer", "span", "head"), name="cas",
                            coords={"step": np.arange(T), "layer": np.arange(L), "span": list(self.spans),
                                    "head": np.arange(H)},
                            attrs={"span_len": dict(zip(self.spans, map(float, self.span_len)))})


@dataclass
class CASCapture(HookProvider):
    """Hook provider: captures CAS for the given span groups (name -> part names, unioned); one `CASResult` per
    row (``g.result(interp.CAS)``; older code reads ``g.extras["cas"]``, ``["cas_spans"]``, ``["cas_span_len"]``).
    """

    n_layers: int
    n_heads: int
    max_steps: int
    span_groups: dict[str, list[str]] | None = None
    layers: Sequence[int] | None = None
    strict: bool = False  # refuse a span group that covers no token of any prompt of the batch
    _out: torch.Tensor | None = field(default=None, repr=False)
    _masks: torch.Tensor | None = field(default=None, repr=False)
    _names: list[str] = field(default_factory=list, repr=False)

    def _groups(self, batch: Batch) -> dict[str, list[str]]:
        names: list[str] = []
        for p in batch.prompts:
            names += [n for n in p.spans if n not in names]
        if self.span_groups is None:
            return default_span_groups(names)
        cons = constraint_parts(names)
        # a part "constraints" (no prompt part of that name) means every constraint_<i> part of the batch
        return {g: [c for x in parts for c in (cons if x == "constraints" and x not in names else [x])]
                for g, parts in self.span_groups.items()}

    def attach(self, hooks: AttentionHooks, batch: Batch) -> None:
        groups = self._groups(batch)
        self._names = list(groups) + [SINK, PROMPT]
        dev = batch.input_ids.device
        masks = [batch.span_mask(parts, device=dev) for parts in groups.values()]
        if self.strict:
            empty = [g for g, m in zip(groups, masks) if not bool(m.any())]
            if empty:
                have = sorted({n for p in batch.prompts for n in p.spans})
                raise InterpError(f"CAS span(s) {empty} cover no token of any prompt (parts: {have}; "
                                  "'constraints' is the union of the parts named constraint_<i>)")
        sink = torch.zeros(batch.size, batch.prompt_len, device=dev)
        prompt = torch.zeros_like(sink)
        for b, p in enumerate(batch.prompts):
            sink[b, batch.pad[b]] = 1.0
            prompt[b, batch.pad[b]: batch.pad[b] + len(p.input_ids)] = 1.0
        # [B, S, P + max_steps] over absolute (padded) positions; generated positions are in no span, and the
        # padding makes each call's `key_slice` a view
        self._masks = torch.nn.functional.pad(torch.stack(masks + [sink, prompt], dim=1), (0, self.max_steps))
        self._out = torch.zeros(batch.size, self.max_steps, self.n_layers, len(self._names), self.n_heads,
                                device=dev)
        layers = range(self.n_layers) if self.layers is None else self.layers
        for l in layers:
            hooks.add(f"blocks.{l}.attn.hook_pattern", self._hook)

    def _hook(self, pattern: torch.Tensor, call: AttnCall):
        masks = self._masks if self._masks.device == pattern.device else self._masks.to(pattern.device)
        # this call's keys (a sliding-window layer sees only the last window); generated keys are in no span
        mT = call.key_slice(masks).transpose(1, 2)[:, None]  # [B, 1, kv_len, S]
        vals = torch.matmul(pattern.float(), mT).permute(0, 2, 3, 1)  # [B, R, S, H]
        vals = vals.to(self._out.device)
        if call.step is not None:
            if call.step < self.max_steps:
                self._out[:, call.step, call.layer] = vals[:, 0]
        else:
            steps = call.query_steps.to(self._out.device)
            valid = (steps >= 0) & (steps < self.max_steps)
            bi, ri = valid.nonzero(as_tuple=True)
            self._out[bi, steps[bi, ri], call.layer] = vals[bi, ri]
        return None

    def collect(self, batch: Batch, n_tokens: list[int]) -> list[CASResult]:  # type: ignore[override]
        if max(n_tokens, default=0) > self.max_steps:
            raise InterpError(f"CASCapture(max_steps={self.max_steps}) saw a {max(n_tokens)}-token generation: the "
                              "later steps were not captured; use max_steps >= max_new_tokens, or interp.CAS(), "
                              "which reads it from the generation config")
        out = self._out.cpu().numpy()
        lens = self._masks.sum(-1).cpu().numpy()
        res = [CASResult(out[b, :n].copy(), tuple(self._names), tuple(lens[b].tolist()))
               for b, n in enumerate(n_tokens)]
        self._out = self._masks = None
        return res


@register_probe
@dataclass(frozen=True)
class CAS(Probe):
    """What to capture, as a value (pass it as ``interp.generate(..., capture=[interp.CAS()])``).

    `spans`: None = every prompt part plus ``constraints`` (the union of ``constraint_<i>`` parts); a list of
    part names (or ``"constraints"``); or a mapping group name -> part names (unioned). An explicitly named span
    that covers no token is an error. `layers`: None = all. Shapes come from the model and the generation
    config, so nothing is built by the caller; ``g.cas`` is the labelled result.
    """

    name: ClassVar[str] = "cas"
    result: ClassVar[type[RowResult]] = CASResult
    spans: Sequence[str] | Mapping[str, Sequence[str]] | None = None
    layers: Sequence[int] | None = None

    def groups(self) -> dict[str, list[str]] | None:
        if self.spans is None:
            return None
        if isinstance(self.spans, str):
            raise InterpError(f"CAS(spans=...) takes a list of part names, not the string {self.spans!r}")
        if isinstance(self.spans, Mapping):
            return {g: [p] if isinstance(p, str) else list(p) for g, p in self.spans.items()}
        return {n: [n] for n in self.spans}

    def provider(self, model, max_steps: int) -> CASCapture:
        """The hook provider for one batch of `model` producing at most `max_steps` tokens per row."""
        if self.layers is not None and any(not 0 <= int(l) < model.n_layers for l in self.layers):
            raise InterpError(f"CAS layers {list(self.layers)} outside the model's 0-{model.n_layers - 1}")
        return CASCapture(model.n_layers, model.n_heads, max(1, max_steps), self.groups(), self.layers,
                          strict=self.spans is not None)


class Normalisation:
    """One way to normalise a span's CAS: `apply(x, cas, spans, span, span_len, control)` -> ``[steps, layers, heads]``,
    where `x` is the span's raw CAS and `cas` all spans ``[steps, layers, spans, heads]``. Register a subclass
    with `@register_normalisation` (the registry shape of tasks, constraint types, ops and probes)."""

    name: ClassVar[str] = ""

    def apply(self, x, cas, spans: list[str], span: str, span_len, control):
        raise NotImplementedError


NORMALISATIONS: Registry[Normalisation] = Registry(
    "CAS normalisation", hint="define a Normalisation subclass with @register_normalisation")


def register_normalisation(cls=None, *, replace: bool = False):
    """Class decorator: registers one instance of a `Normalisation` subclass under its `name`."""
    return NORMALISATIONS.instance_decorator(cls, replace=replace)


_EPS = 1e-12


@register_normalisation
class Raw(Normalisation):
    """The raw attention share (the paper's default)."""

    name = "raw"

    def apply(self, x, cas, spans, span, span_len, control):
        return x


@register_normalisation
class NoSink(Normalisation):
    """Attention-sink mass removed and the rest renormalised."""

    name = "no_sink"

    def apply(self, x, cas, spans, span, span_len, control):
        return x / np.maximum(1.0 - cas[:, :, spans.index(SINK)], _EPS)


@register_normalisation
class Density(Normalisation):
    """Divided by the span's length in tokens."""

    name = "density"

    def apply(self, x, cas, spans, span, span_len, control):
        if span_len is None:
            raise ValueError("density needs span_len")
        return x / max(float(span_len[spans.index(span)]), 1.0)


@register_normalisation
class PromptShare(Normalisation):
    """Share of the prompt-directed attention mass."""

    name = "prompt_share"

    def apply(self, x, cas, spans, span, span_len, control):
        return x / np.maximum(cas[:, :, spans.index(PROMPT)], _EPS)


@register_normalisation
class ControlRatio(Normalisation):
    """Ratio to a (length-matched) control span."""

    name = "control_ratio"

    def apply(self, x, cas, spans, span, span_len, control):
        if control is None:
            raise ValueError("control_ratio needs a control span name")
        return x / np.maximum(cas[:, :, spans.index(control)], _EPS)


def normalise(cas: np.ndarray, spans: Sequence[str], span: str, how: str = "raw",
              span_len: Sequence[float] | None = None, control: str | None = None) -> np.ndarray:
    """One span's CAS ``[steps, layers, heads]`` under a registered normalisation (`NORMALISATIONS`; raw share
    is the paper's default): no_sink, density, prompt_share, control_ratio."""
    spans = list(spans)
    if how not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {how!r}; choose from {tuple(NORMALISATIONS)}")
    return NORMALISATIONS[how].apply(cas[:, :, spans.index(span)], cas, spans, span, span_len, control)


def teacher_forced_cas(model, prompts, outputs, span_groups=None, batch_size: int = 4,
                       layers=None) -> list[dict]:
    """Recompute CAS for stored (prompt, output token ids) pairs in one forward pass per batch."""
    from ..models.generation import forward_teacher_forced

    res: list[dict] = []
    for s in range(0, len(prompts), batch_size):
        ps, os_ = prompts[s: s + batch_size], outputs[s: s + batch_size]
        cap = CASCapture(model.n_layers, model.n_heads, max(1, max(len(o) for o in os_)), span_groups, layers)
        _, _, extras = forward_teacher_forced(model.hf, model.tokenizer, ps, os_, [cap])
        res += extras
    return res


def stack_cas(generations, span: str = "constraints"):
    """CAS of one span for generations of different lengths as one `xarray.DataArray` with dims
    (generation, step, layer, head), NaN past each generation's last step (``.mean("step")`` skips the padding)."""
    import xarray as xr

    arrays = [g.cas_span(span) for g in generations]
    if not arrays:
        raise InterpError("stack_cas needs at least one generation captured with interp.CAS()")
    T = max(a.shape[0] for a in arrays)
    L, H = arrays[0].shape[1:]
    out = np.full((len(arrays), T, L, H), np.nan, np.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return xr.DataArray(out, dims=("generation", "step", "layer", "head"), name=f"cas:{span}",
                        coords={"generation": np.arange(len(arrays)), "step": np.arange(T), "layer": np.arange(L),
                                "head": np.arange(H)})


def top_heads(generations, span: str = "constraints", k: int = 10) -> list[tuple[int, int]]:
    """The `k` (layer, head) cells with the highest CAS on `span`, averaged over each generation's steps and then
    over generations (each generation weighs the same, whatever its length); ready for ``Intervention(heads=...)``."""
    if k < 1:
        raise InterpError(f"top_heads needs k >= 1, got {k}")
    per_gen = np.nanmean(stack_cas(generations, span).values, axis=1)  # [generation, layer, head]
    mean = per_gen.mean(0)
    order = np.argsort(-mean, axis=None, kind="stable")[:k]
    return [(int(i // mean.shape[1]), int(i % mean.shape[1])) for i in order]
