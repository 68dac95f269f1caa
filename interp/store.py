"""Append-only JSONL result store keyed by a content hash, safe against crashes.

Each record carries `key = hash(model, task, item, condition, config)`. Appends are flushed and
fsynced line by line; on open, a half-written last line (a crash mid-write) is cut off, so a killed
run restarted with the same store skips what is done and never writes duplicates.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable


def record_key(**parts: Any) -> str:
    """Stable 16-hex key of the given fields (model, task, item, condition, config, ...)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class ResultStore:
    """JSONL file of records (dicts with a "key"); `append` is durable, `keys()` tells what is done."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
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

    def append(self, record: dict) -> bool:
        """Write one record unless its key is already stored; returns whether it was written."""
        if "key" not in record:
            raise ValueError("record needs a 'key' (see record_key)")
        if record["key"] in self._keys:
            return False
        line = json.dumps(record, default=_json_default, ensure_ascii=False) + "\n"
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


def read_records(path: str | os.PathLike) -> list[dict]:
    """Records of a JSONL store without opening it for writing (a partial last line of a live run is skipped)."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in filter(str.strip, p.read_text(encoding="utf-8").splitlines()):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _json_default(o):
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_records(path: str | os.PathLike):
    """One call from a run's JSONL file (or run directory) to a pandas DataFrame."""
    p = Path(path)
    if p.is_dir():
        import pandas as pd

        frames = [ResultStore(f).to_pandas().assign(stage=f.stem) for f in sorted(p.glob("*.jsonl"))]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return ResultStore(p).to_pandas()
