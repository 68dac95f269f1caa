"""Cost of attention interventions in generation: plain vs scale / knockout / mean_ablate, side by side in one run.

Variants (greedy, same prompts, same batching, exactly --new tokens per prompt: EOS disabled):

  plain        interp generate(), no hook providers
  scale        one `scale(alpha=0.5)` intervention on the constraint span, all layers and heads
  knockout     one `knockout` of the constraint span, all layers and heads
  mean_ablate  one `mean_ablate` of the constraint span, all layers and heads (a value edit: eager layers)

Repetitions are interleaved (variant order rotated every repetition); per variant the median and min of wall
and process CPU seconds, and the ratio of medians to `plain` for both clocks. With one torch thread CPU time
is the work done, less sensitive than wall time to other jobs on a shared machine. The load average is
recorded before and after. Goal: each variant <= 1.2x plain. Writes benchmarks/results/interventions.json.

Usage: .venv/bin/python benchmarks/bench_interventions.py [--reps 5] [--new 32] [--batch-sizes 1 8] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_cas_capture import no_eos, prompts_for  # noqa: E402
from interp.interventions import Intervention  # noqa: E402
from interp.api import generate  # noqa: E402
from interp.models.generation import GenConfig  # noqa: E402
from interp.models.loading import load_model  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "interventions.json"
VARIANTS = {"plain": None, "scale": Intervention(op="scale", alpha=0.5), "knockout": Intervention(op="knockout"),
            "mean_ablate": Intervention(op="mean_ablate")}


def run(model, prompts, iv, n_new: int, bs: int):
    cfg = GenConfig(max_new_tokens=n_new, batch_size=bs)
    with no_eos():
        return generate(model, prompts, cfg, interventions=None if iv is None else [iv], progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model()
    names = list(VARIANTS)
    res = {"model": "smollm2-135m", "device": str(model.device), "new_tokens": a.new, "reps": a.reps,
           "torch_threads": a.threads, "cpu_count": os.cpu_count(), "load_avg_before": list(os.getloadavg()),
           "python": platform.python_version(), "torch": torch.__version__, "batch_sizes": {}}
    for bs in a.batch_sizes:
        prompts = prompts_for(model.tokenizer, bs)
        for n in names:  # warm-up
            run(model, prompts, VARIANTS[n], 2, bs)
        wall = {n: [] for n in names}
        cpu = {n: [] for n in names}
        for r in range(a.reps):
            for n in names[r % len(names):] + names[: r % len(names)]:
                t, c = time.perf_counter(), time.process_time()
                out = run(model, prompts, VARIANTS[n], a.new, bs)
                wall[n].append(time.perf_counter() - t)
                cpu[n].append(time.process_time() - c)
                assert all(len(g.output_ids) == a.new for g in out)
        med = {k: {n: statistics.median(v[n]) for n in names} for k, v in (("wall", wall), ("cpu", cpu))}
        res["batch_sizes"][str(bs)] = {
            "wall_s": wall, "cpu_s": cpu,
            "min": {k: {n: min(v[n]) for n in names} for k, v in (("wall", wall), ("cpu", cpu))},
            "median": med,
            "ratio_wall": {n: med["wall"][n] / med["wall"]["plain"] for n in names},
            "ratio_cpu": {n: med["cpu"][n] / med["cpu"]["plain"] for n in names},
        }
        print(f"batch {bs}: " + ", ".join(f"{n} {res['batch_sizes'][str(bs)]['ratio_wall'][n]:.2f}x wall / "
                                          f"{res['batch_sizes'][str(bs)]['ratio_cpu'][n]:.2f}x cpu" for n in names))
    res["load_avg_after"] = list(os.getloadavg())
    res["goal_1_2x_met"] = all(max(v["ratio_cpu"].values()) <= 1.2 for v in res["batch_sizes"].values())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
