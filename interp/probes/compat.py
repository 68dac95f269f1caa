"""Temporary: the Probe protocol names until interp/probes/base.py (issue 27) is merged."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class RowResult:
    def legacy(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, key: str) -> Any:
        return self.legacy()[key]

    def keys(self):
        return self.legacy().keys()


class HookProvider:
    def attach(self, hooks, batch) -> None:
        raise NotImplementedError

    def collect(self, batch, n_tokens: list[int]) -> list:
        raise NotImplementedError


@dataclass(frozen=True)
class Probe:
    name: ClassVar[str] = ""
    result: ClassVar[type[RowResult]] = RowResult

    def provider(self, model, max_steps: int) -> HookProvider:
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"probe": self.name, **asdict(self)}


def register_probe(cls=None, **kw):
    return cls
