"""Typed constraints: a constraint is a value (type, params, sentence); its type knows how to propose and check it.

Add a constraint type by subclassing `ConstraintType` and decorating it with `@register_constraint`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from ..backends.base import TextGenerator


@dataclass
class Constraint:
    """A constraint shown to the model. `type` names a registered ConstraintType; `kind` is hard or soft."""

    type: str
    kind: str
    text: str
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Constraint":
        return cls(type=d["type"], kind=d["kind"], text=d["text"], params=dict(d.get("params", {})))

    @property
    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def check(self, output: str, judge: "TextGenerator | None" = None) -> "Check":
        return get_constraint_type(self.type).check(self, output, judge=judge)


@dataclass
class Check:
    """Verifier verdict; `judge_output` holds the judge model's raw answer for soft constraints."""

    ok: bool
    reason: str = ""
    judge_output: str | None = None


@dataclass
class ProposeContext:
    """What an extractor may use besides the output: the task item text, domain, and a seeded RNG seed."""

    task_text: str = ""
    domain: str = ""
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class ConstraintType:
    """Base class of a constraint type. `propose` returns candidates the output should satisfy; `check` verifies."""

    name: str = ""
    kind: str = "hard"

    def propose(self, output: str, ctx: ProposeContext) -> list[Constraint]:
        raise NotImplementedError

    def check(self, constraint: Constraint, output: str, judge: "TextGenerator | None" = None) -> Check:
        raise NotImplementedError


CONSTRAINT_TYPES: Registry[ConstraintType] = Registry(
    "constraint type", group="interp.constraints", hint="load your own module with `--import MODULE`")


def register_constraint(cls=None, *, replace: bool = False):
    """Class decorator (`@register_constraint` or `@register_constraint(replace=True)`): registers one
    instance of a ConstraintType subclass under `cls.name`; a name taken by another class is an error."""

    return CONSTRAINT_TYPES.instance_decorator(cls, replace=replace)


def get_constraint_type(name: str) -> ConstraintType:
    return CONSTRAINT_TYPES.lookup(name)
