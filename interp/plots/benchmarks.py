"""Benchmark figures: IFEval per instruction id, MathIF by source and constraint count, the CoT CAS contrast,
and the mapping disagreements. Every estimate is drawn with its 95% CI and labelled with its n."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .style import PALETTE, new_figure, save_figure


def plot_ifeval_by_instruction(table: pd.DataFrame, path_stem: str | Path, title: str = "") -> list[Path]:
    """Strict accuracy per IFEval instruction id (Wilson CI) with loose beside it; `table` from evals.by_instruction."""
    t = table.sort_values("strict").reset_index(drop=True)
    fig, ax = new_figure("full", aspect=0.08 + 0.022 * len(t))
    y = np.arange(len(t))
    ax.errorbar(t["strict"], y, xerr=[t["strict"] - t["ci_low"], t["ci_high"] - t["strict"]], fmt="o",
                color=PALETTE[0], ms=3, lw=0.8, capsize=1.5, label="strict (95% CI)")
    ax.plot(t["loose"], y, "|", color=PALETTE[1], ms=7, mew=1.2, label="loose")
    ax.set_yticks(y, [f"{r.instruction_id} (n={r.n})" for r in t.itertuples()], fontsize=6)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("instruction-level accuracy")
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    return save_figure(fig, path_stem)


def plot_mathif_breakdown(per_item: pd.DataFrame, path_stem: str | Path, title: str = "") -> list[Path]:
    """HAcc, SAcc and correctness by source and by number of constraints (Wilson / bootstrap CIs).

    `per_item` has one row per problem: source, n_constraints, hard, soft, correct."""
    from ..stats.proportions import bootstrap_ci, wilson_ci

    fig, axes = new_figure("full", aspect=0.34, ncols=2, sharey=True)
    metrics = [("hard", "HAcc"), ("soft", "SAcc"), ("correct", "correct")]
    for ax, by in zip(axes, ("source", "n_constraints")):
        groups = sorted(per_item[by].unique(), key=str)
        x = np.arange(len(groups))
        for k, (col, label) in enumerate(metrics):
            vals, los, his = [], [], []
            for g in groups:
                s = per_item.loc[per_item[by] == g, col].astype(float)
                m = float(s.mean())
                if col == "soft":
                    _, lo, hi = bootstrap_ci(s.to_numpy())
                else:
                    lo, hi = wilson_ci(int(s.sum()), len(s))
                lo, hi = (m, m) if np.isnan(lo) else (lo, hi)  # no interval below interp.stats' minimum n
                vals.append(m)
                los.append(m - lo)
                his.append(hi - m)
            ax.bar(x + (k - 1) * 0.26, vals, 0.24, yerr=[los, his], color=PALETTE[k], label=label,
                   error_kw={"lw": 0.7, "capsize": 1.5})
        n = per_item.groupby(by).size()
        ax.set_xticks(x, [f"{g}\n(n={n[g]}{', no SAcc CI' if n[g] < 3 else ''})" for g in groups], fontsize=6)
        ax.set_xlabel("source" if by == "source" else "constraints per problem")
    axes[0].set_ylabel("rate")
    axes[0].set_ylim(0, 1)
    axes[0].legend(loc="upper right")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path_stem)


def plot_cot_cas(effects: pd.DataFrame, by_inst: pd.DataFrame, path_stem: str | Path, title: str = "") -> list[Path]:
    """Left: paired contrasts (CoT - none, neutral - none, CoT - neutral) of CAS (both normalisations) and of
    accuracy, with bootstrap CIs. Right: per instruction id, CAS (prompt share) of each condition."""
    conds = {"none": PALETTE[7], "cot": PALETTE[1], "neutral": PALETTE[0]}
    fig, axes = new_figure("full", aspect=0.5, ncols=2, gridspec_kw={"width_ratios": [1, 1.3]})
    ax = axes[0]
    e = effects.reset_index(drop=True)
    y = np.arange(len(e))[::-1]
    for yi, r in zip(y, e.itertuples()):
        rel = r.diff / r.mean_b if r.metric.startswith("CAS") and r.mean_b else r.diff
        lo = r.ci_low / r.mean_b if r.metric.startswith("CAS") and r.mean_b else r.ci_low
        hi = r.ci_high / r.mean_b if r.metric.startswith("CAS") and r.mean_b else r.ci_high
        c = PALETTE[2] if r.metric.startswith("accuracy") else PALETTE[1 if "cot" in r.contrast else 0]
        ax.plot([lo, hi], [yi, yi], color=c, lw=1.3)
        ax.plot([rel], [yi], "o", color=c, ms=3.5)
    ax.axvline(0, color="black", lw=0.6)
    def pv(p: float) -> str:
        return "p<0.001" if p < 0.001 else f"p={p:.3f}"

    ax.set_yticks(y, [f"{r.contrast}: {r.metric} (n={r.n}, {pv(r.p)})" for r in e.itertuples()], fontsize=5.5)
    ax.set_xlabel("CAS: change / mean of the 2nd condition; accuracy: difference")
    ax = axes[1]
    piv = by_inst.pivot(index="instruction_id", columns="condition", values="cas_prompt_share")
    nn = by_inst.groupby("instruction_id")["n"].max()
    piv = piv.sort_values("none" if "none" in piv else piv.columns[0])
    yy = np.arange(len(piv))
    for c, col in conds.items():
        if c in piv:
            ax.plot(piv[c], yy, "o", color=col, ms=3, label=c)
    ax.set_yticks(yy, [f"{i.split(':')[1]} (n={nn[i]})" for i in piv.index], fontsize=5.5)
    ax.set_xlabel("CAS (share of common-prompt attention)")
    ax.legend(loc="lower right")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path_stem)


def plot_mapping_disagreements(df: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Disagreement rate of each toolkit form with its nearest IFEval id on the fixed random corpus."""
    from ..stats.proportions import wilson_ci

    t = df.sort_values("rate").reset_index(drop=True)
    fig, ax = new_figure("full", aspect=0.3)
    y = np.arange(len(t))
    ci = np.array([wilson_ci(int(r.disagree), int(r.n)) for r in t.itertuples()])
    ax.barh(y, t["rate"], xerr=[t["rate"] - ci[:, 0], ci[:, 1] - t["rate"]], color=PALETTE[4],
            error_kw={"lw": 0.7, "capsize": 1.5})
    ax.set_yticks(y, [f"{r.ctype} ({r.form}) vs {r.ifeval_id.split(':')[1]} (n={r.n})" for r in t.itertuples()],
                  fontsize=6)
    ax.set_xlabel("share of checks where the two verdicts differ")
    return save_figure(fig, path_stem)
