"""Loading benchmark files (JSONL, JSON, gzip) with one-line errors that name the file and line.

A bad file never loads partially: a wrong path, an empty file, a malformed line or a missing field
raises `InterpError` saying where and what to do.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterable

from ..errors import InterpError
from ..paths import data_dir


def resolve_path(path: str | Path | None, default: str) -> Path:
    """`path` if given, else `default` relative to the benchmark data folder."""
    return Path(path).expanduser() if path is not None else data_dir() / default


def _read_text(path: Path) -> str:
    if not path.exists():
        raise InterpError(f"data file not found: {path} (pass path=... or set INTERP_DATA_DIR)")
    if path.is_dir():
        raise InterpError(f"expected a data file but {path} is a folder")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return f.read()
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise InterpError(f"cannot read {path}: {e}") from None


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> list[tuple[int, dict]]:
    """Rows of a JSONL (or .jsonl.gz) file as (line number, object); blank lines are skipped.

    Every row must be a JSON object holding the `required` fields (dotted paths, e.g. "answers_objects.0.spans").
    """
    path = Path(path)
    rows: list[tuple[int, dict]] = []
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InterpError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno}); "
                              "fix or remove the line") from None
        if not isinstance(row, dict):
            raise InterpError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        for name in required:
            get_field(row, name, path, lineno)
        rows.append((lineno, row))
    if not rows:
        raise InterpError(f"data file is empty: {path}")
    return rows


def read_json(path: str | Path) -> Any:
    """A whole JSON document (e.g. the original HotpotQA list)."""
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise InterpError(f"data file is empty: {path}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InterpError(f"{path}:{e.lineno}: malformed JSON ({e.msg} at column {e.colno})") from None


def get_field(row: Any, name: str, path: str | Path, where: int | str, types: type | tuple = ()) -> Any:
    """`row[a][b]...` for a dotted `name` (integer parts index lists), or an InterpError naming file and line."""
    cur = row
    for key in name.split("."):
        if isinstance(cur, list) and key.isdigit() and int(key) < len(cur):
            cur = cur[int(key)]
        elif isinstance(cur, dict) and key in cur:
            cur = cur[key]
        else:
            raise InterpError(f"{location(path, where)}: missing field {name!r}; is this the right file for this task?")
    if types and not isinstance(cur, types):
        raise InterpError(f"{location(path, where)}: field {name!r} should be {_type_names(types)}, "
                          f"got {type(cur).__name__}")
    return cur


def location(path: str | Path, where: int | str) -> str:
    """"file:line" for a line number, "file (item 3)" otherwise."""
    return f"{path}:{where}" if isinstance(where, int) else f"{path} ({where})"


def _type_names(types: type | tuple) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in types)
