"""All-heads teacher-forced knockout sweep: batched vs one intervention at a time, side by side in one run.

    python benchmarks/bench_sweep.py [--batch-size 32] [--threads 1] [--layers 0 15 29]

The item is a smoke_arith prompt with a constraint and a typical ~30-token answer. Variants, all computing
the same 270 head + 30 layer knockouts of constraint attention plus the unablated pass:

- ``sequential``: `sweep_heads_sequential`, one full `forward_teacher_forced` per intervention (reference);
- ``batched_plain``: the same rows batched (one row per intervention) through `forward_teacher_forced`,
  to show what batching alone buys;
- ``batched``: `sweep_heads` (batched + shared prompt KV cache + single-row layers below each batch's
  first intervened layer).

Goal (issue 17): batched ≥ 10x faster than sequential at equal outputs (|Δ logp| ≤ 1e-4). Reports wall and
CPU seconds, the largest |Δ logp| between the variants, and `ideal_macs_ratio`: the ratio of multiply-accumulates
of sequential to a perfect batched sweep (each row runs only the output tokens, only from its own first
intervened layer on, plus the LM head), i.e. the speed-up an exact sweep of this shape can reach when both are
compute-bound. Writes benchmarks/results/sweep.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from interp.constraints import Constraint, insert_constraints
from interp.interventions.sweep import (RowInterventions, answer_logp, sweep_heads, sweep_heads_sequential,
                                        sweep_interventions)
from interp.models.generation import forward_teacher_forced
from interp.models.loading import load_model
from interp.prompts import build_prompt
from interp.tasks import get_task

OUT = Path(__file__).resolve().parent / "results" / "sweep.json"
ANSWER = "Sam has 8 stickers and bought 17 more, so he has 8 + 17 = 25 stickers now. The answer is 25."


def batched_plain(model, prompt, out, layers, batch_size):
    """Rows of one intervention each through `forward_teacher_forced` (no KV-cache or layer shortcuts)."""
    ivs = sweep_interventions(model.n_layers, model.n_heads, layers=layers)
    n_p, n_o = len(prompt.input_ids), len(out)
    rows = [[]] + [[iv] for iv in ivs]
    res = []
    for s in range(0, len(rows), batch_size):
        chunk = rows[s: s + batch_size]
        provs = [RowInterventions(model.n_layers, model.n_heads, chunk)]
        logits, _, _ = forward_teacher_forced(model.hf, model.tokenizer, [prompt] * len(chunk), [out] * len(chunk), provs)
        res += answer_logp(logits[:, n_p - 1: n_p - 1 + n_o], out).tolist()
    return np.array(res)


def ideal_macs_ratio(model, ivs, n_prompt: int, n_out: int) -> float:
    """Multiply-accumulates per intervention: sequential (full prompt + output, all layers, LM head at every
    position) over an ideal batched sweep (output tokens only, layers from the first intervened one on)."""
    c = model.config
    d, hd = c.hidden_size, getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    layer = d * hd * (2 * c.num_attention_heads + 2 * c.num_key_value_heads) + 3 * d * c.intermediate_size
    head = d * c.vocab_size
    L = model.n_layers
    seq = (n_prompt + n_out) * (L * layer + head)
    first = [int(np.flatnonzero(iv.head_mask(L, model.n_heads).any(1))[0]) for iv in ivs]
    batched = np.mean([n_out * ((L - f) * layer + head) for f in first])
    return float(seq / batched)


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    r = fn()
    return r, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layers", type=int, nargs="*", default=None, help="sweep only these layers (quick runs)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = load_model()
    task = get_task("smoke_arith")
    it = task.items(1)[0]
    c = Constraint("ends_with", "hard", 'End your response with the exact phrase "stickers now."',
                   {"phrase": "stickers now.", "mode": "suffix"})
    prompt = build_prompt(model.tokenizer, insert_constraints(task.parts(it), [c]))
    out = model.tokenizer.encode(ANSWER, add_special_tokens=False)
    sweep_heads(model, prompt, out, layers=[0], batch_size=a.batch_size)  # warm-up
    load0 = os.getloadavg()[0]
    fast, t_fast, c_fast = timed(lambda: sweep_heads(model, prompt, out, layers=a.layers, batch_size=a.batch_size))
    plain, t_plain, c_plain = timed(lambda: batched_plain(model, prompt, out, a.layers, a.batch_size))
    slow, t_slow, c_slow = timed(lambda: sweep_heads_sequential(model, prompt, out, layers=a.layers))
    fast2, t_fast2, c_fast2 = timed(lambda: sweep_heads(model, prompt, out, layers=a.layers, batch_size=a.batch_size))
    t_b, c_b = min(t_fast, t_fast2), min(c_fast, c_fast2)
    res = {
        "model": "smollm2-135m", "n_interventions": int(len(fast) - 1), "prompt_tokens": len(prompt.input_ids),
        "output_tokens": len(out), "batch_size": a.batch_size, "torch_threads": a.threads,
        "wall_s": {"batched": [t_fast, t_fast2], "batched_plain": t_plain, "sequential": t_slow},
        "cpu_s": {"batched": [c_fast, c_fast2], "batched_plain": c_plain, "sequential": c_slow},
        "speedup_wall": t_slow / t_b, "speedup_cpu": c_slow / c_b,
        "speedup_wall_batching_only": t_slow / t_plain, "speedup_cpu_batching_only": c_slow / c_plain,
        "max_abs_diff_logp": float(np.abs(fast.logp.to_numpy() - slow.logp.to_numpy()).max()),
        "max_abs_diff_logp_plain": float(np.abs(plain - slow.logp.to_numpy()).max()),
        "goal_10x_met": bool(t_slow / t_b >= 10 and c_slow / c_b >= 10),
        "ideal_macs_ratio": ideal_macs_ratio(model, sweep_interventions(model.n_layers, model.n_heads, layers=a.layers),
                                             len(prompt.input_ids), len(out)), "cpu_count": os.cpu_count(), "load_avg_1m_before": load0,
        "load_avg_1m_after": os.getloadavg()[0], "python": platform.python_version(), "torch": torch.__version__,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2))
    print(f"{res['n_interventions']} interventions, prompt {res['prompt_tokens']} + output {res['output_tokens']} tokens")
    print(f"{'variant':<15}{'wall s':>10}{'cpu s':>10}")
    for name, w, cc in (("sequential", t_slow, c_slow), ("batched_plain", t_plain, c_plain), ("batched", t_b, c_b)):
        print(f"{name:<15}{w:>10.1f}{cc:>10.1f}")
    print(f"batched vs sequential: {res['speedup_wall']:.1f}x wall, {res['speedup_cpu']:.1f}x cpu "
          f"(batching alone {res['speedup_wall_batching_only']:.1f}x wall); max |Δ logp| {res['max_abs_diff_logp']:.2e}")
    print(f"ideal multiply-accumulate ratio for this sweep: {res['ideal_macs_ratio']:.1f}x")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
