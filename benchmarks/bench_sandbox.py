"""Cost per program of the code sandbox, before and after the kernel-enforced jail, on the same programs.

Variants, each scoring the same HumanEval canonical solutions (and checking that all of them pass):

  prelude   the previous sandbox: whole program (solution + tests + check call) under the in-process prelude
            and `unshare -n` only (`Limits(jail=False)`, `run_many` of `check_program`)
  jail      the same whole programs inside the jail (`run_many`, jailed)
  checks    the scorer's path now: the jailed solution answers `candidate` calls, `check` runs here
            (`run_checks`)

Repetitions are interleaved (variant order rotated) and medians reported: wall time per program, CPU time per
program of the sandboxed processes (RUSAGE_CHILDREN) and of this process (the `checks` variant runs the tests
here). Programs run one at a time (`--workers 1`) so the numbers are per program, not per batch.

Usage: .venv/bin/python benchmarks/bench_sandbox.py [--n 40] [--reps 3] [--workers 1]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time
from pathlib import Path

from interp.tasks.humaneval import HumanEval, check_program
from interp.tasks.sandbox import CheckJob, Limits, run_checks, run_many

ROOT = Path(__file__).resolve().parents[1]


def _measure(fn) -> tuple[float, float, float]:
    c0, s0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    results = fn()
    t1, c1, s1 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    assert all(r.passed for r in results), [r.reason for r in results if not r.passed]
    return (t1 - t0, c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime,
            s1.ru_utime + s1.ru_stime - s0.ru_utime - s0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="HumanEval problems (first n)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    items = HumanEval().items()[: args.n]
    sols = [i.input + i.metadata["canonical_solution"] for i in items]
    programs = [check_program(s, i.target["test"], i.target["entry_point"]) for s, i in zip(sols, items)]
    jobs = [CheckJob(s, i.target["test"], i.target["entry_point"], i.target["prompt"]) for s, i in zip(sols, items)]
    lim = Limits(timeout_s=10.0, memory_mb=1024)
    variants = {
        "prelude": lambda: run_many(programs, args.workers, Limits(timeout_s=10.0, memory_mb=1024, jail=False)),
        "jail": lambda: run_many(programs, args.workers, lim),
        "checks": lambda: run_checks(jobs, args.workers, lim),
    }
    names = list(variants)
    runs: dict[str, list[tuple[float, float, float]]] = {k: [] for k in names}
    for rep in range(args.reps):
        for k in names[rep % len(names):] + names[: rep % len(names)]:
            runs[k].append(_measure(variants[k]))
    n = len(items)
    table = {}
    for k in names:
        wall, child, own = (statistics.median(r[j] for r in runs[k]) / n * 1000 for j in range(3))
        table[k] = {"wall_ms_per_program": round(wall, 1), "sandbox_cpu_ms_per_program": round(child, 1),
                    "toolkit_cpu_ms_per_program": round(own, 1)}
    base = table["prelude"]["wall_ms_per_program"]
    for k in names:
        table[k]["wall_ratio_vs_prelude"] = round(table[k]["wall_ms_per_program"] / base, 2)
    print(f"{'variant':8} {'wall ms/prog':>13} {'sandbox CPU ms':>15} {'toolkit CPU ms':>15} {'wall ratio':>11}")
    for k, v in table.items():
        print(f"{k:8} {v['wall_ms_per_program']:13.1f} {v['sandbox_cpu_ms_per_program']:15.1f} "
              f"{v['toolkit_cpu_ms_per_program']:15.1f} {v['wall_ratio_vs_prelude']:11.2f}")
    out = {"n_programs": n, "reps": args.reps, "workers": args.workers, "machine": platform.platform(),
           "results": table}
    path = ROOT / "benchmarks" / "results" / "sandbox.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
