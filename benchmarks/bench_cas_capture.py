"""Cost of live CAS capture: our generation loop with and without capture, plain HF generate, and the naive path.

Variants, all greedy on the same prompts, batched the same way (prompts sorted by length, left-padded),
each producing exactly --new tokens per prompt (EOS disabled: our loop's EOS set is emptied, HF gets
min_new_tokens):

  ours      interp generate(), no hook providers (hooked attention idle -> SDPA)
  ours+cas  interp generate(capture=[CAS()]) (eager rows only for generated-token queries)
  hf        HF model.generate() on a plain, separately loaded sdpa instance from the same cached folder
  naive     HF generate(output_attentions=True, return_dict_in_generate=True) on an eager instance,
            then reduced to CAS (the obvious alternative to a capture hook)

Time: repetitions interleaved (variant order rotated each repetition), median and min per variant, both
wall-clock and process CPU time. With one torch thread CPU time is the work done, far less sensitive than
wall time to other jobs on a shared machine; the ratios are given for both.
Memory: each (variant, batch size) runs once in a fresh subprocess: load, warm up, then reset the kernel's
peak-RSS mark (/proc/self/clear_refs = 5) and read VmHWM after the timed generation. `peak_rss` is the
process's peak resident memory during generation (weights included), `peak_delta` the peak above the
resident size just before generation (activations, KV cache, captured attention). Both are whole-process
RSS, so they count every torch CPU allocation (tracemalloc would not).

Usage: .venv/bin/python benchmarks/bench_cas_capture.py [--reps 5] [--new 64] [--threads 1]
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from interp.attention.cas import CAS, default_span_groups  # noqa: E402
from interp.models import generation  # noqa: E402
from interp.api import generate  # noqa: E402
from interp.models.generation import GenConfig, make_batch  # noqa: E402
from interp.prompts import Part, build_prompt  # noqa: E402

VARIANTS = ("ours", "ours+cas", "hf", "naive")
TASKS = [
    "What is 17 + 25?",
    "Explain why the sky is blue.",
    "Tom has 3 apples and buys 4 more. How many apples does he have now?",
    "Write a short story about a robot who learns to paint.",
    "List three uses of a paperclip and explain each one.",
    "A train travels 60 km in 1.5 hours. What is its average speed in km per hour? Show your reasoning.",
    "Describe the water cycle.",
    "Give step-by-step instructions for making a cup of tea, starting from boiling the water.",
]
CONSTRAINTS = ["Answer in at least five sentences.", "Use the word 'indeed' at least once.",
               "Do not use any numbered lists.", "End your answer with the phrase 'That is all.'"]


def prompts_for(tokenizer, n: int):
    return [build_prompt(tokenizer, [Part("task", TASKS[i % len(TASKS)]),
                                     Part("constraint_0", CONSTRAINTS[i % len(CONSTRAINTS)])]) for i in range(n)]


@contextlib.contextmanager
def no_eos():
    """Make our loop treat no token as EOS, so every prompt gets exactly max_new_tokens tokens."""
    orig = generation.eos_ids
    generation.eos_ids = lambda tokenizer, model: set()
    try:
        yield
    finally:
        generation.eos_ids = orig


def run_ours(m, prompts, n_new: int, bs: int, cas: bool):
    cfg = GenConfig(max_new_tokens=n_new, batch_size=bs)
    with no_eos():
        gens = generate(m, prompts, cfg, capture=[CAS()] if cas else [], progress=False)
    return [g.output_ids for g in gens], [g.extras.get("cas") for g in gens]


@torch.no_grad()
def run_hf(hf, tokenizer, prompts, n_new: int, bs: int, attentions: bool = False):
    """HF generate on the same batches as ours; with `attentions`, reduce the returned patterns to CAS."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i].input_ids))
    ids: list = [None] * len(prompts)
    cas: list = [None] * len(prompts)
    dev = next(hf.parameters()).device
    for s in range(0, len(order), bs):
        idx = order[s: s + bs]
        batch = make_batch(tokenizer, [prompts[i] for i in idx], dev)
        out = hf.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=n_new,
                          min_new_tokens=n_new, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                          output_attentions=attentions, return_dict_in_generate=attentions)
        seqs = out.sequences if attentions else out
        P = batch.prompt_len
        if attentions:
            masks = naive_masks(batch)
            steps = [torch.stack([a[:, :, -1, :P] for a in layer_atts], 1) for layer_atts in out.attentions]
            c = torch.einsum("btlhk,bsk->btlsh", torch.stack(steps, 1).float(), masks).numpy()
        for j, i in enumerate(idx):
            ids[i] = seqs[j, P:].tolist()
            if attentions:
                cas[i] = c[j]
    return ids, cas


def naive_masks(batch) -> torch.Tensor:
    """[B, spans, P] masks in CASCapture's span order (default groups, then sink and prompt)."""
    names = []
    for p in batch.prompts:
        names += [n for n in p.spans if n not in names]
    masks = [batch.span_mask(parts) for parts in default_span_groups(names).values()]
    sink = torch.zeros(batch.size, batch.prompt_len)
    prompt = torch.zeros_like(sink)
    for b, _ in enumerate(batch.prompts):
        sink[b, batch.pad[b]] = 1.0
        prompt[b, batch.pad[b]:] = 1.0
    return torch.stack(masks + [sink, prompt], 1)


def load_variant(variant: str, source: str):
    """What a variant needs: our LoadedModel, or a plain HF instance (sdpa / eager) from the cached folder."""
    from transformers import AutoModelForCausalLM

    from interp.models import load_model

    if variant.startswith("ours"):
        return load_model()
    impl = "eager" if variant == "naive" else "sdpa"
    return AutoModelForCausalLM.from_pretrained(source, attn_implementation=impl, dtype=torch.float32).eval()


def run_variant(variant: str, model, tokenizer, prompts, n_new: int, bs: int):
    if variant == "ours":
        return run_ours(model, prompts, n_new, bs, cas=False)
    if variant == "ours+cas":
        return run_ours(model, prompts, n_new, bs, cas=True)
    return run_hf(model, tokenizer, prompts, n_new, bs, attentions=variant == "naive")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def child(a) -> None:
    """One memory measurement in this fresh process; prints a JSON line."""
    from transformers import AutoTokenizer

    torch.set_num_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(a.source)
    tok.padding_side = "left"
    model = load_variant(a.child, a.source)
    prompts = prompts_for(tok, a.prompts)
    run_variant(a.child, model, tok, prompts[:1], 2, 1)
    gc.collect()
    before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    t0, c0 = time.perf_counter(), time.process_time()
    ids, _ = run_variant(a.child, model, tok, prompts, a.new, a.bs)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    peak = _status_kb("VmHWM")
    assert all(len(x) == a.new for x in ids)
    print(json.dumps({"rss_before_mb": before / 1024, "peak_rss_mb": peak / 1024,
                      "peak_delta_mb": (peak - before) / 1024, "seconds": dt,
                      "cpu_seconds": dc}))


def measure_memory(a, source: str) -> dict:
    out = {}
    for bs in a.batch_sizes:
        for v in VARIANTS:
            cmd = [sys.executable, __file__, "--child", v, "--bs", str(bs), "--source", source, "--new", str(a.new),
                   "--prompts", str(a.prompts), "--threads", str(a.threads)]
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if r.returncode:
                raise RuntimeError(f"memory child {v} bs={bs} failed:\n{r.stderr[-2000:]}")
            out[f"{v}@{bs}"] = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"  memory {v:>8} bs={bs}: peak {out[f'{v}@{bs}']['peak_rss_mb']:.0f} MB "
                  f"(+{out[f'{v}@{bs}']['peak_delta_mb']:.0f} MB)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: stable timings on a shared CPU; the ratios are what matter)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/cas_capture.json"))
    ap.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--bs", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--source", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)
    torch.set_num_threads(a.threads)
    ours = load_variant("ours", "")
    models = {"ours": ours, "ours+cas": ours, "hf": load_variant("hf", ours.source),
              "naive": load_variant("naive", ours.source)}
    tok = ours.tokenizer
    prompts = prompts_for(tok, a.prompts)
    for v in VARIANTS:
        run_variant(v, models[v], tok, prompts[:2], 4, 2)
    times = {f"{v}@{bs}": [] for v in VARIANTS for bs in a.batch_sizes}
    cpu = {k: [] for k in times}
    check = {}
    for rep in range(a.reps):
        for bs in a.batch_sizes:
            order = VARIANTS[rep % 4:] + VARIANTS[: rep % 4]
            outs = {}
            for v in order:
                gc.collect()
                t0, c0 = time.perf_counter(), time.process_time()
                outs[v] = run_variant(v, models[v], tok, prompts, a.new, bs)
                times[f"{v}@{bs}"].append(time.perf_counter() - t0)
                cpu[f"{v}@{bs}"].append(time.process_time() - c0)
                assert all(len(x) == a.new for x in outs[v][0]), f"{v}: unequal token counts"
            if rep == 0:
                same = {v: sum(x == y for x, y in zip(outs[v][0], outs["ours"][0])) for v in VARIANTS}
                diff = max(float(abs(c1 - c2).max()) for c1, c2 in zip(outs["ours+cas"][1], outs["naive"][1])
                           if c1.shape == c2.shape)
                check[bs] = {"prompts_with_identical_tokens_vs_ours": same, "max_abs_cas_diff_capture_vs_naive": diff}
            print(f"rep {rep + 1}/{a.reps} bs={bs}: " + ", ".join(
                f"{v} {times[f'{v}@{bs}'][-1]:.1f}s (cpu {cpu[f'{v}@{bs}'][-1]:.1f}s)" for v in VARIANTS), flush=True)
    res = {"setup": {"model": ours.model_id, "prompts": a.prompts, "new_tokens": a.new, "reps": a.reps,
                     "threads": a.threads, "torch": torch.__version__, "python": platform.python_version(),
                     "cpu_count": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
           "seconds": {k: {"median": statistics.median(v), "min": min(v), "all": v} for k, v in times.items()},
           "cpu_seconds": {k: {"median": statistics.median(v), "min": min(v), "all": v} for k, v in cpu.items()},
           "tokens_per_s_median": {k: a.prompts * a.new / statistics.median(v) for k, v in times.items()},
           "checks": check, "ratios": {}}
    if not a.no_memory:
        res["memory"] = measure_memory(a, ours.source)
    for bs in a.batch_sizes:
        r = {}
        for kind in ("seconds", "cpu_seconds"):
            med = {v: res[kind][f"{v}@{bs}"]["median"] for v in VARIANTS}
            mn = {v: res[kind][f"{v}@{bs}"]["min"] for v in VARIANTS}
            label = "time" if kind == "seconds" else "cpu"
            r |= {f"{label} {x}/{y}": {"median": med[x] / med[y], "min": mn[x] / mn[y], "goal": g}
                  for x, y, g in (("ours+cas", "ours", 1.10), ("ours+cas", "hf", 1.15), ("ours", "hf", None),
                                  ("naive", "ours", None), ("naive", "ours+cas", None), ("naive", "hf", None))}
        if "memory" in res:
            mem = {v: res["memory"][f"{v}@{bs}"] for v in VARIANTS}
            for x, y, g in (("ours+cas", "ours", 1.05), ("ours+cas", "hf", None), ("naive", "ours", None)):
                r[f"peak_rss {x}/{y}"] = {"ratio": mem[x]["peak_rss_mb"] / mem[y]["peak_rss_mb"], "goal": g}
                den = mem[y]["peak_delta_mb"]
                r[f"peak_delta {x}/{y}"] = {"ratio": mem[x]["peak_delta_mb"] / den if den >= 1 else None, "goal": None}
        res["ratios"][str(bs)] = r
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    print_table(res, a.batch_sizes)
    print(f"results: {a.out}")


def print_table(res: dict, batch_sizes) -> None:
    print(f"\n{'variant':<10}{'bs':>4}{'wall s':>9}{'cpu s':>8}{'tok/s':>8}{'peak MB':>9}{'+MB':>7}")
    for bs in batch_sizes:
        for v in VARIANTS:
            k = f"{v}@{bs}"
            s = res["seconds"][k]
            m = res.get("memory", {}).get(k, {})
            print(f"{v:<10}{bs:>4}{s['median']:>9.2f}{res['cpu_seconds'][k]['median']:>8.2f}"
                  f"{res['tokens_per_s_median'][k]:>8.1f}"
                  f"{m.get('peak_rss_mb', float('nan')):>9.0f}{m.get('peak_delta_mb', float('nan')):>7.0f}")
    for bs in batch_sizes:
        print(f"\nratios of medians at batch {bs} (time: wall clock, cpu: process CPU time):")
        for name, r in res["ratios"][str(bs)].items():
            val = r.get("median", r.get("ratio"))
            if val is None:
                print(f"  {name:<28}    n/a (denominator < 1 MB)")
                continue
            goal = f"  goal <= {r['goal']:.2f} {'OK' if val <= r['goal'] else 'MISSED'}" if r["goal"] else ""
            print(f"  {name:<28}{val:>7.3f}{goal}")


if __name__ == "__main__":
    main()
