"""Experiment configuration: one validated dataclass, loadable from YAML/JSON, hashed to guard resumed runs."""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Union, get_args, get_origin, get_type_hints

from ..errors import InterpError

# Fields added for reasoning models; at these values they are left out of the hash, so older runs still resume.
THINKING_DEFAULTS = {"thinking": "auto", "thinking_delimiters": None, "think": None, "think_budget": None,
                     "phase_scope": "answer"}
ADDED_DEFAULTS = {"constraint_vocab": "toolkit"}  # later fields, likewise left out of the hash at their default
CONSTRAINT_VOCABS = ("toolkit", "ifeval")


@dataclass
class SustainConfig:
    """Everything that defines a SustainScore run (and so its record keys)."""

    model: str = "smollm2-135m"
    label: str = ""
    task: str = "smoke_arith"
    task_kwargs: dict = field(default_factory=dict)
    n_items: int = 16
    offset: int = 0
    max_new_tokens: int | None = None
    temperature: float = 0.0
    seeds: list[int] = field(default_factory=lambda: [0])
    batch_size: int = 8
    types: list[str] | None = None
    soft: bool = False
    extractor: str = "self"
    per_type: int = 1
    k_values: list[int] = field(default_factory=lambda: [2, 3])
    position: str = "after"
    controls: list[str] = field(default_factory=lambda: ["neutral", "paraphrase", "rerun"])
    capture_cas: bool = True
    dtype: str = "auto"
    device: str = "auto"
    backend: str = "local"
    backend_model: str = ""
    backend_concurrency: int = 8
    backend_api_key_env: str = "OPENAI_API_KEY"
    # reasoning models (interp.models.thinking); the defaults leave a model without thinking traces untouched
    thinking: str = "auto"  # auto (detect <think> traces) | none | think | gpt-oss
    thinking_delimiters: list[str] | None = None  # [start, end] or [start, end, answer_start]; overrides `thinking`
    think: bool | None = None  # chat-template thinking switch (enable_thinking); None = the template's default
    think_budget: int | None = None  # cap the trace at N tokens, then force the end delimiter
    phase_scope: str = "answer"  # what scoring, constraint proposal and checks read: answer | output
    # toolkit: the hard types of interp.constraints.hard; ifeval: IFEval instructions (type `ifeval`), so a run is
    # comparable with IFEval-style results
    constraint_vocab: str = "toolkit"

    def __post_init__(self):
        if self.constraint_vocab == "ifeval" and self.types is None:
            self.types = ["ifeval"]
        self.validate()

    def validate(self) -> None:
        """Check every field's type and range, the task name and its kwargs; one InterpError for the first bad one.

        Runs on construction, so a bad config is refused before anything is written.
        """
        hints = get_type_hints(type(self))
        for f in fields(self):
            v = getattr(self, f.name)
            if not _is(v, hints[f.name]):
                raise InterpError(f"config field {f.name!r} must be {_describe(hints[f.name])}, got {v!r}")
        from ..constraints import CONSTRAINT_TYPES
        from ..constraints.insert import POSITIONS

        checks = [
            ("model", bool(self.model.strip()), "a non-empty model name"),
            ("n_items", self.n_items >= 1, "at least 1"),
            ("offset", self.offset >= 0, ">= 0"),
            ("max_new_tokens", self.max_new_tokens is None or self.max_new_tokens >= 1, "at least 1 (or null)"),
            ("temperature", math.isfinite(self.temperature) and self.temperature >= 0, "a finite number >= 0"),
            ("seeds", bool(self.seeds) and min(self.seeds) >= 0 and len(set(self.seeds)) == len(self.seeds),
             "a non-empty list of distinct integers >= 0"),
            ("batch_size", self.batch_size >= 0, ">= 0 (0 = as large as memory allows)"),
            ("per_type", self.per_type >= 1, "at least 1"),
            ("k_values", all(k >= 1 for k in self.k_values), "a list of integers >= 1"),
            ("position", self.position in POSITIONS, f"one of {', '.join(POSITIONS)}"),
            ("controls", set(self.controls) <= set(CONTROLS), f"a list drawn from {', '.join(CONTROLS)}"),
            ("types", self.types is None or set(self.types) <= set(CONSTRAINT_TYPES),
             f"null or a list drawn from {', '.join(sorted(CONSTRAINT_TYPES))}"),
            ("dtype", self.dtype in DTYPES, f"one of {', '.join(DTYPES)}"),
            ("backend", self.backend in ("local", "scripted") or self.backend.startswith(("http://", "https://")),
             "'local', an http(s):// URL, or 'scripted' (a backend_client passed to SustainRun)"),
            ("backend_concurrency", self.backend_concurrency >= 1, "at least 1"),
            ("constraint_vocab", self.constraint_vocab in CONSTRAINT_VOCABS
             and (self.constraint_vocab == "toolkit" or self.types == ["ifeval"]),
             f"one of {', '.join(CONSTRAINT_VOCABS)} (ifeval draws only type 'ifeval': leave `types` unset)"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise InterpError(f"config field {name!r} must be {what}, got {getattr(self, name)!r}")
        check_task(self.task, self.task_kwargs)

    @property
    def model_label(self) -> str:
        return self.label or self.model

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of_run(cls, run_dir) -> "SustainConfig":
        """The SustainConfig of a run directory (a path or `RunDir`), validated, its task found again by the
        recorded `task_ref` (a task of the researcher's own module is imported first): what every command uses."""
        from ..registry import resolve_ref
        from ..rundir import RunDir
        from ..tasks import TASKS

        d = (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)).read_config()
        ref, name = d.get("task_ref"), d["config"].get("task")
        if ref and isinstance(name, str) and name not in TASKS:
            resolve_ref(ref)
        return cls.from_dict(d["config"])

    def load_model(self):
        """The local hooked model this config names (dtype and device applied)."""
        from ..models import load_model

        return load_model(self.model, dtype=self.dtype, device=self.device)

    def hash(self) -> str:
        d = self.to_dict()
        d.pop("batch_size")
        d.pop("device")
        d.pop("backend_concurrency")
        d.pop("backend_api_key_env")
        for k, v in {**THINKING_DEFAULTS, **ADDED_DEFAULTS}.items():
            if d[k] == v:
                d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict) -> "SustainConfig":
        if not isinstance(d, dict):
            raise InterpError(f"a config must be a mapping of fields, got {type(d).__name__} {d!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InterpError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


CONTROLS = ("neutral", "paraphrase", "rerun")
DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")


def _is(v, hint) -> bool:
    """Whether `v` (as parsed from YAML/JSON) fits the annotation; bools are not numbers, ints are floats."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return any(_is(v, a) for a in args)
    if origin is list:
        return isinstance(v, list) and all(_is(x, args[0]) for x in v)
    if origin is dict or hint is dict:
        return isinstance(v, dict) and all(isinstance(k, str) for k in v)
    if hint is type(None):
        return v is None
    if hint is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if hint is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, hint)


def _describe(hint) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is list:
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(args[0], _describe(args[0]))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
             type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def check_task(name: str, kwargs: dict) -> None:
    """The task is registered and accepts these keyword arguments (checked without building it)."""
    from ..tasks import get_task
    from ..tasks.base import TASKS

    if name not in TASKS:
        get_task(name)  # raises the registry's error listing the known tasks
    try:
        inspect.signature(TASKS[name]).bind(**kwargs)
    except TypeError as e:
        raise InterpError(f"task {name!r} does not accept task_kwargs {kwargs!r}: {e}") from None
    except ValueError:  # no introspectable signature: checked when the task is built
        pass


def load_config_file(path: str | Path) -> dict:
    """Read a YAML or JSON config file into a dict, with a clear error for a missing or malformed file."""
    p = Path(path)
    if not p.is_file():
        raise InterpError(f"config file not found: {p}")
    text = p.read_text()
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            d = yaml.safe_load(text) or {}
        else:
            d = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any parse error becomes one line
        raise InterpError(f"cannot parse config {p}: {str(e).splitlines()[0]}") from None
    if not isinstance(d, dict):
        raise InterpError(f"config {p} must hold a mapping of fields (key: value lines), got {type(d).__name__} {d!r}")
    return d
