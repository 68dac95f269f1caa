"""Cost of residual capture, steering and an activation-patching forward, beside plain runs, in one run.

Generation variants (greedy, same prompts and batching, exactly --new tokens per prompt: EOS disabled):

  plain        interp generate(), no probes
  resid        Resid(hook_resid_post, every layer, every step)
  steer        Steer(alpha * direction at blocks.{L/2}.hook_resid_pre, every position)

Forward variants (one teacher-forced batch of prompt + --new stored tokens):

  forward      a plain forward
  patch        the same forward with a patching hook (prompt-span positions replaced at one layer)

Repetitions are interleaved (order rotated); per variant the median wall and process-CPU seconds and the ratio
of medians to its plain baseline. The load average is recorded before and after (the machine is shared).
Goal: each <= 1.2x. Writes benchmarks/results/probes.json.

Usage: .venv/bin/python benchmarks/bench_probes.py [--reps 3] [--new 16] [--batch-sizes 1 8] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_cas_capture import no_eos, prompts_for  # noqa: E402
from interp.api import generate  # noqa: E402
from interp.models.generation import GenConfig, forward_teacher_forced  # noqa: E402
from interp.models.hooked_attention import AttentionHooks  # noqa: E402
from interp.models.loading import load_model  # noqa: E402
from interp.probes.resid import Resid  # noqa: E402
from interp.probes.steering import Steer  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "probes.json"


def bench_batch(model, bs: int, a, gen_variants: dict, res: dict) -> None:
    prompts = prompts_for(model.tokenizer, bs)
    cfg = GenConfig(max_new_tokens=a.new, batch_size=bs)
    with no_eos():
        outs = [g.output_ids for g in generate(model, prompts, cfg, progress=False)]
    src = torch.randn(len(prompts[0].input_ids), model.config.hidden_size)
    layer = model.n_layers // 2

    def patch_hooks():
        def fn(x, call):
            x = x.clone()
            x[:, :8] = src[:8].to(x.dtype)
            return x
        return AttentionHooks().add(f"blocks.{layer}.hook_resid_pre", fn)

    def run(name):
        if name in gen_variants:
            with no_eos():
                out = generate(model, prompts, cfg, capture=gen_variants[name], progress=False)
            assert all(len(g.output_ids) == a.new for g in out)
        elif name == "forward":
            forward_teacher_forced(model, prompts, outs, [])
        else:
            with patch_hooks():
                forward_teacher_forced(model, prompts, outs, [])
    names = [*gen_variants, "forward", "patch"]
    for n in names:
        run(n)
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for r in range(a.reps):
        for n in names[r % len(names):] + names[: r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            run(n)
            wall[n].append(time.perf_counter() - t)
            cpu[n].append(time.process_time() - c)
    base = {n: "plain" if n in gen_variants else "forward" for n in names}
    med = {k: {n: statistics.median(v[n]) for n in names} for k, v in (("wall", wall), ("cpu", cpu))}
    res["batch_sizes"][str(bs)] = {"wall_s": wall, "cpu_s": cpu, "median": med,
                                   "ratio_wall": {n: med["wall"][n] / med["wall"][base[n]] for n in names},
                                   "ratio_cpu": {n: med["cpu"][n] / med["cpu"][base[n]] for n in names}}
    print(f"batch {bs}: " + ", ".join(f"{n} {res['batch_sizes'][str(bs)]['ratio_cpu'][n]:.3f}x cpu / "
                                      f"{res['batch_sizes'][str(bs)]['ratio_wall'][n]:.3f}x wall" for n in names),
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--new", type=int, default=16)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model()
    d = tuple(np.random.default_rng(0).standard_normal(model.config.hidden_size))
    gen_variants = {"plain": [], "resid": [Resid(hooks=("hook_resid_post",))],
                    "steer": [Steer(layer=model.n_layers // 2, direction=d, alpha=2.0)]}
    res = {"model": "smollm2-135m", "new_tokens": a.new, "reps": a.reps, "torch_threads": a.threads,
           "cpu_count": os.cpu_count(), "load_avg_before": list(os.getloadavg()), "batch_sizes": {}}
    for bs in a.batch_sizes:
        bench_batch(model, bs, a, gen_variants, res)
    res["load_avg_after"] = list(os.getloadavg())
    res["goal_1_2x_met"] = all(max(v["ratio_cpu"].values()) <= 1.2 for v in res["batch_sizes"].values())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
