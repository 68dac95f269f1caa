"""Merge sharded run directories (`interp sustain --shard i/n`) into one run, refusing mismatched configs."""
from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

from ..errors import InterpError
from ..rundir import STAGES, RunDir


def merge_runs(shards: Sequence[str | Path], out: str | Path, report: bool = True) -> Path:
    """Union the shards' records (deduplicated by key) and CAS files into `out`, then write the report.

    Shards are only read (a shard still being written is refused); `out` is locked for the merge. Shards must
    share one config hash and run-directory format; the same key with different content in two shards is an error.
    """
    dirs = [RunDir(s) for s in shards]
    dst = RunDir(out)
    with ExitStack() as stack:
        for d in dirs:
            stack.enter_context(d.lock("interp merge", shared=True))
        stack.enter_context(dst.lock("interp merge"))
        cfgs = [d.read_config() for d in dirs]
        keys = {(c["config_hash"], c["format"]) for c in cfgs}
        if len(keys) != 1:
            raise InterpError(f"refusing to merge runs with different configs (hash, format: {sorted(keys)})")
        ((config_hash, fmt),) = keys
        if dst.config_path.exists():
            old = dst.read_config()
            if (old["config_hash"], old["format"]) != (config_hash, fmt):
                raise InterpError(f"{dst.path} already holds a run with a different config")
        dst.write_config(cfgs[0])
        for stage in STAGES:
            merged: dict[str, dict] = {}
            for d in dirs:
                for r in d.records(stage):
                    if r["key"] in merged and merged[r["key"]] != r:
                        raise InterpError(f"record {r['key']} differs between shards ({stage}); shards overlap "
                                          "inconsistently")
                    merged[r["key"]] = r
            store = dst.store(stage)
            for k in sorted(merged):
                store.append(merged[k])
        for d in dirs:
            for src, sub in zip(d.cas_dirs, dst.cas_dirs):
                if src.is_dir():
                    sub.mkdir(exist_ok=True)
                    for f in src.glob("*.npz"):
                        if not (sub / f.name).exists():
                            shutil.copy2(f, sub / f.name)
        if report:
            from .report import write_report

            write_report(dst.path)
    return dst.path
