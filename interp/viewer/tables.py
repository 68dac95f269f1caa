"""The report's tables (recomputed by `interp.experiments.report.sustain_tables`) with every cell linked to records.

A link is a viewer filter (see `interp.viewer.index`) plus what the cell counts over the records it selects
(pairs = distinct (item, condition), items, or records). Every counting cell is checked: the records behind
its link must add up to the number in the cell, or the link is dropped and the mismatch reported on the page;
a cell never leads to records that are not the ones it counted.
"""
from __future__ import annotations

import math
import os
import pickle
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InterpError
from .index import RunIndex

TITLES = (("baseline", "Baseline"), ("overall", "SustainScore (with controls)"), ("by_type", "By constraint type"),
          ("by_domain", "By domain"), ("scaling", "Constraint-count scaling"), ("errors", "Failure analysis (counts)"),
          ("constraint_met", "Did the output meet the added constraint?"),
          ("joint", "Task-correct x constraint-met, hard / soft constraint accuracy (MathIF)"),
          ("thinking", "Thinking traces"), ("by_thinking_length", "SustainScore by thinking length"))
COUNT_COLUMNS = {"n": "pairs", "n_items": "items"}  # in SustainScore rows (_row); other tables count records
JOINT = {"correct_met": ("success", "true"), "correct_unmet": ("success", "false"),
         "wrong_met": ("failure", "true"), "wrong_unmet": ("failure", "false")}


@dataclass
class LinkedTable:
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    links: list[dict[str, dict]] = field(default_factory=list)  # per row: column -> {"filters": ...}

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "columns": self.columns, "rows": self.rows,
                "links": self.links}


def _json(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _group_filter(table: str, group: str) -> dict[str, str] | None:
    """The records a SustainScore row (`interp.experiments.report._row`) was computed over, as a filter."""
    if table == "by_type":
        return {"kind": "single", "ctype": group}
    if table == "by_domain":
        return {"kind": "single", "domain": group}
    if group in ("all constraints (K=1)", "K=1"):
        return {"kind": "single"}
    if m := re.fullmatch(r"K=(\d+)", group):
        return {"kind": "set", "k": m.group(1)}
    if m := re.fullmatch(r"control: (.+)", group):
        return {"ctype": m.group(1)}
    if m := re.fullmatch(r"(\S+) \(K=1\)", group):
        return {"kind": "single", "hardness": m.group(1)}
    return None


def _count(index: RunIndex, filters: dict[str, str], kind: str) -> int:
    rows = index.matching(filters)
    if kind == "pairs":
        return len({(r["item_id"], r["condition"]) for r in rows})
    if kind == "items":
        return len({r["item_id"] for r in rows})
    return len(rows)


def _cell_links(name: str, row: dict, seeds: int) -> dict[str, tuple[dict[str, str], str | None]]:
    """Column -> (filter, what the cell counts or None for a non-count cell) for one table row."""
    con = {"stage": "constrained"}
    out: dict[str, tuple[dict[str, str], str | None]] = {}
    if name == "baseline":
        base = {"stage": "baseline"}
        for col in row:
            if col != "group":
                out[col] = (base, "items" if col in ("n", "n_items") else None)
        out["n_success"] = (base | {"outcome": "success"}, "items")
        return out
    if name == "errors":
        for col in row:
            if col != "ctype":
                out[col] = (con | {"real": "yes", "outcome": "failure", "ctype": str(row["ctype"]),
                                   "error_type": col}, "records")
        return out
    if name == "constraint_met":
        f = con | {"real": "yes", "outcome": str(row["outcome"]), "checked": "yes"}
        return {"outcome": (f, None), "n": (f, "records"), "met": (f | {"met": "true"}, "records"),
                "share_met": (f, None)}
    if name not in ("overall", "by_type", "by_domain", "scaling", "joint"):
        return out
    g = _group_filter(name, str(row["group"]))
    if g is None:
        return out
    f = con | g
    if name == "joint":
        f = f | {"checked": "yes"}
        for col in row:
            if col in JOINT:
                o, m = JOINT[col]
                out[col] = (f | {"outcome": o, "met": m}, "records")
            elif col != "group":
                out[col] = (f, "records" if col == "n" else None)
        return out
    for col in row:
        if col != "group":
            out[col] = (f, COUNT_COLUMNS.get(col))
    # with one seed a pair is one record and n_success counts solved pairs; with several it is a mean over seeds
    out["n_success"] = (f | {"outcome": "success"}, "pairs" if seeds == 1 else None)
    out["group"] = (f, None)
    return out


def report_tables(path: str) -> tuple[dict, int, dict[str, list[int]], str]:
    """`sustain_tables` of the run at `path` (what `interp report` computes), its seeds per item, the lines the
    tables skipped and the estimator note."""
    from ..rundir import RunDir

    rd = RunDir(path, warn=lambda s: None)
    runs = rd.load_run()  # before the slow import (torch, via interp.experiments): a bad run fails fast
    from ..experiments.report import ESTIMATOR_NOTE, sustain_tables

    seeds = int(max((runs["baseline"].groupby("item_id").size().max() if len(runs["baseline"]) else 1), 1))
    return sustain_tables(runs), seeds, {f"{k}.jsonl": v for k, v in rd.skipped.items()}, ESTIMATOR_NOTE


class ChildTables:
    """`report_tables` computed by a child process (`python -m interp.viewer.child RUN`, started by the server
    before it indexes the run), so the server never holds every full record (`RunDir.load_run`) nor imports
    torch (via `interp.experiments`) for them. A separate interpreter rather than multiprocessing, which would
    re-run the caller's script in the child. Ended by `stop()`."""

    def __init__(self, path: str | os.PathLike):
        root = str(Path(__file__).resolve().parents[2])  # the checkout whose `interp` this is
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        self.proc = subprocess.Popen([sys.executable, "-m", "interp.viewer.child", str(path)], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def result(self) -> tuple[dict, int, dict[str, list[int]], str]:
        out, err = self.proc.communicate()
        if self.proc.returncode != 0:
            last = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {self.proc.returncode}"]
            raise InterpError(f"computing the report tables failed: {last[0]}")
        return pickle.loads(out)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()


def linked_tables(index: RunIndex, computed: ChildTables | None = None) -> dict:
    """The report's tables as JSON, each counting cell linked to the records it counts (checked).

    `computed`: the `report_tables` of this run already under way in a child process; else computed here.
    """
    tables, seeds, skipped, note = computed.result() if computed is not None else report_tables(str(index.path))
    out, mismatches = [], []
    for name, title in TITLES:
        if name not in tables:
            continue
        df = tables[name]
        cols = [str(c) for c in df.columns]
        lt = LinkedTable(name, title, cols, [])
        for rec in df.to_dict(orient="records"):
            rec = {str(k): _json(v) for k, v in rec.items()}
            lt.rows.append([rec[c] for c in cols])
            cells = {c: fk for c, fk in _cell_links(name, rec, seeds).items() if c in rec}
            verified: list[dict] = []
            for col, (filters, kind) in cells.items():
                if kind is None:
                    continue
                got, want = _count(index, filters, kind), rec[col]
                if want is None or got != want:
                    mismatches.append(f"{title}, row {rec.get('group', rec.get('ctype', rec.get('outcome')))}, "
                                      f"{col}: the cell says {want}, its records give {got} ({kind})")
                else:
                    verified.append(filters)
            # a cell links only to a selection whose count was checked against a counting cell of its row
            links = {col: {"filters": f, "counts": kind} for col, (f, kind) in cells.items() if f in verified}
            lt.links.append(links)
        out.append(lt.to_dict())
    return {"tables": out, "estimator": note, "mismatches": mismatches, "skipped": skipped}

