"""Run the SustainScore stage of a study config sharded over worker processes, then merge each task's shards.

    python -m analyses.study_shards --config analyses/configs/study_135m.yaml --shards 2 --workers 2

Each (model, task) of the config is split into `--shards` shards (`interp sustain --shard i/n`); `--workers`
processes (one torch thread each) take the shard jobs from one queue, so a short task's worker moves on to the
next task. A task's shards are merged (`interp merge`) into exactly the run directory `analyses.run_all` looks
for, which then reuses it. Resumable: a finished shard resumes to a no-op, a merged task is skipped.
Each job's wall time goes to ``<runs>/study_shards.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .common import Context, slug


def _jobs(ctx: Context, n_shards: int) -> list[dict]:
    jobs = []
    for entry in ctx.models():
        for task in ctx.tasks():
            scfg = ctx.sustain_config(entry, task)
            final = ctx.runs_root / slug(scfg.model_label) / f"{task}-{scfg.hash()}"
            jobs.append({"task": task, "label": scfg.model_label, "config": scfg.to_dict(), "final": final,
                         "shards": [Path(f"{final}-shard{i}of{n_shards}") for i in range(n_shards)]})
    return jobs


def _run_shard(cfg_file: Path, shard: int, n: int, out: Path, log: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "interp.cli", "sustain", "--config", str(cfg_file), "--shard", f"{shard}/{n}",
           "--out", str(out)]
    t0 = time.time()
    with open(log, "a") as fh:
        subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=True)
    return time.time() - t0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m analyses.study_shards", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    ctx = Context.load(a.config)
    jobs = _jobs(ctx, a.shards)
    timings = ctx.runs_root / "study_shards.jsonl"
    ctx.runs_root.mkdir(parents=True, exist_ok=True)

    def one(job: dict, i: int) -> None:
        job["final"].parent.mkdir(parents=True, exist_ok=True)
        cfg_file = job["final"].parent / f"{job['task']}-{job['final'].name.rsplit('-', 1)[1]}.config.json"
        cfg_file.write_text(json.dumps(job["config"], indent=1))
        t0 = time.time()
        wall = _run_shard(cfg_file, i, a.shards, job["shards"][i], job["shards"][i].with_suffix(".log"))
        with open(timings, "a") as fh:
            fh.write(json.dumps({"task": job["task"], "shard": f"{i}/{a.shards}", "wall_s": round(wall, 1),
                                 "start": t0}) + "\n")
        print(f"{job['task']} shard {i}/{a.shards}: {wall:.0f} s", flush=True)

    todo = [j for j in jobs if not (j["final"] / "report.md").exists()]
    with ThreadPoolExecutor(a.workers) as pool:
        futures = {(j["task"], i): pool.submit(one, j, i) for j in todo for i in range(a.shards)}
        for j in todo:
            for i in range(a.shards):
                futures[(j["task"], i)].result()
            from interp.experiments.merge import merge_runs

            merge_runs(j["shards"], j["final"])
            print(f"merged {j['task']} into {j['final']}", flush=True)


if __name__ == "__main__":
    main()
