"""Benchmark runs (MathIF, IFEval): generation through a SustainRun's baseline stage, scored with the field's metrics.

A run is the baseline stage of a SustainRun (one greedy generation per item, resumable record by record, CAS
optional) in its own run directory. Scores are recomputed from the stored outputs (`score_records`), so a run
is never re-generated to re-score it. Metrics:

* IFEval: prompt-level and instruction-level accuracy, strict and loose (IFEval's `evaluation_lib`).
* MathIF: hard accuracy (all constraints of an item followed), soft accuracy (share of its constraints followed),
  correctness with constraints and, from the run without them, correctness without constraints.

Every rate comes with its n and a 95% Wilson interval (interp.stats); instruction-level rates get a bootstrap
over prompts, since an item's instructions are not independent; SAcc a BCa bootstrap over problems.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .errors import InterpError
from .experiments.sustain import _seed_of
from .models.thinking import answer_text
from .stats.proportions import bootstrap_ci, wilson_ci
from .tasks import Item, Task, get_task


def stratified_ids(items: Sequence[Item], n: int, stratum: Callable[[Item], str], seed: int = 0,
                   min_per: int = 1) -> list[str]:
    """`n` item ids drawn without replacement, allocated to strata in proportion (at least `min_per` each),
    reproducible from `seed`; in the items' order."""
    if not 1 <= n <= len(items):
        raise InterpError(f"a stratified subset needs 1 <= n <= {len(items)}, got {n}")
    groups: dict[str, list[Item]] = {}
    for it in items:
        groups.setdefault(stratum(it), []).append(it)
    quota = {k: max(min_per, round(n * len(v) / len(items))) for k, v in groups.items()}
    while sum(quota.values()) > n:  # trim the largest strata first
        k = max(quota, key=lambda k: (quota[k], k))
        quota[k] -= 1
    while sum(quota.values()) < n:
        k = max(groups, key=lambda k: (len(groups[k]) - quota[k], k))
        quota[k] += 1
    chosen: set[str] = set()
    for k, v in sorted(groups.items()):
        rng = random.Random(_seed_of(seed, k))
        chosen.update(it.id for it in rng.sample(v, min(quota[k], len(v))))
    return [it.id for it in items if it.id in chosen]


@dataclass
class EvalSpec:
    """One benchmark run: a task with its kwargs, into `out`, at these generation settings."""

    name: str
    task: str
    task_kwargs: dict
    out: Path
    max_new_tokens: int
    capture_cas: bool = False
    batch_size: int = 32  # not in the record keys: changing it resumes the same run


def eval_config(spec: EvalSpec):
    """The SustainConfig of a benchmark run (baseline stage only; no controls or constraint sets)."""
    from .experiments.config import SustainConfig

    n = len(get_task(spec.task, **spec.task_kwargs).load_items())
    return SustainConfig(model="smollm2-135m", label="smollm2-135m", task=spec.task, task_kwargs=spec.task_kwargs,
                         n_items=n, max_new_tokens=spec.max_new_tokens, batch_size=spec.batch_size, controls=[],
                         k_values=[], capture_cas=spec.capture_cas)


def run_eval(spec: EvalSpec, model=None, only: Sequence[str] | None = None, shard: tuple[int, int] | None = None,
             progress: bool = True, log=print) -> list[dict]:
    """Run (or resume) one benchmark run; returns its baseline records.

    `only`: generate just these item ids now (a stratified wave); the run's config, keys and records are those
    of the whole run, so later waves complete the same run directory. `shard` (i, n): a hash shard of them."""
    from .experiments.sustain import SustainRun

    class _Run(SustainRun):
        def items(self) -> list[Item]:
            its = super().items()
            return its if only is None else [it for it in its if it.id in set(only)]

    run = _Run(eval_config(spec), spec.out, model=model, progress=progress, log=log, shard=shard)
    return run.run_baseline()


def records(run_dir: str | Path) -> list[dict]:
    """The baseline records of a run directory (read-only)."""
    from .rundir import RunDir

    d = RunDir(run_dir)
    if not d.config_path.exists():
        raise InterpError(f"{run_dir} is not a run directory (no config); run it first")
    return d.records("baseline")


def _task_of(run_dir: str | Path) -> Task:
    from .rundir import RunDir

    cfg = RunDir(run_dir).read_config()
    c = cfg.get("config", cfg)
    return get_task(c["task"], **c.get("task_kwargs", {}))


def score_records(run_dir: str | Path) -> pd.DataFrame:
    """One row per (item, instruction) of a run, re-scored from the stored answer phase.

    Columns: item_id, instruction_index, instruction_id, strict, loose, n_instructions, finish_reason,
    output_tokens, and for MathIF source, n_constraints, correct."""
    from .constraints.ifeval import verify
    from .tasks.mathif import math_correct

    task = _task_of(run_dir)
    items = {it.id: it for it in task.load_items()}
    rows = []
    for r in records(run_dir):
        it = items.get(r["item_id"])
        if it is None:
            continue
        out = answer_text(r)
        m = it.metadata
        verdicts = verify(out, m["instruction_id_list"], m["kwargs"], prompt=m.get("prompt", it.input))
        base = {"item_id": it.id, "n_instructions": len(verdicts), "finish_reason": r["finish_reason"],
                "output_tokens": len(r["output_ids"])}
        if task.name == "mathif":
            ok, _ = math_correct(str(it.target), out)
            base.update(source=m["source"], n_constraints=m["n_constraints"], correct=ok)
        for i, v in enumerate(verdicts):
            rows.append({**base, "instruction_index": i, "instruction_id": m["instruction_id_list"][i],
                         "strict": v.strict, "loose": v.loose})
    if not rows:
        raise InterpError(f"{run_dir} has no scored records yet")
    return pd.DataFrame(rows)


def cluster_boot(values: np.ndarray, groups: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of `values`, resampling whole `groups` (prompts)."""
    uniq, inv = np.unique(groups, return_inverse=True)
    sums = np.bincount(inv, weights=values.astype(float), minlength=len(uniq))
    cnts = np.bincount(inv, minlength=len(uniq)).astype(float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(uniq), size=(n_boot, len(uniq)))
    means = sums[idx].sum(1) / cnts[idx].sum(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _rate(name: str, k: int, n: int, unit: str) -> dict:
    lo, hi = wilson_ci(k, n)
    return {"metric": name, "value": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi, "n": n, "unit": unit}


def _irate(name: str, df: pd.DataFrame, col: str) -> dict:
    lo, hi = cluster_boot(df[col].to_numpy(), df["item_id"].to_numpy())
    return {"metric": name, "value": float(df[col].mean()), "ci_low": lo, "ci_high": hi, "n": len(df),
            "unit": f"instructions ({df['item_id'].nunique()} prompts)"}


def ifeval_table(df: pd.DataFrame) -> pd.DataFrame:
    """IFEval's four accuracies (prompt/instruction x strict/loose) with n and 95% CIs."""
    per = df.groupby("item_id")[["strict", "loose"]].all()
    n = len(per)
    return pd.DataFrame([
        _rate("prompt-level strict", int(per["strict"].sum()), n, "prompts"),
        _rate("prompt-level loose", int(per["loose"].sum()), n, "prompts"),
        _irate("instruction-level strict", df, "strict"),
        _irate("instruction-level loose", df, "loose"),
    ])


def mathif_table(df: pd.DataFrame, df_nc: pd.DataFrame | None = None) -> pd.DataFrame:
    """MathIF's metrics: HAcc, SAcc, correctness with constraints (and without, from `df_nc`), with n and CIs."""
    per = df.groupby("item_id").agg(hard=("strict", "all"), soft=("strict", "mean"), correct=("correct", "first"))
    n = len(per)
    rows = [_rate("hard accuracy (HAcc)", int(per["hard"].sum()), n, "problems")]
    _, lo, hi = bootstrap_ci(per["soft"].to_numpy())
    rows.append({"metric": "soft accuracy (SAcc)", "value": float(per["soft"].mean()), "ci_low": lo, "ci_high": hi,
                 "n": n, "unit": "problems"})
    rows.append(_rate("correctness with constraints", int(per["correct"].sum()), n, "problems"))
    both = per["hard"] & per["correct"]
    rows.append(_rate("correct and all constraints followed", int(both.sum()), n, "problems"))
    if df_nc is not None:
        pn = df_nc.groupby("item_id")["correct"].first()
        rows.append(_rate("correctness without constraints", int(pn.sum()), len(pn), "problems"))
        common = per.index.intersection(pn.index)
        rows.append(_rate("correctness with constraints, same problems", int(per.loc[common, "correct"].sum()),
                          len(common), "problems"))
    return pd.DataFrame(rows)


def by_instruction(df: pd.DataFrame) -> pd.DataFrame:
    """Strict and loose accuracy per instruction id, with n and a Wilson 95% CI on strict."""
    rows = []
    for iid, g in df.groupby("instruction_id"):
        k, n = int(g["strict"].sum()), len(g)
        lo, hi = wilson_ci(k, n)
        rows.append({"instruction_id": iid, "n": n, "strict": k / n, "ci_low": lo, "ci_high": hi,
                     "loose": float(g["loose"].mean())})
    return pd.DataFrame(rows).sort_values("instruction_id").reset_index(drop=True)
