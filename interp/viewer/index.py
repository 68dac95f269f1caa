"""A read-only index of a run directory for the viewer: one light row per record, full records read on demand.

The stage files are streamed once, line by line; per record only the fields the list, its filters and the
search need are kept (plus the byte offset of its line), so a run of tens of thousands of records is indexed
without holding their token ids, prompts or CAS in memory. A page, an item or a record is then read back from
its offsets and checked against its `interp.records` type. Nothing is written into the run directory.

Filters are equality on the string value of a row field (``{"ctype": "keyword", "outcome": "failure"}``) plus a
case-insensitive substring search in outputs (``q``): the exported page applies the same rule in JavaScript.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import InterpError
from ..records import record_type
from ..rundir import RunDir

# Stages the viewer lists, in the order of the stage selector.
STAGES = ("constrained", "baseline", "ablations")
# Row fields a filter may name (each row carries all of them, as strings; "" where a stage lacks the field).
FILTER_FIELDS = ("stage", "task", "domain", "item_id", "condition", "kind", "real", "ctype", "hardness", "k",
                 "outcome", "lenient", "met", "checked", "error_type", "finish_reason", "thinking", "seed", "arm", "role",
                 "ab_stage", "flipped")
SNIPPET = 160
MAX_PAGE = 500


def _s(v: Any) -> str:
    """A field value as the string filters compare (JSON spelling for booleans and None)."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _row(stage: str, r: dict, line: int, offset: int, length: int) -> dict:
    """The light row of one record: its filter fields, what the list shows, and where its line is."""
    kind = r.get("condition_kind", "")
    out = r.get("output_text") or ""
    row = {
        "stage": stage, "key": r["key"], "line": line, "offset": offset, "length": length,
        "task": _s(r.get("task", "")), "domain": _s(r.get("domain", "")), "item_id": _s(r.get("item_id", "")),
        "condition": _s(r.get("condition") or ("baseline" if stage == "baseline" else "")),
        "kind": _s(kind) if stage == "constrained" else "",
        "real": ("no" if kind == "control" else "yes") if stage == "constrained" else "",
        "ctype": _s(r.get("ctype", "")), "hardness": _s(r.get("hardness", "")) if stage == "constrained" else "",
        "k": _s(r.get("k", "")), "outcome": "success" if r.get("success") else "failure",
        "lenient": _s(r.get("lenient_success")) if "lenient_success" in r else "",
        "met": _s(r.get("constraint_met")) if stage != "baseline" else "",
        "checked": ("no" if r.get("constraint_met") is None else "yes") if stage != "baseline" else "",
        "error_type": _s(r.get("error_type")) if stage == "constrained" else "",
        "finish_reason": _s(r.get("finish_reason", "")), "thinking": _s(r.get("thinking_state") or "none"),
        "seed": _s(r.get("seed", "")), "arm": _s(r.get("arm", "")), "role": _s(r.get("role", "")),
        "ab_stage": _s(r.get("stage", "")) if stage == "ablations" else "",
        "flipped": _s(r.get("flipped")) if stage == "ablations" else "",
        "base_key": r.get("base_key") or r.get("baseline_key") or "",
        "has_cas": bool(r.get("cas_file")), "n_out": len(r.get("output_ids") or []),
        "snippet": out[:SNIPPET],
    }
    return row


@dataclass
class StageIndex:
    """The rows of one stage file, its unreadable line numbers and whether a writer is mid-line."""

    rows: list[dict] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # full output text per row, lower-cased, for search
    bad_lines: list[int] = field(default_factory=list)
    partial_tail: bool = False


def _lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, raw line) of every complete line; a partial last line is not yielded."""
    with open(path, "rb") as f:
        offset, no = 0, 0
        for raw in f:
            no += 1
            if not raw.endswith(b"\n"):
                return
            yield no, offset, raw
            offset += len(raw)


class RunIndex:
    """The viewer's view of one run directory (read-only): config, light rows per stage, records on demand."""

    def __init__(self, path: str | os.PathLike):
        self.rd = RunDir(path, warn=lambda s: None)
        self.path = self.rd.path
        if not self.path.is_dir():
            raise InterpError(f"{self.path} is not a directory; pass a run directory written by `interp sustain`")
        self.config = self.rd.read_config()
        self.stages: dict[str, StageIndex] = {}
        self._facets: dict[str, dict[str, list[str]]] | None = None
        for stage in STAGES:
            if self.rd.has(stage):
                self.stages[stage] = self._scan(stage)
        self._candidates = self._scan_candidates()
        if "baseline" not in self.stages:
            raise InterpError(f"{self.path} is not a SustainScore run directory (no baseline.jsonl)")
        self._by_key = {r["key"]: (s, i) for s, ix in self.stages.items() for i, r in enumerate(ix.rows)}
        self._by_item: dict[str, list[tuple[str, int]]] = {}
        self._ablations_of: dict[str, list[int]] = {}
        for s, ix in self.stages.items():
            for i, r in enumerate(ix.rows):
                self._by_item.setdefault(r["item_id"], []).append((s, i))
                if s == "ablations":
                    self._ablations_of.setdefault(r["base_key"], []).append(i)

    def _scan(self, stage: str) -> StageIndex:
        """Stream one stage file into light rows; lines that are not records (bad JSON, no key) are counted."""
        ix = StageIndex()
        path = self.rd.stage_path(stage)
        for no, offset, raw in _lines(path):
            if not raw.strip():
                continue
            try:
                r = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                r = None
            if not (isinstance(r, dict) and isinstance(r.get("key"), str)):
                ix.bad_lines.append(no)
                continue
            ix.rows.append(_row(stage, r, no, offset, len(raw)))
            ix.text.append((r.get("output_text") or "").lower())
        ix.partial_tail = _ends_partial(path)
        return ix

    def _scan_candidates(self) -> dict[str, list[tuple[int, int]]]:
        """Where each item's constraint candidates (constraints.jsonl) lie: item id -> [(offset, length)]."""
        out: dict[str, list[tuple[int, int]]] = {}
        if not self.rd.has("constraints"):
            return out
        for _, offset, raw in _lines(self.rd.stage_path("constraints")):
            try:
                r = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(r, dict) and isinstance(r.get("item_id"), str):
                out.setdefault(r["item_id"], []).append((offset, len(raw)))
        return out

    def candidates(self, item_id: str) -> list[dict]:
        """Every constraint proposed for an item, accepted or rejected with the reason (constraints.jsonl)."""
        where = self._candidates.get(item_id)
        if not where:
            return []
        out = []
        with open(self.rd.stage_path("constraints"), "rb") as f:
            for offset, length in where:
                f.seek(offset)
                out += [c for c in json.loads(f.read(length)).get("candidates") or [] if isinstance(c, dict)]
        return out

    # ---- what the page asks ------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return {s: len(ix.rows) for s, ix in self.stages.items()}

    def facets(self) -> dict[str, dict[str, list[str]]]:
        """Per stage, the distinct values of each filter field (the filter menus); computed once."""
        if self._facets is None:
            self._facets = self._compute_facets()
        return self._facets

    def _compute_facets(self) -> dict[str, dict[str, list[str]]]:
        out: dict[str, dict[str, list[str]]] = {}
        for s, ix in self.stages.items():
            vals: dict[str, set[str]] = {f: set() for f in FILTER_FIELDS}
            for r in ix.rows:
                for f in FILTER_FIELDS:
                    vals[f].add(r[f])
            out[s] = {f: sorted(v, key=_natural) for f, v in vals.items() if len(v - {""}) > 0 and f != "item_id"}
        return out

    def _hits(self, filters: Mapping[str, str]) -> tuple[str, list[int]]:
        stage = filters.get("stage", "constrained")
        if stage not in self.stages:
            raise InterpError(f"this run has no {stage!r} records; stages: {sorted(self.stages)}")
        bad = set(filters) - set(FILTER_FIELDS) - {"q"}
        if bad:
            raise InterpError(f"unknown filter(s) {sorted(bad)}; filters: {list(FILTER_FIELDS) + ['q']}")
        ix = self.stages[stage]
        eq = [(f, v) for f, v in filters.items() if f not in ("stage", "q")]
        q = (filters.get("q") or "").lower()
        return stage, [i for i, r in enumerate(ix.rows) if all(r[f] == v for f, v in eq) and (not q or q in ix.text[i])]

    def query(self, filters: Mapping[str, str], offset: int = 0, limit: int = 50) -> dict:
        """One page of rows of `filters["stage"]` (default constrained) matching every filter, and the total."""
        if not (0 <= offset and 1 <= limit <= MAX_PAGE):
            raise InterpError(f"offset must be >= 0 and limit in 1..{MAX_PAGE}, got {offset}, {limit}")
        stage, hits = self._hits(filters)
        rows = self.stages[stage].rows
        return {"stage": stage, "total": len(hits), "offset": offset, "limit": limit,
                "rows": [public(rows[i]) for i in hits[offset:offset + limit]]}

    def matching(self, filters: Mapping[str, str]) -> list[dict]:
        """Every row matching `filters` (used to check table links)."""
        stage, hits = self._hits(filters)
        return [self.stages[stage].rows[i] for i in hits]

    def row(self, key: str) -> dict:
        if key not in self._by_key:
            raise InterpError(f"no record with key {key!r} in {self.path}")
        s, i = self._by_key[key]
        return self.stages[s].rows[i]

    def record(self, key: str) -> dict:
        """The stored record of `key`, read from its line and checked against its `interp.records` type."""
        row = self.row(key)
        with open(self.rd.stage_path(row["stage"]), "rb") as f:
            f.seek(row["offset"])
            raw = f.read(row["length"])
        d = json.loads(raw)
        if d.get("key") != key:
            raise InterpError(f"{row['stage']}.jsonl changed since the viewer indexed it (line {row['line']} is "
                              "no longer that record); reopen the viewer")
        try:
            record_type(row["stage"]).from_dict(d)
            d["_schema_problem"] = None
        except InterpError as e:
            d["_schema_problem"] = str(e)
        d["_stage"] = row["stage"]
        return d

    def item(self, item_id: str) -> dict:
        """Every record of one item: baseline, each condition, and the ablation arms of each condition."""
        if item_id not in self._by_item:
            raise InterpError(f"no records of item {item_id!r} in {self.path}")
        out: dict[str, list[dict]] = {s: [] for s in STAGES}
        for s, i in self._by_item[item_id]:
            out[s].append(public(self.stages[s].rows[i]))
        return {"item_id": item_id, **out, "candidates": self.candidates(item_id)}

    def ablations_of(self, key: str) -> list[dict]:
        ix = self.stages.get("ablations")
        return [public(ix.rows[i]) for i in self._ablations_of.get(key, [])] if ix else []

    def problems(self) -> list[str]:
        """One line per stage file with unreadable lines or a partial last line (shown on the page)."""
        out = []
        for s, ix in self.stages.items():
            if ix.bad_lines:
                shown = ", ".join(map(str, ix.bad_lines[:5])) + (" ..." if len(ix.bad_lines) > 5 else "")
                out.append(f"{s}.jsonl: skipped {len(ix.bad_lines)} unreadable line(s) (line {shown})")
            if ix.partial_tail:
                out.append(f"{s}.jsonl ends in a partial line (a writer is running or crashed); it is not shown")
        return out


def _ends_partial(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return False
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"


def public(row: dict) -> dict:
    """A row as the page gets it (without where its line is)."""
    return {k: v for k, v in row.items() if k not in ("offset", "length")}


def _natural(s: str):
    """Sort numbers numerically and text alphabetically (K=2 before K=10)."""
    try:
        return (0, float(s), "")
    except ValueError:
        return (1, 0.0, s)
