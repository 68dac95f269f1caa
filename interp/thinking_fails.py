"""The "When Thinking Fails" measurement: constraint attention on IFEval with and without a chain-of-thought cue.

Three runs of the same IFEval prompts (interp.tasks.ifeval): no cue, a CoT cue, and a neutral cue of the same
token count (the length control). For every generation and every instruction, CAS is the attention mass from
each generated token onto the instruction's located sentence (`constraint_<i>` parts), averaged over layers
and heads, then over the generation steps of one phase (the answer phase after ``</think>`` for a reasoning
model; the whole output otherwise) -- "phase-aligned": thinking is compared with thinking and answer with answer.

Two normalisations:

* ``raw``: the share of all attention (the paper's CAS).
* ``prompt_share``: the share of the attention that goes to the prompt both conditions have in common, i.e.
  CAS / (prompt mass - cue mass - first-token sink mass). An added cue takes attention by existing; this
  reads how the rest is split, so a longer prompt alone does not decide it. The neutral cue tests the same
  thing empirically: CoT vs neutral is the effect of reasoning beyond that of extra text.

Effects are paired by prompt (same item in two conditions): mean difference with a bootstrap 95% CI over
prompts (BCa, interp.stats) and a sign-flip permutation p-value. Accuracy (IFEval strict, instruction level) of each condition
sits beside CAS, per instruction id.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .attention.cas import PROMPT, SINK
from .attention.storage import read_cas
from .errors import InterpError
from .models.thinking import phase_boundary
from .tasks.ifeval import IFEval

NORMALISATIONS = ("raw", "prompt_share")
CONDITIONS = ("none", "cot", "neutral")


def instruction_cas(cas: np.ndarray, spans: Sequence[str], parts: Sequence[str], boundary: int,
                    n_steps: int) -> dict[str, dict[str, float]]:
    """{phase: {normalisation: value}} of one instruction's CAS in one generation.

    `cas` is ``[steps, layers, spans, heads]``; `parts` the instruction's constraint parts (their masses add: the
    parts are disjoint); `boundary` the first answer step; steps past `n_steps` (the output length) are ignored."""
    spans = list(spans)
    x = cas[:n_steps].mean(axis=(1, 3))  # [steps, spans]
    mass = x[:, [spans.index(p) for p in parts]].sum(1)
    common = x[:, spans.index(PROMPT)] - x[:, spans.index(SINK)] - (x[:, spans.index("cue")] if "cue" in spans else 0)
    share = mass / np.maximum(common, 1e-12)
    out: dict[str, dict[str, float]] = {}
    for phase, sl in (("thinking", slice(0, boundary)), ("answer", slice(boundary, n_steps))):
        if sl.stop - sl.start > 0:
            out[phase] = {"raw": float(mass[sl].mean()), "prompt_share": float(share[sl].mean())}
    return out


def cas_frame(run_dirs: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per (condition, item, instruction, phase): CAS under both normalisations and the IFEval verdict.

    `run_dirs`: condition name -> run directory of an `ifeval` run (CAS captured). Items are those present in
    every condition (paired); instructions that could not be located in the prompt are left out."""
    from .constraints.ifeval import verify
    from .evals import _task_of, records
    from .models.thinking import answer_text

    per: dict[str, dict[str, dict]] = {}
    tasks = {}
    for cond, d in run_dirs.items():
        recs = [r for r in records(d) if r.get("cas_file")]
        if not recs:
            raise InterpError(f"{d}: no records with CAS; run it with capture_cas")
        per[cond] = {r["item_id"]: r for r in recs}
        tasks[cond] = _task_of(d)
    common = sorted(set.intersection(*(set(v) for v in per.values())))
    rows = []
    for cond, d in run_dirs.items():
        task = tasks[cond]
        items = {it.id: it for it in task.load_items()}
        for iid in common:
            r, it = per[cond][iid], items[iid]
            cas, spans, _ = read_cas(d, r["cas_file"])
            m = it.metadata
            verdicts = verify(answer_text(r), m["instruction_id_list"], m["kwargs"], prompt=m["prompt"])
            if not isinstance(task, IFEval):
                raise InterpError(f"{d} is a {task.name!r} run; the CoT measurement reads ifeval runs")
            names = task.instruction_parts(it)
            for i, inst in enumerate(m["instruction_id_list"]):
                if i not in names:
                    continue
                vals = instruction_cas(cas, spans, names[i], phase_boundary(r), len(r["output_ids"]))
                for phase, v in vals.items():
                    rows.append({"condition": cond, "item_id": iid, "instruction_index": i, "instruction_id": inst,
                                 "phase": phase, **v, "strict": verdicts[i].strict, "loose": verdicts[i].loose,
                                 "output_tokens": len(r["output_ids"])})
    if not rows:
        raise InterpError("no paired items with located instructions across the conditions")
    return pd.DataFrame(rows)


def paired_effect(a: np.ndarray, b: np.ndarray, n_boot: int = 4000, seed: int = 0) -> dict:
    """Mean of a - b (paired) with a bootstrap 95% CI and a two-sided sign-flip permutation p-value."""
    from .stats.proportions import paired_bootstrap_diff

    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    n = len(d)
    if n == 0:
        return {"n": 0, "diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan}
    diff, lo, hi = paired_bootstrap_diff(a, b, n_boot=n_boot, seed=seed)
    rng = np.random.default_rng(seed)
    flips = (rng.integers(0, 2, size=(n_boot, n)) * 2 - 1) * d
    p = float((np.abs(flips.mean(1)) >= abs(d.mean()) - 1e-15).mean())
    return {"n": n, "diff": float(diff), "ci_low": float(lo), "ci_high": float(hi), "p": p}


def effects(df: pd.DataFrame, phase: str = "answer", pairs: Sequence[tuple[str, str]] = (
        ("cot", "none"), ("neutral", "none"), ("cot", "neutral"))) -> pd.DataFrame:
    """Paired condition contrasts of per-prompt CAS (mean over the prompt's instructions) and of accuracy."""
    sub = df[df["phase"] == phase]
    per = sub.groupby(["condition", "item_id"])[["raw", "prompt_share", "strict"]].mean()
    rows = []
    for a, b in pairs:
        if a not in per.index.get_level_values(0) or b not in per.index.get_level_values(0):
            continue
        A, B = per.loc[a], per.loc[b]
        idx = A.index.intersection(B.index)
        for k, metric in enumerate(("raw", "prompt_share", "strict")):
            e = paired_effect(A.loc[idx, metric].to_numpy(), B.loc[idx, metric].to_numpy(), seed=k)
            rows.append({"contrast": f"{a} - {b}", "metric": "accuracy (strict)" if metric == "strict"
                         else f"CAS {metric}", "phase": phase, "mean_a": float(A.loc[idx, metric].mean()),
                         "mean_b": float(B.loc[idx, metric].mean()), **e})
    return pd.DataFrame(rows)


def by_instruction(df: pd.DataFrame, phase: str = "answer") -> pd.DataFrame:
    """Per instruction id and condition: n, mean CAS (both normalisations) and strict accuracy."""
    sub = df[df["phase"] == phase]
    g = sub.groupby(["instruction_id", "condition"])
    out = g.agg(n=("item_id", "size"), cas_raw=("raw", "mean"), cas_prompt_share=("prompt_share", "mean"),
                accuracy=("strict", "mean")).reset_index()
    return out
