"""`interp launch` (Ray) vs the home-made process pool it replaced (`analyses/study_shards.py`), same work.

    .venv/bin/python benchmarks/bench_launch.py [--n-items 6] [--shards 2] [--old-commit 5544165]

A reduced copy of the embedded study (analyses/configs/study_135m.yaml: every section, fewer items, smaller
ablation) runs its SustainScore and ablation stages twice into fresh run folders: once through the old pool
(read from git at `--old-commit`: 2 worker subprocesses for the sustain shards, then one `interp ablate`
process per task) and once through `interp launch --stages sustain ablation_sweep ablation` on a local Ray with
the same number of CPUs. Both must end with the same records (checked). Reported: wall time of each, Ray's
start, and the launcher's own overhead per shard (dispatch: submit -> the task starts, for shards that found a
free slot; return: the task ends -> the driver has the result; merge per stage). The load average before and
after goes into the result: the machine is shared. Writes results/launch.json.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def reduced_study(out: Path, n_items: int) -> Path:
    cfg = yaml.safe_load((ROOT / "analyses/configs/study_135m.yaml").read_text())
    cfg["runs"], cfg["out"] = str(out / "runs"), str(out / "fig")
    for t, over in cfg["tasks"].items():
        cfg["tasks"][t] = {**(over or {}), "n_items": n_items}
    cfg["ablation"].update(max_items=2, sweep_items=1, sweep_top=2)
    p = out / "study.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def old_pool(commit: str):
    """analyses/study_shards.py as of `commit`, imported as analyses._study_shards_old (it uses analyses.common)."""
    src = subprocess.run(["git", "show", f"{commit}:analyses/study_shards.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "_study_shards_old.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("analyses._study_shards_old", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def records(runs: Path) -> dict:
    from interp.store import ResultStore

    out = {}
    for d in sorted(p for p in runs.glob("*/*") if p.is_dir() and not p.name.endswith(".shards")
                    and "shard" not in p.name):
        for s in ("baseline", "constrained", "ablations", "ablation_sweep"):
            out[f"{d.name}/{s}"] = {r["key"]: r for r in ResultStore(d / f"{s}.jsonl").records()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-items", type=int, default=6)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--old-commit", default="5544165")
    a = p.parse_args()
    os.environ.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    work = Path(tempfile.mkdtemp(prefix="bench_launch_"))
    load0 = os.getloadavg()
    res: dict = {"n_items_per_task": a.n_items, "shards": a.shards, "old_commit": a.old_commit,
                 "loadavg_before": load0}

    old_dir = work / "old"
    old_dir.mkdir()
    cfg_old = reduced_study(old_dir, a.n_items)
    mod = old_pool(a.old_commit)
    t0 = time.perf_counter()
    mod.main(["--config", str(cfg_old), "--shards", str(a.shards), "--workers", str(a.shards), "--ablate"])
    res["old_pool_wall_s"] = time.perf_counter() - t0
    res["loadavg_mid"] = os.getloadavg()

    from interp.launch import launch

    new_dir = work / "new"
    new_dir.mkdir()
    cfg_new = reduced_study(new_dir, a.n_items)
    t0 = time.perf_counter()
    rep = launch(cfg_new, shards=a.shards, num_cpus=a.shards, stages=["sustain", "ablation_sweep", "ablation"],
                 progress=False)
    res["launch_wall_s"] = time.perf_counter() - t0
    res["launch_overhead"] = rep.overhead()
    res["launch_shards"] = [{k: r[k] for k in ("task", "stage", "shard", "wall_s", "load_s", "queued")}
                            for r in rep.ran]
    res["loadavg_after"] = os.getloadavg()
    old, new = records(old_dir / "runs"), records(new_dir / "runs")
    res["same_records"] = old.keys() == new.keys() and all(old[k].keys() == new[k].keys() for k in old)
    res["n_records"] = {k: len(v) for k, v in new.items()}
    res["ratio_launch_over_old"] = res["launch_wall_s"] / res["old_pool_wall_s"]
    out = ROOT / "benchmarks/results/launch.json"
    out.write_text(json.dumps(res, indent=1, default=float) + "\n")
    print(f"old pool {res['old_pool_wall_s']:.0f} s, interp launch {res['launch_wall_s']:.0f} s "
          f"(ratio {res['ratio_launch_over_old']:.2f}); same records: {res['same_records']}; "
          f"overhead/shard: {json.dumps(res['launch_overhead'])}; load {load0} -> {res['loadavg_after']}")


if __name__ == "__main__":
    main()
