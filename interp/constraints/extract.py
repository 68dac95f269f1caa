"""Derive self-evident constraints from a successful output: propose, filter, and sample K-constraint sets.

Every attempt is kept as a `Candidate` so the extraction can be audited: a proposed constraint that the
self-evidence filter rejects keeps its reason, and a type that produced nothing (empty output, no usable
keyword, extractor garbage or exception) is recorded as a Candidate with `constraint=None`, its `type`
and the reason. Nothing here raises on a bad output; the run goes on.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Sequence

from ..errors import InterpError
from .base import CONSTRAINT_TYPES, Constraint, ProposeContext, get_constraint_type
from .hard import NoConstraint
from .soft import SoftConstraintType, check_many

MAX_SET_SIZE = 5


@dataclass
class Candidate:
    """One proposal (or failed attempt) for an output: accepted only after the self-evidence filter."""

    constraint: Constraint | None
    accepted: bool = False
    reason: str = ""
    judge_output: str | None = None
    type: str = ""

    def __post_init__(self):
        if not self.type and self.constraint is not None:
            self.type = self.constraint.type

    def to_dict(self) -> dict:
        return {"type": self.type, "constraint": self.constraint.to_dict() if self.constraint else None,
                "accepted": self.accepted, "reason": self.reason, "judge_output": self.judge_output}

    @classmethod
    def from_dict(cls, d: dict) -> "Candidate":
        """A stored candidate (`ConstraintsRecord.candidates`)."""
        c = d.get("constraint")
        return cls(Constraint.from_dict(c) if c else None, d.get("accepted", False), d.get("reason", ""),
                   d.get("judge_output"), d.get("type", ""))


def default_types(with_soft: bool = False) -> list[str]:
    """All registered hard types, plus the soft ones when an extractor is available."""
    return [n for n, t in CONSTRAINT_TYPES.items()
            if (t.kind == "hard" or (with_soft and t.kind == "soft")) and getattr(t, "in_default", True)]


def _extractor_of(ctx: ProposeContext, extractor):
    return extractor if extractor is not None else ctx.extra.get("extractor")


def propose_candidates_many(outputs: Sequence[str], ctxs: Sequence[ProposeContext],
                            types: Sequence[str] | None = None, extractor=None) -> list[list[Candidate]]:
    """Proposals for many outputs at once; soft types make one batched extractor call per extractor."""
    if len(outputs) != len(ctxs):
        raise InterpError(f"got {len(outputs)} outputs but {len(ctxs)} contexts")
    if types is None:
        types = default_types(with_soft=any(_extractor_of(c, extractor) is not None for c in ctxs))
    result: list[list[Candidate]] = [[] for _ in outputs]
    live = [i for i, o in enumerate(outputs) if o and o.strip()]
    for name in types:
        ct = get_constraint_type(name)
        per_item: dict[int, list[Constraint] | Exception] = {}
        if isinstance(ct, SoftConstraintType):
            groups: dict[int, list[int]] = {}
            for i in live:
                groups.setdefault(id(_extractor_of(ctxs[i], extractor)), []).append(i)
            for idx in groups.values():
                ext = _extractor_of(ctxs[idx[0]], extractor)
                res = ct.propose_many([outputs[i] for i in idx], [ctxs[i] for i in idx], ext)
                per_item.update(zip(idx, res))
        else:
            for i in live:
                try:
                    per_item[i] = ct.propose(outputs[i], ctxs[i])
                except NoConstraint as e:
                    per_item[i] = e
                except Exception as e:  # noqa: BLE001 - a proposer bug loses one constraint, not the run
                    per_item[i] = NoConstraint(f"proposer error: {type(e).__name__}: {e}")
        for i in range(len(outputs)):
            res = per_item.get(i, NoConstraint("empty output"))
            if isinstance(res, Exception):
                result[i].append(Candidate(None, False, str(res), type=name))
            elif not res:
                result[i].append(Candidate(None, False, "no candidate", type=name))
            else:
                result[i].extend(Candidate(c, False, "proposed") for c in res)
    return result


def propose_candidates(output: str, ctx: ProposeContext, types: Sequence[str] | None = None,
                       extractor=None) -> list[Candidate]:
    """Candidates of the given types (default: all hard types, plus soft ones if an extractor is given)."""
    return propose_candidates_many([output], [ctx], types, extractor)[0]


def filter_self_evident_many(candidates: Sequence[Sequence[Candidate]], outputs: Sequence[str],
                             judge=None) -> list[list[Candidate]]:
    """Self-evidence filter for many outputs; soft checks are batched into one judge call."""
    result = [[dataclasses.replace(c) for c in cs] for cs in candidates]
    soft: list[tuple[int, int]] = []
    for i, cs in enumerate(result):
        seen: set[str] = set()
        for j, c in enumerate(cs):
            if c.constraint is None:
                c.accepted = False
                continue
            if c.constraint.key in seen:
                c.accepted, c.reason = False, "duplicate"
                continue
            seen.add(c.constraint.key)
            if c.constraint.kind == "soft":
                if judge is None:
                    c.accepted, c.reason = False, "no judge given for a soft constraint"
                else:
                    soft.append((i, j))
                continue
            chk = c.constraint.check(outputs[i])
            c.accepted, c.reason, c.judge_output = chk.ok, chk.reason, chk.judge_output
    if soft:
        checks = check_many([result[i][j].constraint for i, j in soft], [outputs[i] for i, _ in soft], judge)
        for (i, j), chk in zip(soft, checks):
            c = result[i][j]
            c.accepted, c.reason, c.judge_output = chk.ok, chk.reason, chk.judge_output
    return result


def filter_self_evident(candidates: Sequence[Candidate], output: str, judge=None) -> list[Candidate]:
    """Accept a candidate only if the original output satisfies it (judge "Yes" for soft); keep rejects."""
    return filter_self_evident_many([candidates], [output], judge)[0]


def extract_constraints(output: str, ctx: ProposeContext, types: Sequence[str] | None = None,
                        extractor=None, judge=None) -> list[Candidate]:
    """Propose + filter for one output: all candidates, accepted and rejected (see `accepted_constraints`)."""
    return filter_self_evident(propose_candidates(output, ctx, types, extractor), output, judge)


def extract_constraints_many(outputs: Sequence[str], ctxs: Sequence[ProposeContext],
                             types: Sequence[str] | None = None, extractor=None, judge=None) -> list[list[Candidate]]:
    """Batched `extract_constraints` (one extractor and one judge call per soft type/template)."""
    return filter_self_evident_many(propose_candidates_many(outputs, ctxs, types, extractor), outputs, judge)


def accepted_constraints(candidates: Sequence[Candidate]) -> list[Constraint]:
    return [c.constraint for c in candidates if c.accepted and c.constraint is not None]


def sample_constraint_set(accepted: Sequence[Constraint], k: int, seed: int, by_type: str | None = None,
                          output: str | None = None, judge=None) -> list[Constraint] | None:
    """K (1..5) distinct constraints drawn deterministically from `seed`, or None if there are not enough.

    by_type: None draws from all; "mixed" takes at most one per type; a type name draws only that type.
    With `output`, only constraints it satisfies are drawn (soft ones only when a judge is given), so the
    set is jointly satisfied by the original output. The draw does not depend on the order of `accepted`.
    """
    if not 1 <= k <= MAX_SET_SIZE:
        raise InterpError(f"a constraint set has 1..{MAX_SET_SIZE} constraints, got k={k}")
    pool = sorted({c.key: c for c in accepted}.values(), key=lambda c: (c.type, c.key))
    if by_type not in (None, "mixed"):
        pool = [c for c in pool if c.type == by_type]
    if output is not None:
        pool = [c for c in pool if (c.kind == "soft" and judge is None) or c.check(output, judge).ok]
    rng = random.Random(seed)
    if by_type == "mixed":
        types = sorted({c.type for c in pool})
        if len(types) < k:
            return None
        return [rng.choice([c for c in pool if c.type == t]) for t in rng.sample(types, k)]
    if len(pool) < k:
        return None
    return rng.sample(pool, k)
