"""Steering on the embedded model: add alpha x the "constraint direction" (difference of means of the residual
stream, constrained minus unconstrained prompts of the same items, last prompt position) at one layer during
generation, beside a random direction of the same norm; joint outcome per alpha (task solved x constraint met).
Beside it, on the same items, the attention-scale intervention of the same strength class (STUDY.md H3/H4):
constraint attention damped (alpha 0.1, as removal) and boosted (alpha 5, as addition), each also on a random
span of the same length as control.

Items: "What is a times b?" with the constraint "End your answer with the word DONE." (checkable: solved = the
product appears in the output; constraint met = the output's last word is DONE). Negative alpha removes the
direction. Directions are computed on items disjoint from the evaluated ones. Rows go to <out>/steering.jsonl
(resumable per (label, alpha)), the attention arms to <out>/attention.jsonl (resumable per arm), the compared
arms' rows to <out>/arms.jsonl and their table to <out>/arms.md; the curve (top) and the arm comparison (bottom) to <out>/steering_curve.png/.pdf.

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
from interp import Intervention
from interp.plots.steering import arm_table, plot_steering_curve, steering_table
from interp.probes.steering import Steer, mean_difference, random_direction
from interp.prompts import Part, build_prompt
from interp.stats.proportions import wilson_ci

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
    ap.add_argument("--damp", type=float, default=0.1)
    ap.add_argument("--boost", type=float, default=5.0)
    ap.add_argument("--steer-alpha", type=float, default=1.0, help="steering strength compared with the attention arms")
    ap.add_argument("--out", default="runs/steering_demo")
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path, apath = out / "steering.jsonl", out / "attention.jsonl"
    done = set()
    if path.exists():
        done = {(r["label"], r["alpha"]) for r in map(json.loads, path.read_text().splitlines())}
    adone = {r["arm"] for r in map(json.loads, apath.read_text().splitlines())} if apath.exists() else set()
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
            write(path, test, gens, {"label": label, "alpha": alpha,
                                     "direction_norm": float((vec ** 2).sum() ** 0.5)})
            print(label, alpha, flush=True)
    for arm, target, alpha in [(f"attn damp {a.damp:g}: constraint", "constraints", a.damp),
                               (f"attn damp {a.damp:g}: random span", "random:constraint_0", a.damp),
                               (f"attn boost {a.boost:g}: constraint", "constraints", a.boost),
                               (f"attn boost {a.boost:g}: random span", "random:constraint_0", a.boost)]:
        if arm in adone:
            continue
        iv = Intervention(target=target, op="scale", alpha=alpha, label=arm)
        gens = interp.generate(m, evals, max_new_tokens=a.new, interventions=[iv], progress=False, batch_size=8)
        write(apath, test, gens, {"arm": arm, "intervention": iv.to_dict()})
        print(arm, flush=True)
    rows = pd.read_json(path, lines=True)
    print(steering_table(rows).to_string())
    arms = compared_arms(rows, pd.read_json(apath, lines=True), a.steer_alpha)
    t = arm_table(arms)
    arms.to_json(out / "arms.jsonl", orient="records", lines=True)
    paired = rescue_induce(arms)
    (out / "arms.md").write_text(t.round(3).to_markdown(index=False) + "\n\nPaired over items, against no "
                                 "intervention (rescue: task now solved among the items it failed; induce: task now "
                                 "failed among the items it solved):\n\n" + paired.round(3).to_markdown(index=False)
                                 + "\n")
    print(t.round(3).to_string())
    print(paired.round(3).to_string())
    plot_steering_curve(rows, out / "steering_curve", arms=arms,
                        title=f"steering at blocks.{a.layer}.hook_resid_pre beside attention scale on the constraint, "
                              f"n={a.n} items")


def write(path: Path, test, gens, fields: dict) -> None:
    """Append one JSONL row per item: the output, solved (the product appears), constraint met (last word DONE)."""
    with path.open("a") as f:
        for (x, y), g in zip(test, gens):
            words = re.findall(r"[A-Za-z]+", g.output_text)
            f.write(json.dumps({**fields, "item": f"{x}x{y}", "text": g.output_text,
                                "solved": str(x * y) in g.output_text,
                                "constraint_met": bool(words) and words[-1] == "DONE"}) + "\n")


def rescue_induce(arms: pd.DataFrame) -> pd.DataFrame:
    """Per arm, H3/H4-style rates paired by item against the ``none`` arm: rescue = solved among the items
    ``none`` failed, induce = not solved among the items ``none`` solved (Wilson 95%)."""
    base = arms[arms.arm == "none"].set_index("item").solved
    out = []
    for arm, g in arms[arms.arm != "none"].groupby("arm", sort=False):
        g = g.set_index("item").solved.reindex(base.index)
        for stage, pool, hit in (("rescue", ~base, g), ("induce", base, ~g)):
            k, n = int(hit[pool].sum()), int(pool.sum())
            lo, hi = wilson_ci(k, n) if n else (float("nan"), float("nan"))
            out.append({"arm": arm, "stage": stage, "n": n, "k": k, "rate": k / n if n else float("nan"),
                        "lo": lo, "hi": hi})
    return pd.DataFrame(out)


def compared_arms(steer: pd.DataFrame, attn: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Rows with an ``arm`` column: no intervention, steering at -alpha / +alpha (constraint and random direction),
    then the attention arms; removal-class arms (steer -alpha, damp) before addition-class ones."""
    def pick(label, al, name):
        g = steer[(steer.label == label) & (steer.alpha == al)]
        if g.empty:
            raise SystemExit(f"no steering rows for {label} alpha={al}: add it to --alphas")
        return g.assign(arm=name)
    parts = [pick("constraint", 0.0, "none"),
             pick("constraint", -alpha, f"steer -{alpha:g}: constraint dir"),
             pick("random", -alpha, f"steer -{alpha:g}: random dir")]
    parts += [attn[attn.arm.str.startswith("attn damp")]]
    parts += [pick("constraint", alpha, f"steer +{alpha:g}: constraint dir"),
              pick("random", alpha, f"steer +{alpha:g}: random dir")]
    parts += [attn[attn.arm.str.startswith("attn boost")]]
    cols = ["arm", "item", "solved", "constraint_met"]
    return pd.concat([p[cols] for p in parts], ignore_index=True)


if __name__ == "__main__":
    main()
