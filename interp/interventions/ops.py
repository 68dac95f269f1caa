"""Intervention values and their operations, with no dependency on models or batches (a leaf module).

An `Intervention` names a target span, an operation and where it acts; it is a frozen, JSON-serialisable
value (pyvene/nnsight style). Operations are small registered classes (`InterventionOp`; one class = one op,
`register_op`):
- ``knockout``: the selected (query row, head, target key) entries of the attention mask set to the
  dtype's minimum (attention on the target becomes exactly 0);
- ``scale``: log(alpha) added to those mask entries; alpha < 1 damps, alpha > 1 boosts, softmax
  renormalises (PASTA-style);
- ``mean_ablate``: the target keys' value vectors replaced by the mean value over the prompt.

`interp.interventions.spec.InterventionProvider` turns them into attention hooks for a batch.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from ..errors import InterpError
from ..probes.base import Probe, RowResult, register_probe
from ..prompts import Prompt, constraint_parts
from ..prompts import random_span as draw_span
from ..registry import Registry


class InterventionOp:
    """One intervention operation. Subclasses set `name` and override exactly one way of editing:

    - `mask_bias(iv)`: a float added to the attention mask on the selected entries (``-inf`` = knockout);
      runs as a ``hook_attn_mask`` (SDPA stays on);
    - `edit_values(v, sel, ctx)`: new values ``[B, H, K, D]`` given ``sel`` ``[B, H, K]`` (the selected keys)
      and ``ctx.prompt_keys`` ``[B, K]``; runs as a ``hook_v``.
    `check(iv)` validates an intervention's parameters (raise `InterpError`).
    """

    name: ClassVar[str] = ""
    edits: ClassVar[str] = "mask"  # "mask" | "values"

    def check(self, iv: "Intervention") -> None:
        return None

    def mask_bias(self, iv: "Intervention") -> float:
        raise NotImplementedError

    def edit_values(self, v: torch.Tensor, sel: torch.Tensor, ctx: "_ValueContext") -> torch.Tensor:
        raise NotImplementedError


OPS: Registry[InterventionOp] = Registry("intervention op", group="interp.ops",
                                         hint="define an InterventionOp subclass with @register_op")


def register_op(cls=None, *, replace: bool = False):
    """Class decorator: registers one instance of an `InterventionOp` subclass under `cls.name` in `OPS`
    (the registry shared with tasks and constraint types; installed packages add ops via `interp.ops`).

    A second op under a taken name is an error unless `replace=True` says it is meant.
    """

    return OPS.instance_decorator(cls, replace=replace, check=lambda op: None if op.edits in ("mask", "values")
                                  else "needs `edits` in ('mask', 'values')")


def get_op(name: str) -> InterventionOp:
    """The op registered as `name` (entry-point plugins loaded on a miss); `InterpError` when unknown."""
    return OPS.lookup(name)


@register_op
class Knockout(InterventionOp):
    """Attention on the target becomes exactly 0 (mask entries set to the dtype's minimum)."""

    name = "knockout"

    def mask_bias(self, iv):
        return -math.inf


@register_op
class Scale(InterventionOp):
    """Attention on the target multiplied by alpha before renormalisation (log(alpha) added to the mask)."""

    name = "scale"

    def check(self, iv):
        if not iv.alpha > 0:
            raise InterpError("scale needs alpha > 0 (use knockout for alpha = 0)")

    def mask_bias(self, iv):
        return math.log(iv.alpha)


@register_op
class MeanAblate(InterventionOp):
    """The target keys' value vectors replaced by the mean value over the prompt's tokens."""

    name = "mean_ablate"
    edits = "values"

    def edit_values(self, v, sel, ctx):
        mean = ctx.memo.get("mean")
        if mean is None:  # the prompt's values are the same at every decoding step: averaged once per layer
            pk = ctx.prompt_keys[:, None, :, None].to(v.dtype)
            mean = ctx.memo["mean"] = (v * pk).sum(2, keepdim=True) / pk.sum(2, keepdim=True).clamp(min=1)
        return torch.where(sel[..., None], mean, v)


@dataclass(frozen=True)
class InterventionsResult(RowResult):
    """The interventions one row ran, as `Intervention` values in the order they composed."""

    interventions: tuple["Intervention", ...]

    def legacy(self) -> dict:
        return {"interventions": [iv.to_dict() for iv in self.interventions]}


@register_probe
@dataclass(frozen=True)
class Intervention(Probe):
    """What to do to attention (a probe that changes the forward pass). `target`: part names (unioned), "constraints" (all constraint_* parts),
    or "random:<name>" (a random span of the same length as <name> elsewhere in the prompt, seeded).
    `layers`/`heads`: None = all; `heads` as (layer, head) pairs overrides `layers`.
    `steps`: [start, end) of generated-token steps (end None = to the end); `prefill`: also prompt rows.
    """

    name: ClassVar[str] = "intervention"
    result: ClassVar[type[RowResult]] = InterventionsResult
    target: tuple[str, ...] = ("constraints",)
    op: str = "scale"
    alpha: float = 1.0
    layers: tuple[int, ...] | None = None
    heads: tuple[tuple[int, int], ...] | None = None
    steps: tuple[int, int | None] = (0, None)
    prefill: bool = False
    seed: int = 0
    label: str = ""

    def __post_init__(self):
        get_op(self.op).check(self)
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("target", _check_target(self.target))
        if self.layers is not None:
            set_("layers", tuple(_index(x, "layers") for x in _seq(self.layers, "layers", "a list of layer indices")))
        if self.heads is not None:
            set_("heads", tuple(_pair(h) for h in _seq(self.heads, "heads", "(layer, head) pairs")))
        set_("steps", _check_steps(self.steps))
        if not isinstance(self.prefill, (bool, np.bool_)):
            raise InterpError(f"Intervention(prefill=...) takes a bool, got {self.prefill!r}")
        if not isinstance(self.alpha, (int, float)) or not math.isfinite(self.alpha):
            raise InterpError(f"Intervention(alpha=...) takes a finite number, got {self.alpha!r}")

    def provider(self, model, max_steps: int):
        """This intervention in every row of a batch (`interp.generate(interventions=...)` is the usual door)."""
        from .spec import InterventionProvider

        return InterventionProvider(model.n_layers, model.n_heads, shared=[self])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target"] = list(self.target)
        d["layers"] = None if self.layers is None else list(self.layers)
        d["heads"] = None if self.heads is None else [list(h) for h in self.heads]
        d["steps"] = list(self.steps)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Intervention":
        d = dict(d)
        d["target"] = tuple(d.get("target", ("constraints",)))
        d["steps"] = tuple(d.get("steps", (0, None)))
        if d.get("heads") is not None:
            d["heads"] = tuple(tuple(h) for h in d["heads"])
        if d.get("layers") is not None:
            d["layers"] = tuple(d["layers"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def key(self) -> str:
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    def head_mask(self, n_layers: int, n_heads: int) -> np.ndarray:
        """[layers, heads] bool of where this intervention acts."""
        m = np.zeros((n_layers, n_heads), dtype=bool)
        if self.heads is not None:
            for l, h in self.heads:
                m[l, h] = True
        else:
            m[list(range(n_layers)) if self.layers is None else list(self.layers)] = True
        return m


def _seq(v, what: str, wanted: str):
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple, range, np.ndarray)):
        raise InterpError(f"Intervention({what}=...) takes {wanted}, got {v!r}: write {what}=[{v!r}]")
    return list(v)


def _index(x, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0:
        raise InterpError(f"Intervention({what}=...) takes indices >= 0, got {x!r}")
    return int(x)


def _pair(h) -> tuple[int, int]:
    if isinstance(h, (int, np.integer)) or not isinstance(h, (list, tuple)) or len(h) != 2:
        raise InterpError(f"Intervention(heads=...) takes (layer, head) pairs, got item {h!r}: write e.g. "
                          "heads=[(3, 4)] for head 4 of layer 3")
    return _index(h[0], "heads"), _index(h[1], "heads")


def _check_target(t) -> tuple[str, ...]:
    ts = [t] if isinstance(t, str) else t
    if not isinstance(ts, (list, tuple)) or not ts or not all(isinstance(x, str) and x for x in ts):
        raise InterpError(f"Intervention(target=...) takes a part name or a list of them ('constraints', "
                          f"'random:<part>'), got {t!r}")
    return tuple(ts)


def _check_steps(st) -> tuple[int, int | None]:
    if not isinstance(st, (list, tuple)) or len(st) != 2:
        raise InterpError(f"Intervention(steps=...) takes (start, end) of generated-token steps (end None = to the "
                          f"end), got {st!r}")
    lo = _index(st[0], "steps")
    hi = None if st[1] is None else _index(st[1], "steps")
    if hi is not None and hi <= lo:
        raise InterpError(f"Intervention(steps={tuple(st)}) is empty: it needs start < end (end None = to the end)")
    return lo, hi


def target_positions(prompt: Prompt, iv: Intervention) -> list[int]:
    """Token positions (unpadded) of an intervention's target in `prompt`."""
    pos: set[int] = set()
    for t in iv.target:
        if t.startswith("random:"):
            ref = prompt.spans.get(t.split(":", 1)[1])
            if ref is None:
                continue
            pos.update(random_span(prompt, ref, iv.seed))
        elif t == "constraints":
            for n in constraint_parts(prompt.spans):
                pos.update(range(*prompt.spans[n]))
        elif t in prompt.spans:
            s, e = prompt.spans[t]
            pos.update(range(s, e))
    return sorted(pos)


def random_span(prompt: Prompt, ref: tuple[int, int], seed: int) -> range:
    """A contiguous span as long as `ref`, elsewhere in the prompt (not overlapping it, not token 0)."""
    return draw_span(len(prompt.input_ids), ref[1] - ref[0], set(range(*ref)), seed, prompt.input_ids)


@dataclass
class _ValueContext:
    """What a value op may use besides the values: which keys are prompt tokens (``[B, K]`` bool), and `memo`,
    a dict private to this op and layer that lasts for the batch while the call's keys start at the same
    absolute position (for quantities of the prompt's keys, which no decoding step changes)."""

    prompt_keys: torch.Tensor
    memo: dict
