"""Typed, versioned records of a run directory (inspect_ai-style log models).

One dataclass per stage file: `BaselineRecord` (baseline.jsonl), `ConstraintsRecord` (constraints.jsonl),
`ConstrainedRecord` (constrained.jsonl), `AblationRecord` (ablations.jsonl), `SweepRecord`
(ablation_sweep.jsonl). Every record written since schema 1 carries ``schema_version``; files written before
(no field) read as version 0 with the same fields. `from_dict` keeps fields it does not name in `extra`, so a
round trip loses nothing, and refuses a record that lacks a required field or whose `Literal` field holds a
value this version does not know (a silently misread kind is worse than an error).

    recs = interp.RunDir("runs/demo").typed("constrained")     # list[ConstrainedRecord]
    [r.condition_kind for r in recs if not r.success]
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .errors import InterpError

SCHEMA_VERSION = 1

FinishReason = Literal["eos", "stop", "length", "teacher_forced"]
ErrorType = Literal["none", "output_spec", "unfinished_thinking", "truncated", "reasoning"]  # outcomes.ERROR_TYPES
ThinkingState = Literal["none", "complete", "unterminated"]  # interp.models.thinking.Segments.state


@dataclass
class Record:
    """Fields every record has; subclasses add theirs. `extra`: fields this schema does not name."""

    stage_file: ClassVar[str] = ""
    omit_if_none: ClassVar[frozenset[str]] = frozenset()  # fields written only when they have a value
    key: str
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: dict) -> "Record":
        """Read one stored record (today's files and those written before `schema_version` existed)."""
        if not isinstance(d, dict):
            raise InterpError(f"a {cls.__name__} is a JSON object, got {type(d).__name__}")
        names, required, allowed_of = _schema(cls)
        missing = [n for n in required if n not in d]
        if missing:
            raise InterpError(f"{cls.__name__} {d.get('key', '?')}: missing field(s) {missing}")
        kw = {n: d[n] for n in names if n in d}
        kw.setdefault("schema_version", 0)
        if kw["schema_version"] > SCHEMA_VERSION:
            raise InterpError(f"{cls.__name__} {d.get('key')}: schema_version {kw['schema_version']} is newer than "
                              f"this interp reads ({SCHEMA_VERSION}): upgrade interp")
        for n, v in kw.items():
            allowed = allowed_of.get(n)
            if allowed is not None and v not in allowed:
                raise InterpError(f"{cls.__name__} {d.get('key')}: {n}={v!r} is not one of {sorted(map(str, allowed))}")
        return cls(**kw, extra={k: v for k, v in d.items() if k not in names})

    def to_dict(self) -> dict:
        """The record as stored: its fields, then `extra`, with the current `schema_version`."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name != "extra" and not (f.name in self.omit_if_none and getattr(self, f.name) is None)}
        d["schema_version"] = SCHEMA_VERSION
        return {**d, **self.extra}


_SCHEMAS: dict[type, tuple[frozenset[str], tuple[str, ...], dict[str, set]]] = {}


def _schema(cls: type) -> tuple[frozenset[str], tuple[str, ...], dict[str, set]]:
    """(field names, required field names, Literal field -> allowed values) of a record class, computed once."""
    if cls in _SCHEMAS:
        return _SCHEMAS[cls]
    fields = [f for f in dataclasses.fields(cls) if f.name != "extra"]
    hints = typing.get_type_hints(cls)
    required = tuple(f.name for f in fields
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    allowed = {f.name: v for f in fields if (v := _literal_values(hints[f.name])) is not None}
    _SCHEMAS[cls] = (frozenset(f.name for f in fields), required, allowed)
    return _SCHEMAS[cls]


def _literal_values(tp) -> set | None:
    """The values a `Literal[...]` (or `Literal[...] | None`) annotation allows; None for other types."""
    if typing.get_origin(tp) is Literal:
        return set(typing.get_args(tp))
    args = typing.get_args(tp)
    lits = [a for a in args if typing.get_origin(a) is Literal]
    if lits and all(typing.get_origin(a) is Literal or a is type(None) for a in args):
        return {v for a in lits for v in typing.get_args(a)} | ({None} if type(None) in args else set())
    return None


@dataclass
class _GenerationFields(Record):
    """What baseline and constrained records share: the prompt, the output and its score."""

    omit_if_none: ClassVar[frozenset[str]] = frozenset({"cas_file", "thinking_state", "thinking_text", "answer_text",
                                                        "phase_ranges", "thinking_tokens", "thinking_forced"})

    stage: str = ""
    model: str = ""
    model_label: str = ""
    model_revision: str = ""
    task: str = ""
    domain: str = ""
    item_id: str = ""
    item_input: Any = None
    seed: int = 0
    prompt_text: str = ""
    spans: dict[str, list[int]] = field(default_factory=dict)
    prompt_ids: list[int] = field(default_factory=list)
    output_text: str = ""
    output_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason = "eos"
    success: bool = False
    score_value: float = 0.0
    prediction: str | None = None
    score_detail: dict = field(default_factory=dict)
    lenient_success: bool = False
    gen_config: dict = field(default_factory=dict)
    cas_file: str | None = None
    # present only when the output had a reasoning trace (interp.models.thinking.Segments.to_record)
    thinking_state: ThinkingState | None = None
    thinking_text: str | None = None
    answer_text: str | None = None
    phase_ranges: dict[str, list[int]] | None = None
    thinking_tokens: int | None = None
    thinking_forced: bool | None = None

    @property
    def prompt(self):
        """The `Prompt` this record was generated from (text, token ids, part spans): pass it to `interp.trace`."""
        from .prompts import Prompt

        return Prompt(self.prompt_text, list(self.prompt_ids), {k: tuple(v) for k, v in self.spans.items()})


@dataclass
class BaselineRecord(_GenerationFields):
    """One (item, seed) generated without a constraint."""

    stage_file: ClassVar[str] = "baseline"
    stage: Literal["baseline"] = "baseline"


@dataclass
class ConstrainedRecord(_GenerationFields):
    """One (item, condition, seed): a constraint set (K >= 1) or a control, beside its baseline record."""

    stage_file: ClassVar[str] = "constrained"
    omit_if_none: ClassVar[frozenset[str]] = _GenerationFields.omit_if_none | {"ifeval_checks"}
    stage: Literal["constrained"] = "constrained"
    condition: str = ""
    condition_kind: Literal["single", "set", "control"] = "single"
    ctype: str = ""
    hardness: Literal["hard", "soft", "mixed", "control"] | None = None
    k: int = 0
    constraints: list[dict] = field(default_factory=list)
    insert_texts: list[str] = field(default_factory=list)
    task_text: str | None = None
    baseline_key: str = ""
    constraint_checks: list[dict] = field(default_factory=list)
    constraint_met: bool | None = None
    error_type: ErrorType | None = None
    # per constraint, IFEval's verdict of its nearest IFEval id (interp.constraints.ifeval), None where none
    ifeval_checks: list[dict | None] | None = None


@dataclass
class ConstraintsRecord(Record):
    """Every candidate constraint proposed for one baseline-solved item, accepted or rejected with a reason."""

    stage_file: ClassVar[str] = "constraints"
    item_id: str = ""
    baseline_key: str = ""
    candidates: list[dict] = field(default_factory=list)
    n_proposed: int = 0
    n_accepted: int = 0


@dataclass
class AblationRecord(Record):
    """One intervened re-generation of a constrained record (an arm of the rescue or induce stage)."""

    stage_file: ClassVar[str] = "ablations"
    stage: Literal["rescue", "induce"] = "rescue"
    arm: str = ""
    role: Literal["none", "main", "control", "head"] = "none"
    base_key: str = ""
    baseline_key: str | None = None
    item_id: str = ""
    condition: str | None = None
    hardness: str | None = None
    interventions: list[dict] = field(default_factory=list)
    gen_config: dict | None = None
    cas_span: str = "constraints"
    cells: list[list[int]] | None = None
    output_text: str = ""
    output_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason = "eos"
    success: bool = False
    base_success: bool = False
    flipped: bool = False
    constraint_met: bool | None = None
    base_constraint_met: bool | None = None
    cas: dict = field(default_factory=dict)


@dataclass
class SweepRecord(Record):
    """A teacher-forced single-head knockout sweep and attribution patching over one failure's baseline output."""

    stage_file: ClassVar[str] = "ablation_sweep"
    base_key: str = ""
    baseline_key: str = ""
    item_id: str = ""
    condition: str | None = None
    n_output_tokens: int = 0
    logp_none: float = 0.0
    head_effect: list[list[float]] = field(default_factory=list)
    layer_effect: list[float] = field(default_factory=list)
    attribution: list[list[float]] = field(default_factory=list)
    rho: float | None = None
    p: float | None = None


RECORD_TYPES: dict[str, type[Record]] = {c.stage_file: c for c in
                                         (BaselineRecord, ConstraintsRecord, ConstrainedRecord, AblationRecord,
                                          SweepRecord)}


def record_type(stage: str) -> type[Record]:
    """The record class of a stage file name (``"constrained"``, ``"ablations"``, ...)."""
    if stage not in RECORD_TYPES:
        raise InterpError(f"no record type for stage {stage!r}; stages: {sorted(RECORD_TYPES)}")
    return RECORD_TYPES[stage]
