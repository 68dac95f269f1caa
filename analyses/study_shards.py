"""Run the SustainScore stage of a study config sharded over worker processes, then merge each task's shards.

    python -m analyses.study_shards --config analyses/configs/study_135m.yaml --shards 2 --workers 2

Each (model, task) of the config is split into `--shards` shards (`interp sustain --shard i/n`); `--workers`
processes (one torch thread each) take the shard jobs from one queue, so a short task's worker moves on to the
next task. A task's shards are merged (`interp merge`) into exactly the run directory `analyses.run_all` looks
for, which then reuses it. Resumable: a finished shard resumes to a no-op, a merged task is skipped.
`--ablate` then runs the config's ablation section on each of its tasks in parallel (`interp ablate`, one
process and one thread per task), which `run_all` reuses the same way.
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


def _ablate_cmd(d: Path, opts: dict) -> list[str]:
    cmd = [sys.executable, "-m", "interp.cli", "ablate", str(d)]
    for k, v in opts.items():
        cmd += ["--set", f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"]
    return cmd


def _timed(cmd: list[str], log: Path, timings: Path, what: dict) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.time()
    with open(log, "a") as fh:
        rc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise SystemExit(f"{' '.join(f'{k}={v}' for k, v in what.items())}: `{' '.join(cmd[2:])}` exited with {rc}: {tail[0]} (whole log: {log})")
    wall = time.time() - t0
    with open(timings, "a") as fh:
        fh.write(json.dumps({**what, "wall_s": round(wall, 1), "start": t0}) + "\n")
    return wall


def ablate(ctx: Context, workers: int, only: list[str] | None = None) -> None:
    """The ablation section on each of its tasks' (or `only` these tasks') merged run directories, `workers`
    processes at a time."""
    opts = ctx.section("ablation")
    tasks = [t for t in opts.pop("tasks", None) or ctx.tasks() if not only or t in only]
    timings = ctx.runs_root / "study_shards.jsonl"
    jobs = [j for j in _jobs(ctx, 1) if j["task"] in tasks]

    def one(job: dict) -> None:
        wall = _timed(_ablate_cmd(job["final"], opts), job["final"].with_suffix(".ablate.log"), timings,
                      {"task": job["task"], "stage": "ablate"})
        print(f"{job['task']} ablations: {wall:.0f} s", flush=True)

    with ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(one, j) for j in jobs]:
            f.result()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m analyses.study_shards", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--ablate", action="store_true", help="then run the ablation section per task in parallel")
    p.add_argument("--ablate-only", nargs="+", metavar="TASK", help="only ablate these (merged) tasks, nothing else")
    a = p.parse_args(argv)
    ctx = Context.load(a.config)
    if a.ablate_only:
        ablate(ctx, a.workers, a.ablate_only)
        return
    jobs = _jobs(ctx, a.shards)
    timings = ctx.runs_root / "study_shards.jsonl"
    ctx.runs_root.mkdir(parents=True, exist_ok=True)

    def one(job: dict, i: int) -> None:
        job["final"].parent.mkdir(parents=True, exist_ok=True)
        cfg_file = job["final"].parent / f"{job['task']}-{job['final'].name.rsplit('-', 1)[1]}.config.json"
        cfg_file.write_text(json.dumps(job["config"], indent=1))
        cmd = [sys.executable, "-m", "interp.cli", "sustain", "--config", str(cfg_file), "--shard", f"{i}/{a.shards}",
               "--out", str(job["shards"][i])]
        wall = _timed(cmd, job["shards"][i].with_suffix(".log"), timings, {"task": job["task"], "shard": f"{i}/{a.shards}"})
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
    if a.ablate:
        ablate(ctx, a.workers)


if __name__ == "__main__":
    main()
