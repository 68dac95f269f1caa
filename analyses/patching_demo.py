"""Activation patching on the embedded model: arithmetic items, unconstrained vs constrained runs.

Each item: the unconstrained prompt "What is a times b? Answer with just the number." (clean) and the same task
followed by a constraint part (corrupted). The correct answer is the product; the failed answer is what the
model generates under the constraint (greedy). Denoising patches at chosen layers x spans, both answers.
Results are appended per item to <out>/patching.jsonl (a rerun skips items already there: resumable) and the
heatmaps written to <out>/patching_{answer}.png/.pdf.

Usage: PYTHONPATH=$PWD .venv/bin/python analyses/patching_demo.py [--n 8] [--out runs/patching_demo]
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

import interp
from interp.patching import PatchResult, patch_pair
from interp.plots.patching import patching_table, plot_patching_heatmap
from interp.prompts import Part, build_prompt

CONSTRAINTS = [" Write the answer in French words only.", " Answer in all capital letters, spelled out in words.",
               " Do not use any digits in your answer."]


def items(n: int, seed: int = 0):
    rng = random.Random(seed)
    for i in range(n):
        a, b = rng.randint(3, 12), rng.randint(3, 12)
        yield f"item{i}", f"What is {a} times {b}? Answer with just the number.", CONSTRAINTS[i % 3], str(a * b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--out", default="runs/patching_demo")
    ap.add_argument("--layers", type=int, nargs="+", default=[0, 5, 10, 15, 20, 25, 29])
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "patching.jsonl"
    done = {json.loads(x)["item"] for x in path.read_text().splitlines()} if path.exists() else set()
    m = interp.load_model()
    tok = m.tokenizer
    for key, task, con, answer in items(a.n):
        if key in done:
            continue
        clean = build_prompt(tok, [Part("task", task)])
        corrupt = build_prompt(tok, [Part("task", task), Part("constraint_0", con)])
        g = interp.generate(m, [corrupt], max_new_tokens=6, progress=False)[0]
        failed = g.output_ids or tok.encode("no", add_special_tokens=False)
        r = patch_pair(m, clean, corrupt, {"correct": tok.encode(answer, add_special_tokens=False),
                                           "failed": failed}, layers=a.layers, spans=["last_prompt", "answer"])
        r.meta = {"task": task, "constraint": con, "answer": answer, "failed_text": g.output_text}
        with path.open("a") as f:
            f.write(json.dumps({"item": key, **r.to_dict()}) + "\n")
        print(key, "clean", r.clean.round(2), "corrupt", r.corrupt.round(2), flush=True)
    res = [PatchResult.from_dict(json.loads(x)) for x in path.read_text().splitlines()]
    for ans in ("correct", "failed"):
        mean, lo, hi, n = patching_table(res, ans)
        print(ans, "n", n, "mean effect [layer x span]\n", mean.round(2), "\nCI lo\n", lo.round(2), "\nCI hi\n",
              hi.round(2))
        plot_patching_heatmap(res, out / f"patching_{ans}", answer=ans)


if __name__ == "__main__":
    main()
