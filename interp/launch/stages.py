"""One shard of one model stage, as a plain function: what a launcher worker (a Ray task) runs.

`run_shard(job)` writes the shard's run directory ``job.out`` (resumable: a retried or re-run shard redoes no
work and duplicates no record) and appends everything it prints to ``job.log``; an error's last log line says
what went wrong. Loaded models are kept per worker process, so a worker that runs several shards loads once.
"""
from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InterpError
from ..shards import Shard

_MODELS: dict[tuple, object] = {}


@dataclass(frozen=True)
class ShardJob:
    """Shard `shard` of stage `stage` of one (model, task): read `run_dir`, write `out`."""

    stage: str
    name: str  # "<label>/<task>"
    run_dir: str
    out: str
    shard: Shard
    config: dict  # the run's SustainConfig as a dict
    settings: dict = field(default_factory=dict)  # the stage's own settings (AblationConfig, CAS options)
    imports: tuple[str, ...] = ()

    @property
    def log(self) -> str:
        return self.out + ".log"

    def describe(self) -> str:
        return f"{self.name} {self.stage} shard {self.shard}"


@dataclass
class ShardResult:
    """What a finished shard reports back: where and how long (worker clock), and the model load time."""

    job: str
    pid: int
    host: str
    started: float
    wall_s: float
    load_s: float


def _model(cfg):
    """The local model of a SustainConfig, loaded once per worker process."""
    key = (cfg.model, cfg.dtype, cfg.device)
    if key not in _MODELS:
        _MODELS[key] = cfg.load_model()
    return _MODELS[key]


def _sustain(job: ShardJob, cfg):
    from ..experiments.sustain import SustainRun

    model = _model(cfg) if cfg.backend == "local" else None
    SustainRun(cfg, job.out, model=model, shard=job.shard, progress=False).run(report=False)


def _cas_tf(job: ShardJob, cfg):
    from ..attention.analysis import teacher_forced_shard

    teacher_forced_shard(job.run_dir, job.out, job.shard, model=_model(cfg), **job.settings)


def _ablation(job: ShardJob, cfg):
    from ..interventions.experiments import AblationConfig, AblationRun

    acfg = AblationConfig(**job.settings)
    only = "sweep" if job.stage == "ablation_sweep" else "arms"
    AblationRun(job.run_dir, acfg, model=_model(cfg), shard=job.shard, out=job.out, only=only).run()


RUNNERS = {"sustain": _sustain, "cas_tf": _cas_tf, "ablation_sweep": _ablation, "ablation": _ablation}


def run_shard(job: ShardJob, threads: int = 1) -> ShardResult:
    """Run one shard with `threads` torch threads, its output appended to ``job.log``; raises on failure after
    writing ``error: <message>`` as the log's last line."""
    from ..experiments.config import SustainConfig
    from ..plugins import import_modules

    started = time.time()
    Path(job.log).parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a", buffering=1) as fh, redirect_stdout(fh), redirect_stderr(fh):
        print(f"== {job.describe()} pid {os.getpid()} on {socket.gethostname()} at {time.ctime(started)}")
        try:
            import torch

            torch.set_num_threads(max(1, threads))
            import_modules(list(job.imports))
            cfg = SustainConfig.from_dict(job.config)
            loaded = set(_MODELS)
            t0 = time.time()
            if cfg.backend == "local" or job.stage != "sustain":
                _model(cfg)
            load_s = time.time() - t0 if set(_MODELS) != loaded else 0.0
            RUNNERS[job.stage](job, cfg)
        except BaseException as e:
            traceback.print_exc(file=fh)
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"error: {msg}" if isinstance(e, InterpError) else f"error: {type(e).__name__}: {msg}", file=fh)
            raise
        wall = time.time() - started
        print(f"== done in {wall:.1f} s (model load {load_s:.1f} s)")
    sys.stdout.flush()
    return ShardResult(job.describe(), os.getpid(), socket.gethostname(), started, wall, load_s)


def last_log_line(path: str) -> str:
    """The last non-empty line of a shard's log ('' when there is none)."""
    try:
        lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""
