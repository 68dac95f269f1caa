"""Append-only JSONL result store keyed by a content hash, safe against crashes.

Each record carries `key = hash(model, task, item, condition, prompt, config)`. Appends are flushed and
fsynced line by line; on open for writing, a half-written last line (a crash mid-write) is cut off, so a
killed run restarted with the same store skips what is done and never writes duplicates. Readers
(`scan_records`, `read_records`, `load_records`) never modify the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence


_SURROGATE = re.compile(r"[\ud800-\udfff]")  # not encodable as UTF-8: replaced so no record is lost to them


def record_key(**parts: Any) -> str:
    """Stable 16-hex key of the given fields (model, task, item, condition, config, ...)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ResultStore:
    """JSONL file of records (dicts with a "key"); `append` is durable, `keys()` tells what is done.

    Opening it is a write (a crash's partial last line is cut off). `guard`, if given, is called before
    every append and raises when the caller may not write (a run directory whose lock it does not hold).
    `schema`, if given (an `interp.records` class), checks every appended record and stamps its
    ``schema_version``.
    """

    def __init__(self, path: str | os.PathLike, guard: Callable[[], None] | None = None, schema: Any = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._guard = guard
        self._schema = schema
        self._keys: set[str] = set()
        self._repair()
        for rec in self._read():
            self._keys.add(rec["key"])

    def _repair(self) -> None:
        """Drop a trailing partial line left by a crash mid-write."""
        if not self.path.exists():
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                f.truncate(cut)

    def _read(self) -> list[dict]:
        return read_records(self.path)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def keys(self) -> set[str]:
        return set(self._keys)

    def append(self, record: Any) -> bool:
        """Write one record (a dict or an `interp.records.Record`) unless its key is already stored; returns
        whether it was written.

        Lone surrogates in its text (e.g. from a program's error message) are written as U+FFFD, so an
        encoding error can never lose the record."""
        from .records import Record

        if isinstance(record, Record):
            record = record.to_dict()
        if "key" not in record:
            raise ValueError("record needs a 'key' (see record_key)")
        if record["key"] in self._keys:
            return False
        if self._guard is not None:
            self._guard()
        if self._schema is not None:
            record = self._schema.from_dict(record).to_dict()
        line = _SURROGATE.sub("\ufffd", json.dumps(record, default=_json_default, ensure_ascii=False)) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._keys.add(record["key"])
        return True

    def extend(self, records: Iterable[dict]) -> int:
        return sum(self.append(r) for r in records)

    def records(self) -> list[dict]:
        return list(self._read())

    def to_pandas(self):
        """All records as a DataFrame (nested fields stay as Python objects)."""
        import pandas as pd

        return pd.DataFrame(self.records())


@dataclass
class Scan:
    """What a read of a JSONL store found: the records, the numbers (1-based) of lines that are not records
    (bad JSON, not an object, no string "key", a required field missing) and whether the file ends in a
    partial line (a live or crashed writer's; skipped and not counted as bad)."""

    records: list[dict] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)
    partial_tail: bool = False

    def problem(self, name: str) -> str | None:
        """One line describing the skipped lines, or None when there are none."""
        if not self.bad_lines:
            return None
        shown = ", ".join(map(str, self.bad_lines[:5])) + (" ..." if len(self.bad_lines) > 5 else "")
        return f"{name}: skipped {len(self.bad_lines)} unreadable line(s) (line {shown})"


def scan_records(path: str | os.PathLike, required: Sequence[str] = ("key",)) -> Scan:
    """Read a JSONL store without modifying it, counting (not hiding) lines that are not valid records."""
    p = Path(path)
    scan = Scan()
    if not p.exists():
        return scan
    data = p.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1].strip():
        scan.partial_tail = True
    for no, raw in enumerate(lines[:-1], 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            rec = None
        if isinstance(rec, dict) and isinstance(rec.get("key"), str) and all(f in rec for f in required):
            scan.records.append(rec)
        else:
            scan.bad_lines.append(no)
    return scan


def read_records(path: str | os.PathLike) -> list[dict]:
    """Records of a JSONL store without opening it for writing (a partial last line of a live run is skipped;
    use `scan_records` to learn how many unreadable lines were skipped)."""
    return scan_records(path).records


def _json_default(o):
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_records(path: str | os.PathLike):
    """One call from a run's JSONL file (or run directory) to a pandas DataFrame; strictly read-only."""
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        frames = [pd.DataFrame(read_records(f)).assign(stage=f.stem) for f in sorted(p.glob("*.jsonl"))]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return pd.DataFrame(read_records(p))
