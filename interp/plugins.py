"""Researcher code on the command line: `--import MODULE`, and `--set key=value` for any config setting.

`import_modules` imports the researcher's modules (their `@register_task` / `@register_constraint`
decorators register on import). Installed packages need no flag: they declare entry points in the
groups below and are loaded the first time a registry looks a name up.

    [project.entry-points."interp.tasks"]
    my_task = "my_pkg.tasks"          # a module that registers on import, or a Task class / factory
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Iterable

from .errors import InterpError

ENTRY_POINT_GROUPS = ("interp.tasks", "interp.constraints", "interp.ops")


def import_modules(names: Iterable[str]) -> list[str]:
    """Import each module name (or `path/to/file.py`); returns the module names. Errors are one line."""
    done = []
    for name in names:
        if name.endswith(".py"):
            path = Path(name).resolve()
            if not path.is_file():
                raise InterpError(f"--import {name}: no such file")
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            name = path.stem
        elif str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))  # like `python -m`: modules next to the user are importable
        try:
            importlib.import_module(name)
        except InterpError:
            raise
        except ImportError as e:
            raise InterpError(f"--import {name}: {e}") from None
        except Exception as e:  # noqa: BLE001 - the researcher's module failed while importing
            raise InterpError(f"--import {name} failed: {type(e).__name__}: {e}") from None
        done.append(name)
    return done


def _field_types(target: Any) -> dict[str, Any]:
    """Settable names and types: the fields of a dataclass, or the annotated keyword parameters of a function
    (its first parameter, the run directory, and unannotated ones such as a loaded model are left out)."""
    hints = typing.get_type_hints(target)
    if dataclasses.is_dataclass(target):
        return {f.name: hints[f.name] for f in dataclasses.fields(target)}
    params = list(inspect.signature(target).parameters.values())[1:]
    return {p.name: hints[p.name] for p in params if p.name in hints and p.default is not inspect.Parameter.empty}


def _coerce(key: str, text: str, typ: Any) -> Any:
    """Parse `text` as JSON/YAML-ish for type `typ` (int, float, bool, str, lists/tuples, dicts, Optionals)."""
    origin = typing.get_origin(typ)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null"):
            return None
        return _coerce(key, text, args[0]) if len(args) == 1 else _parse_json(key, text)
    if typ is str:
        return text
    if typ is bool:
        low = text.lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off"):
            return False
        raise InterpError(f"--set {key}={text}: expected true or false")
    if typ in (int, float):
        try:
            return typ(text)
        except ValueError:
            raise InterpError(f"--set {key}={text}: expected {typ.__name__}") from None
    if origin in (list, tuple):
        inner = args[0] if args else str
        raw = _parse_json(key, text) if text.startswith("[") else [x for x in text.split(",") if x]
        vals = [_coerce(key, x if isinstance(x, str) else json.dumps(x), inner) for x in raw]
        return tuple(vals) if origin is tuple else vals
    return _parse_json(key, text)


def _parse_json(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise InterpError(f"--set {key}={text}: not valid JSON") from None


def parse_sets(pairs: Iterable[str], target: Any) -> dict[str, Any]:
    """`["key=value", ...]` -> {key: typed value} for the fields of a dataclass (or keyword parameters of a
    function) `target`; unknown keys are an error.

    Lists take `a,b,c` or JSON `[...]`; dicts take JSON; `none` clears an optional setting.
    """
    fields = _field_types(target)
    what = getattr(target, "__name__", str(target))
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise InterpError(f"--set expects key=value, got {pair!r}")
        if key not in fields:
            raise InterpError(f"--set {key}: unknown setting of {what}; known: {', '.join(sorted(fields))}")
        out[key] = _coerce(key, text.strip(), fields[key])
    return out
