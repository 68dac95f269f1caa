"""One run directory: its layout, config check, stores, CAS files and the lock that makes one process its writer.

Layout (written by `interp sustain`, extended by `interp ablate` and `interp cas`):

    config.json        {"config": SustainConfig, "config_hash": ..., "format": 2}
    .lock              flock'd by the one writing process (holds its PID while it writes)
    baseline.jsonl     one record per (item, seed) without constraint
    constraints.jsonl  one record per baseline-solved item: every candidate, accepted or rejected
    constrained.jsonl  one record per (item, condition, seed): constraint sets, K-sets and controls
    cas/<key>.npz      CAS arrays of each generation (linked by `cas_file`)
    ablations.jsonl / ablation_sweep.jsonl, cas_tf/, report.md / report.json / figures/

Format 2 record keys cover the prompt token ids; format 1 (config.json without "format") directories stay
readable by every reader but are not resumed, since their keys would reuse answers to a changed prompt.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .errors import InterpError
from .store import ResultStore, Scan, scan_records

FORMAT = 2
STAGES = ("baseline", "constraints", "constrained")
LOCK_NAME = ".lock"
# Fields the SustainScore tables use; in `load_run` a line without them is counted as unreadable, not half-used.
REPORT_FIELDS = {
    "baseline": ("key", "item_id", "success", "prompt_ids"),
    "constraints": ("key",),
    "constrained": ("key", "item_id", "condition", "condition_kind", "ctype", "hardness", "k", "success",
                    "lenient_success", "finish_reason", "prompt_ids", "baseline_key", "constraints", "output_text",
                    "constraint_met", "domain", "error_type"),
}

# Locks this process holds: resolved path -> [fd, depth]. Nested `lock()` calls in one process are re-entrant.
_HELD: dict[str, list] = {}


def _stderr(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


class RunDir:
    """The one owner of a run directory's layout; readers never modify it, writers hold `lock()`."""

    def __init__(self, path: str | os.PathLike, warn: Callable[[str], None] = _stderr):
        self.path = Path(path)
        self.warn = warn
        self.skipped: dict[str, list[int]] = {}
        self._stores: dict[str, ResultStore] = {}

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---- layout ----------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def stage_path(self, stage: str) -> Path:
        return self.path / f"{stage}.jsonl"

    def has(self, stage: str) -> bool:
        return self.stage_path(stage).is_file()

    @property
    def cas_dirs(self) -> tuple[Path, Path]:
        return self.path / "cas", self.path / "cas_tf"

    # ---- the lock --------------------------------------------------------------------------------
    def _key(self) -> str:
        return str(self.path.resolve())

    @property
    def locked(self) -> bool:
        """Whether this process holds the directory's lock."""
        return self._key() in _HELD

    @contextmanager
    def lock(self, command: str = "interp", shared: bool = False) -> Iterator["RunDir"]:
        """Hold the directory's flock (exclusive: the writer; shared: a reader that must not see a live writer).

        Another process holding it makes this raise one InterpError naming that process's PID. Stores are
        re-read on each fresh acquisition, so what a previous holder wrote is known before writing.
        """
        key = self._key()
        if key in _HELD:
            _HELD[key][1] += 1
            try:
                yield self
            finally:
                _HELD[key][1] -= 1
            return
        lock_file = self.path / LOCK_NAME
        if shared:
            if not lock_file.is_file():  # never written by a locking interp: nothing to wait for, write nothing
                yield self
                return
            fd = os.open(lock_file, os.O_RDONLY)
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            who = f"PID {holder}" if holder else "a process reading it (PID not recorded)"
            raise InterpError(f"{self.path} is in use by another interp process ({who}); one run directory "
                              f"has one writer: wait for it to finish or use another directory") from None
        if not shared:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} ({command})\n".encode(), 0)
        _HELD[key] = [fd, 1]
        self._stores.clear()
        try:
            yield self
        finally:
            del _HELD[key]
            self._stores.clear()
            if not shared:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _require_lock(self) -> None:
        if not self.locked:
            raise InterpError(f"writing to {self.path} without holding its lock (use `with RunDir.lock():`)")

    # ---- config ----------------------------------------------------------------------------------
    def read_config(self) -> dict:
        """config.json as {"config", "config_hash", "format"}; one clear error when missing or malformed."""
        p = self.config_path
        if not p.is_file():
            raise InterpError(f"{self.path} is not a run directory (no config.json)")
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InterpError(f"{p} is not valid JSON ({e}); it was not written by interp or was damaged") from None
        if not isinstance(d, dict) or not isinstance(d.get("config"), dict) or not isinstance(d.get("config_hash"), str):
            raise InterpError(f"{p} lacks a config and config_hash; it was not written by interp or was damaged")
        fmt = d.setdefault("format", 1)
        if not isinstance(fmt, int) or fmt > FORMAT:
            raise InterpError(f"{p} has format {fmt!r}; this interp reads formats 1..{FORMAT}: upgrade interp")
        return d

    def claim(self, cfg, task_ref: str | None = None) -> None:
        """Write config.json for a new run, or check that the stored run is `cfg`'s and can be resumed.

        `task_ref` (`module:qualname` of the task) is recorded so another process can find a plugin task again.
        """
        self._require_lock()
        mine = {"config": cfg.to_dict(), "config_hash": cfg.hash(), "format": FORMAT}
        if task_ref:
            mine["task_ref"] = task_ref
        if not self.config_path.exists():
            self.write_config(mine)
            return
        old = self.read_config()
        if old["config_hash"] != mine["config_hash"]:
            raise InterpError(f"{self.path} holds a run with a different config (hash {old['config_hash']} vs "
                              f"{mine['config_hash']}); use a new --out folder")
        if old["format"] < FORMAT:
            if any(self.stage_path(s).is_file() and self.stage_path(s).stat().st_size for s in STAGES):
                raise InterpError(f"{self.path} was written by an older interp (run-directory format {old['format']}) "
                                  "whose record keys do not cover the prompt, so resuming it could reuse answers to "
                                  "a prompt that has since changed; its records stay readable (`interp report`, "
                                  "`cas`, `merge`, `ablate`): to continue, start a new --out folder")
            self.write_config(mine)

    def write_config(self, d: dict) -> None:
        self._require_lock()
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_name(f"config.json.tmp{os.getpid()}")
        tmp.write_text(json.dumps(d, indent=2))
        os.replace(tmp, self.config_path)

    # ---- records ---------------------------------------------------------------------------------
    def store(self, name: str) -> ResultStore:
        """The writable store of a stage (or of `ablations`, ...); appends require the lock."""
        self._require_lock()
        if name not in self._stores:
            from .records import RECORD_TYPES

            self._stores[name] = ResultStore(self.stage_path(name), guard=self._require_lock,
                                             schema=RECORD_TYPES.get(name))
        return self._stores[name]

    def typed(self, name: str) -> list:
        """A stage's records as `interp.records` dataclasses (`ConstrainedRecord`, ...); read-only."""
        from .records import record_type

        cls = record_type(name)
        return [cls.from_dict(r) for r in self.records(name)]

    def scan(self, name: str, required: Sequence[str] = ("key",)) -> Scan:
        """Read a stage without modifying it; lines that are not records with the `required` fields are counted
        in `skipped` and warned about (once per change)."""
        scan = scan_records(self.stage_path(name), required)
        if scan.bad_lines and self.skipped.get(name) != scan.bad_lines:
            self.warn(f"{self.path}: {scan.problem(f'{name}.jsonl')}")
        if scan.bad_lines:
            self.skipped[name] = scan.bad_lines
        else:
            self.skipped.pop(name, None)
        return scan

    def records(self, name: str, required: Sequence[str] = ("key",)) -> list[dict]:
        return self.scan(name, required).records

    def frame(self, name: str, required: Sequence[str] = ("key",)):
        import pandas as pd

        return pd.DataFrame(self.records(name, required))

    def load_run(self) -> dict:
        """The SustainScore stages as DataFrames: baseline, constraints, constrained."""
        import pandas as pd

        if not self.has("baseline"):
            raise InterpError(f"{self.path} is not a SustainScore run directory (no baseline.jsonl)")
        runs = {s: self.frame(s, REPORT_FIELDS[s]) if self.has(s) else pd.DataFrame() for s in STAGES}
        if runs["baseline"].empty:
            raise InterpError(f"{self.path} has no readable baseline records")
        return runs
