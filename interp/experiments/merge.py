"""Merge sharded run directories (`interp sustain --shard i/n`) into one run, refusing mismatched configs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

from ..errors import InterpError
from ..store import ResultStore
from .sustain import STAGES


def merge_runs(shards: Sequence[str | Path], out: str | Path, report: bool = True) -> Path:
    """Union the shards' records (deduplicated by key) and CAS files into `out`, then write the report.

    Shards must share one config hash; the same key with different content in two shards is an error.
    """
    shards = [Path(s) for s in shards]
    cfgs = []
    for s in shards:
        p = s / "config.json"
        if not p.is_file():
            raise InterpError(f"{s} is not a run directory (no config.json)")
        cfgs.append(json.loads(p.read_text()))
    hashes = {c["config_hash"] for c in cfgs}
    if len(hashes) != 1:
        raise InterpError(f"refusing to merge runs with different configs (hashes {sorted(hashes)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").exists() and json.loads((out / "config.json").read_text())["config_hash"] not in hashes:
        raise InterpError(f"{out} already holds a run with a different config")
    (out / "config.json").write_text(json.dumps(cfgs[0], indent=2))
    for stage in STAGES:
        merged: dict[str, dict] = {}
        for s in shards:
            f = s / f"{stage}.jsonl"
            if not f.exists():
                continue
            for r in ResultStore(f).records():
                if r["key"] in merged and merged[r["key"]] != r:
                    raise InterpError(f"record {r['key']} differs between shards ({stage}); shards overlap inconsistently")
                merged[r["key"]] = r
        store = ResultStore(out / f"{stage}.jsonl")
        for k in sorted(merged):
            store.append(merged[k])
    for s in shards:
        for sub in ("cas", "cas_tf"):
            if (s / sub).is_dir():
                (out / sub).mkdir(exist_ok=True)
                for f in (s / sub).glob("*.npz"):
                    if not (out / sub / f.name).exists():
                        shutil.copy2(f, out / sub / f.name)
    if report:
        from .report import write_report

        write_report(out)
    return out
