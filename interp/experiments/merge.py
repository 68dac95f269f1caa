"""Merge sharded run directories (any stage's `--shard i/n`) into one run, refusing mismatched or partial sets."""
from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

from ..errors import InterpError
from ..rundir import STAGES, RunDir
from ..shards import check_owned, check_shards

# Stores a shard may hold besides the SustainScore stages: the ablation stages' records.
EXTRA_STORES = ("ablations", "ablation_sweep")


def merge_runs(shards: Sequence[str | Path], out: str | Path, report: bool = True) -> Path:
    """Union the shards' records (deduplicated by key) and CAS files into `out`, then write the report.

    Shards are only read (a shard still being written is refused); `out` is locked for the merge. Shards must
    share one config hash and run-directory format; the same key with different content in two shards is an error.
    Shard directories (with ``shard.json``) must also be one complete, finished set of one stage and settings, and
    every record must be of an item its shard owns (`interp.shards.check_shards`); `out` may be the run the
    shards were computed from (cas_tf / ablation shards merge back into it).
    """
    dirs = [RunDir(s) for s in shards]
    dst = RunDir(out)
    with ExitStack() as stack:
        for d in dirs:
            stack.enter_context(d.lock("interp merge", shared=True))
        stack.enter_context(dst.lock("interp merge"))
        marks = check_shards([d.path for d in dirs])
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
        for stage in (*STAGES, *(s for s in EXTRA_STORES if any(d.has(s) for d in dirs))):
            merged: dict[str, dict] = {}
            for i, d in enumerate(dirs):
                recs = d.records(stage)
                if marks:
                    check_owned(recs, marks[i], f"{d.path}/{stage}.jsonl")
                for r in recs:
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
                    for f in src.rglob("*.npz"):  # cas/<key>.npz; cas_tf/cas/<name>.npz
                        to = sub / f.relative_to(src)
                        if ".tmp" not in f.name and not to.exists():  # not a killed writer's temporary file
                            to.parent.mkdir(parents=True, exist_ok=True)
                            shutil.copy2(f, to)
        if report:
            from .report import write_report

            write_report(dst.path)
    return dst.path
