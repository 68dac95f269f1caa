"""`launch`: every model stage of a study, sharded by item, as Ray tasks; shards merged as their stage finishes.

By default a local Ray is started in this process (``num_cpus`` = the machine's cores, one shard per CPU);
``address`` (or ``RAY_ADDRESS``) joins a running cluster instead, e.g. ``ray://head:10001`` or ``auto``. Each
shard is one Ray task declaring its resources (``num_gpus`` per shard on a cluster with GPUs, ``num_cpus``
otherwise) and retried ``max_retries`` times when its worker dies; a retried shard resumes from its run
directory, whose lock keeps a second writer out. A stage's shards are merged (`interp merge`, which checks
that they are disjoint, complete and of one config) into the (model, task)'s run directory, where the next
stage and `analyses.run_all` find them. A shard that raises stops the launch: nothing new is started, the
running shards finish, and one line names the shard, its log's last line and the log's path.

Shard directories: ``<run dir>.shards/<stage>-<i>of<n>/`` with ``<...>.log`` beside them; what each shard
took goes to ``<runs>/launch.jsonl``; a run directory's merged stages are listed in its ``launch.json``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import InterpError
from ..rundir import RunDir
from ..shards import Shard
from .stages import ShardJob, ShardResult, last_log_line, run_shard
from .study import DEPENDS, Pipeline, Stage, Study

LAUNCH_FILE = "launch.json"


@dataclass
class LaunchReport:
    """What a launch did: shards run, skipped stages, per-shard timings and the Ray startup time."""

    shards: int
    ran: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    merges: list[dict] = field(default_factory=list)
    ray_start_s: float = 0.0
    wall_s: float = 0.0

    def overhead(self) -> dict:
        """Launcher time per shard beyond the work inside the task: dispatch (submit -> start, for shards that
        did not wait for a free slot) and return (end -> result seen by the driver), plus merge time."""
        first = [r for r in self.ran if not r["queued"]]
        d = [r["started"] - r["submitted"] for r in first]
        back = [r["returned"] - (r["started"] + r["wall_s"]) for r in self.ran]
        mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
        return {"n_shards": len(self.ran), "dispatch_s": mean(d), "return_s": mean(back),
                "merge_s_per_stage": mean([m["wall_s"] for m in self.merges]), "ray_start_s": self.ray_start_s}


def merged_stages(run_dir: Path) -> dict:
    p = Path(run_dir) / LAUNCH_FILE
    return json.loads(p.read_text()) if p.is_file() else {}


def _record_merge(run_dir: Path, stage: Stage, n: int) -> None:
    from ..shards import settings_hash

    d = merged_stages(run_dir) | {stage.kind: {"count": n, "settings": settings_hash(stage.settings)}}
    tmp = Path(run_dir) / f"{LAUNCH_FILE}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(d, indent=1))
    os.replace(tmp, Path(run_dir) / LAUNCH_FILE)


def _is_merged(p: Pipeline, stage: Stage) -> bool:
    from ..shards import settings_hash

    m = merged_stages(p.run_dir).get(stage.kind)
    return m is not None and m["settings"] == settings_hash(stage.settings)


def _jobs(p: Pipeline, stage: Stage, n: int, imports: Sequence[str]) -> list[ShardJob]:
    root = Path(f"{p.run_dir}.shards").resolve()
    return [ShardJob(stage.kind, p.name, str(p.run_dir.resolve()), str(root / f"{stage.kind}-{i}of{n}"), Shard(i, n),
                     p.config.to_dict(), stage.settings, tuple(imports)) for i in range(n)]


def _merge(p: Pipeline, stage: Stage, jobs: list[ShardJob]) -> None:
    from ..experiments.merge import merge_runs

    merge_runs([j.out for j in jobs], p.run_dir, report=stage.kind == "sustain")
    _record_merge(p.run_dir, stage, len(jobs))


def _connect(address: str | None, num_cpus: int | None, log: Callable[[str], None]) -> float:
    import ray

    if ray.is_initialized():
        return 0.0
    t0 = time.perf_counter()
    address = address or os.environ.get("RAY_ADDRESS")
    env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, runtime_env=env, log_to_driver=False)
    took = time.perf_counter() - t0
    res = ray.cluster_resources()
    log(f"ray: {'cluster ' + address if address else 'local'} with {res.get('CPU', 0):g} CPUs, "
        f"{res.get('GPU', 0):g} GPUs ({took:.1f} s to start)")
    return took


def launch(config: str | Path | Study, shards: int | None = None, address: str | None = None,
           num_cpus: int | None = None, cpus_per_shard: float = 1, gpus_per_shard: float | None = None,
           max_retries: int = 3, stages: Sequence[str] | None = None, imports: Sequence[str] = (),
           progress: bool = True, log: Callable[[str], None] = print) -> LaunchReport:
    """Run (or resume) every model stage of a study config on Ray; returns the LaunchReport.

    `shards` per stage (default: as many as the cluster runs at once); `gpus_per_shard` defaults to 1 on a
    cluster with GPUs and 0 otherwise; `stages` restricts the stages (`interp.shards.SHARD_STAGES` names).
    Raises InterpError with one line naming the first failed shard, its last log line and its log path.
    """
    import ray
    from tqdm.auto import tqdm

    study = config if isinstance(config, Study) else Study.load(config)
    pipes = study.pipelines(tuple(stages) if stages else None)
    for name, v, lo in (("shards", shards, 1), ("max_retries", max_retries, 0), ("num_cpus", num_cpus, 1)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < lo):
            raise InterpError(f"{name} must be an integer >= {lo}, got {v!r}")
    if cpus_per_shard <= 0:
        raise InterpError(f"cpus_per_shard must be > 0, got {cpus_per_shard!r}")
    t_start = time.perf_counter()
    ray_start = _connect(address, num_cpus, log)
    res = ray.cluster_resources()
    gpus = (1.0 if res.get("GPU", 0) >= 1 else 0.0) if gpus_per_shard is None else float(gpus_per_shard)
    if gpus > res.get("GPU", 0):
        raise InterpError(f"gpus_per_shard={gpus:g} but the cluster has {res.get('GPU', 0):g} GPUs")
    slots = int(res.get("GPU", 0) // gpus) if gpus else int(res.get("CPU", 1) // cpus_per_shard)
    n = shards or max(1, slots)
    threads = max(1, int(cpus_per_shard))
    # a GPU task's worker exits after each shard (Ray's default for GPU functions): no stale CUDA context
    remote: Any = (ray.remote(num_gpus=gpus, num_cpus=cpus_per_shard, max_retries=max_retries)(run_shard) if gpus
              else ray.remote(num_cpus=cpus_per_shard, max_retries=max_retries)(run_shard))
    report = LaunchReport(shards=n, ray_start_s=ray_start)
    timings = study.runs_root / "launch.jsonl"
    timings.parent.mkdir(parents=True, exist_ok=True)

    state: dict[tuple[int, str], str] = {}  # (pipeline index, stage kind) -> waiting | running | merged | failed
    for i, p in enumerate(pipes):
        for s in p.stages:
            if _is_merged(p, s):
                state[(i, s.kind)] = "merged"
                report.skipped.append(f"{p.name} {s.kind}")
            else:
                state[(i, s.kind)] = "waiting"
    remaining = {k: n for k, v in state.items() if v == "waiting"}
    inflight: dict = {}
    failures: list[str] = []
    to_merge: list[tuple[int, Stage]] = []
    bar = tqdm(total=n * len(remaining), desc="shards", unit="shard", disable=not progress)

    def ready(i: int, s: Stage) -> bool:
        deps = [d for d in DEPENDS[s.kind] if (i, d) in state]
        return all(state[(i, d)] == "merged" for d in deps)

    def submit() -> None:
        busy = sum(1 for _ in inflight)
        for i, p in enumerate(pipes):
            for s in p.stages:
                if state[(i, s.kind)] == "waiting" and ready(i, s):
                    if s.kind != "sustain" and not RunDir(p.run_dir).records("constrained"):
                        state[(i, s.kind)] = "merged"  # SustainScore undefined (no baseline success): nothing to do
                        report.skipped.append(f"{p.name} {s.kind} (no constrained records)")
                        bar.total -= n
                        bar.refresh()
                        continue
                    state[(i, s.kind)] = "running"
                    for job in _jobs(p, s, n, imports):
                        ref = remote.remote(job, threads)
                        inflight[ref] = (i, s, job, time.time(), busy >= slots)
                        busy += 1

    submit()
    while inflight:
        (ref,), _ = ray.wait(list(inflight), num_returns=1)
        i, s, job, submitted, queued = inflight.pop(ref)
        try:
            r: ShardResult = ray.get(ref)
        except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError, ray.exceptions.TaskCancelledError,
                ray.exceptions.RayError) as e:
            line = last_log_line(job.log) or f"{type(e).__name__}"
            why = "" if isinstance(e, ray.exceptions.RayTaskError) else f" ({type(e).__name__} after {max_retries} retries)"
            failures.append(f"{job.describe()} failed{why}: {line} (log: {job.log})")
            state[(i, s.kind)] = "failed"
            bar.update(1)
            continue
        row = {"task": job.name, "stage": job.stage, "shard": str(job.shard), **asdict(r),
               "submitted": submitted, "returned": time.time(), "queued": queued}
        report.ran.append(row)
        with open(timings, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        bar.update(1)
        if progress:
            bar.write(f"{job.describe()}: {r.wall_s:.0f} s")
        remaining[(i, s.kind)] -= 1
        if remaining[(i, s.kind)] == 0 and state[(i, s.kind)] == "running":
            to_merge.append((i, s))
        # a merge writes the run directory, so it waits until no shard of that run is reading it
        for i, s in [m for m in to_merge if not any(v[0] == m[0] and v[1].kind != "sustain" for v in inflight.values())]:
            to_merge.remove((i, s))
            t0 = time.perf_counter()
            try:
                _merge(pipes[i], s, _jobs(pipes[i], s, n, imports))
            except InterpError as e:
                failures.append(f"{pipes[i].name} {s.kind}: merging its shards failed: {e}")
                state[(i, s.kind)] = "failed"
                continue
            report.merges.append({"task": pipes[i].name, "stage": s.kind, "wall_s": time.perf_counter() - t0})
            state[(i, s.kind)] = "merged"
        if not failures:
            submit()
    bar.close()
    report.wall_s = time.perf_counter() - t_start
    if failures:
        more = f" (+{len(failures) - 1} more failed; see their logs)" if len(failures) > 1 else ""
        raise InterpError(f"launch stopped: {failures[0]}{more}")
    return report
