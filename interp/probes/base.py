"""The `Probe` protocol: one shape for everything that records or changes what happens inside a forward pass.

A **probe** is a declarable, serialisable value (a frozen dataclass: `interp.CAS()`, `interp.Intervention(...)`,
`AttentionEntropy()`); passed to `interp.generate(..., capture=[...])` or `interp.trace`, it builds one
**hook provider** per batch from the model's shapes (`Probe.provider(model, max_steps)`). The provider attaches
hook functions to the batch's `AttentionHooks` and, after the batch, returns one **typed per-row result** per
row (a `RowResult` subclass), which lands in ``g.results`` and is read as ``g.result(AttentionEntropy)``.
What a provider can do beyond hooks is *declared* in `capabilities` (never found with ``hasattr``):

- `Capability.FORCES_TOKENS`: `force(next_ids, out_ids, done)` may override sampled tokens (thinking budgets);
- `Capability.READS_INTERVENTIONS`: it applies the batch's per-row interventions (``batch.interventions``).

How to add a probe (one class in one file; see `interp/probes/entropy.py`, per-head attention entropy):

1. a `RowResult` dataclass for one row's numbers (arrays as numpy, ``[steps, ...]`` where step t is the
   query row that produces generated token t: the last prompt position for t = 0);
2. a `HookProvider` subclass: `attach` adds hooks (``hooks.add("blocks.{l}.attn.hook_pattern", fn)``; hook
   functions get ``(tensor, call)``, `call.step` / `call.query_steps` say which generated step each query row
   produces), `collect` returns one result per row, cut to each row's `n_tokens`;
3. the probe value: a frozen dataclass subclassing `Probe` with `name` and `result` class attributes and
   `provider(model, max_steps)`, decorated with `@register_probe` (so ``Probe.from_dict`` finds it by name);
4. a test against an independent reference (HF eager attention weights, a hand computation).

Nothing else changes: the decoding loop, `interp.trace`, records and `Generation` handle any probe.
"""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Mapping

from ..errors import InterpError
from ..registry import Registry

if TYPE_CHECKING:
    import torch

    from ..models.generation import Batch
    from ..models.hooked_attention import AttentionHooks


class Capability(enum.Enum):
    """What a hook provider does besides adding hooks (declared in `HookProvider.capabilities`)."""

    FORCES_TOKENS = "forces_tokens"
    READS_INTERVENTIONS = "reads_interventions"


@dataclass(frozen=True)
class RowResult:
    """One row's typed result of one probe. `legacy()` is its flat ``extras`` view (older code reads
    ``g.extras["cas"]``); new code reads the fields (``g.result(CAS).cas``)."""

    def legacy(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, key: str) -> Any:  # the older dict access (``collect(...)[b]["cas"]``)
        return self.legacy()[key]


class HookProvider:
    """Registers hooks for one batch and returns one `RowResult` (or, for older providers, a dict) per row."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def attach(self, hooks: "AttentionHooks", batch: "Batch") -> None:
        raise NotImplementedError

    def collect(self, batch: "Batch", n_tokens: list[int]) -> list:
        raise NotImplementedError

    def force(self, next_ids: "torch.Tensor", out_ids: list[list[int]], done: "torch.Tensor") -> "torch.Tensor":
        """Only for `Capability.FORCES_TOKENS`: the tokens to append instead of `next_ids` ``[B]``."""
        raise NotImplementedError


def has(provider: Any, cap: Capability) -> bool:
    """Whether `provider` declares `cap` (providers that are not `HookProvider`s declare nothing)."""
    return cap in getattr(type(provider), "capabilities", frozenset())


PROBES: Registry[type] = Registry("probe", group="interp.probes",
                                  hint="define a Probe subclass with @register_probe (interp/probes/base.py)")


@dataclass(frozen=True)
class Probe:
    """A declarable, serialisable value that builds a batch's `HookProvider` from the model's shapes."""

    name: ClassVar[str] = ""
    result: ClassVar[type[RowResult]] = RowResult

    def provider(self, model, max_steps: int) -> HookProvider:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"probe": self.name, **asdict(self)}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> "Probe":
        d = dict(d)
        cls = PROBES.lookup(d.pop("probe", ""))
        return cls(**d)


def register_probe(cls=None, *, replace: bool = False):
    """Class decorator: registers a `Probe` subclass under its `name` (the registry shape every extension uses)."""
    return PROBES.class_decorator(cls, replace=replace, check=lambda c: None if issubclass(c, Probe) and issubclass(
        c.result, RowResult) else "must subclass interp.probes.Probe with a RowResult `result`")


class RowResults(Mapping[str, Any]):
    """What the providers returned for one row: typed results by class (`typed(cls)`), plus the flat legacy view
    as a read-only mapping (``extras["cas"]``) over the typed results' fields and older providers' dicts."""

    def __init__(self) -> None:
        self._typed: dict[type, RowResult] = {}
        self._raw: dict[str, Any] = {}

    def add(self, x: RowResult | Mapping[str, Any]) -> None:
        if isinstance(x, RowResult):
            self._typed[type(x)] = x
        elif isinstance(x, Mapping):
            self._raw.update(x)
        else:
            raise InterpError(f"a hook provider's collect() returned {type(x).__name__}; return a RowResult per row")

    def typed(self, cls: type) -> RowResult | None:
        return self._typed.get(cls)

    def __iter__(self) -> Iterator[str]:
        return iter(self._flat())

    def results(self) -> list[RowResult]:
        return list(self._typed.values())

    def _flat(self) -> dict[str, Any]:
        out = dict(self._raw)
        for r in self._typed.values():
            out.update(r.legacy())
        return out

    def __getitem__(self, key: str) -> Any:
        if key in self._raw:
            return self._raw[key]
        for r in self._typed.values():
            flat = r.legacy()
            if key in flat:
                return flat[key]
        raise KeyError(key)

    def __len__(self) -> int:
        return len(self._flat())

    def __repr__(self) -> str:
        return f"RowResults({[type(r).__name__ for r in self._typed.values()] + sorted(self._raw)})"
