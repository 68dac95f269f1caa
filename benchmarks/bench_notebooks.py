"""Run time of each notebook, executed top to bottom as a reader would (fresh runs folder, in order).

Reports wall seconds and the kernel's CPU seconds (user + system of the kernel process, read from
RUSAGE_CHILDREN once nbclient has shut it down), so a notebook's promise ("about N minutes") can quote
both: on a busy or small machine wall time grows while CPU time stays put. Writes results/notebooks.json.

    .venv/bin/python benchmarks/bench_notebooks.py [--only 01_quickstart] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="notebook stems to run (default: all, in order)")
    ap.add_argument("--threads", type=int, help="OMP/torch threads in the kernel (default: torch's own choice)")
    a = ap.parse_args()
    paths = sorted((ROOT / "notebooks").glob("*.ipynb"))
    if a.only:
        paths = [p for p in paths if p.stem in a.only]
    if a.threads:
        os.environ["OMP_NUM_THREADS"] = str(a.threads)
    rows = []
    with tempfile.TemporaryDirectory() as runs:
        os.environ["INTERP_NB_RUNS"] = runs
        os.environ["MPLBACKEND"] = "Agg"
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        for p in paths:
            nb = nbformat.read(p, as_version=4)
            cpu0, t0 = _children_cpu(), time.perf_counter()
            NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": runs}}).execute()
            wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
            errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
            rows.append({"notebook": p.name, "wall_s": round(wall, 1), "kernel_cpu_s": round(cpu, 1),
                         "errors": len(errors)})
            print(f"{p.name:<28} wall {wall:7.1f} s   kernel CPU {cpu:7.1f} s   errors {len(errors)}", flush=True)
    out = {"machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": os.getloadavg()[0],
                       "python": platform.python_version(), "threads": a.threads}, "notebooks": rows}
    (ROOT / "benchmarks" / "results" / "notebooks.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
