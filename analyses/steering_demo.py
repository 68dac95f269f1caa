"""Steering on the embedded model: add alpha x the "constraint direction" (difference of means of the residual
stream, constrained minus unconstrained prompts of the same items, last prompt position) at one layer during
generation, beside a random direction of the same norm; joint outcome per alpha (task solved x constraint met).

Items: "What is a times b?" with the constraint "End your answer with the word DONE." (checkable: solved = the
product appears in the output; constraint met = the output's last word is DONE). Negative alpha removes the
direction. Directions are computed on items disjoint from the evaluated ones. Rows go to <out>/steering.jsonl
(resumable per (label, alpha)); the curve to <out>/steering_curve.png/.pdf.

Usage: PYTHONPATH=$PWD .venv/bin/python analyses/steering_demo.py [--n 8] [--layer 15] [--out runs/steering_demo]
"""
from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import pandas as pd
import torch

import interp
from interp.plots.steering import plot_steering_curve, steering_table
from interp.probes.steering import Steer, mean_difference, random_direction
from interp.prompts import Part, build_prompt

CONSTRAINT = " End your answer with the word DONE."


def items(n: int, seed: int):
    rng = random.Random(seed)
    return [(rng.randint(3, 12), rng.randint(3, 12)) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--alphas", type=float, nargs="+", default=[-2.0, -1.0, 0.0, 1.0, 2.0])
    ap.add_argument("--new", type=int, default=24)
    ap.add_argument("--out", default="runs/steering_demo")
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "steering.jsonl"
    done = set()
    if path.exists():
        done = {(r["label"], r["alpha"]) for r in map(json.loads, path.read_text().splitlines())}
    m = interp.load_model()
    tok = m.tokenizer

    def prompts(pairs, constrained):
        return [build_prompt(tok, [Part("task", f"What is {x} times {y}?")] + (
            [Part("constraint_0", CONSTRAINT)] if constrained else [])) for x, y in pairs]
    fit, test = items(16, seed=1), items(a.n, seed=2)
    d = mean_difference(m, prompts(fit, True), prompts(fit, False), layers=(a.layer,))[0]
    dirs = {"constraint": d, "random": random_direction(d, seed=0)}
    evals = prompts(test, True)
    for label, vec in dirs.items():
        for alpha in a.alphas:
            if (label, alpha) in done:
                continue
            spec = Steer(layer=a.layer, direction=tuple(vec), alpha=alpha, label=label)
            gens = interp.generate(m, evals, max_new_tokens=a.new, capture=[spec], progress=False, batch_size=8)
            with path.open("a") as f:
                for (x, y), g in zip(test, gens):
                    words = re.findall(r"[A-Za-z]+", g.output_text)
                    f.write(json.dumps({"label": label, "alpha": alpha, "item": f"{x}x{y}", "text": g.output_text,
                                        "solved": str(x * y) in g.output_text,
                                        "constraint_met": bool(words) and words[-1] == "DONE",
                                        "direction_norm": float((vec ** 2).sum() ** 0.5)}) + "\n")
            print(label, alpha, flush=True)
    rows = pd.read_json(path, lines=True)
    print(steering_table(rows).to_string())
    plot_steering_curve(rows, out / "steering_curve", title=f"steering at blocks.{a.layer}.hook_resid_pre, "
                                                             f"n={a.n} items")


if __name__ == "__main__":
    main()
