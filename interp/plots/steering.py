"""Steering curve: per alpha, the rates of (task solved), (constraint met) and both, for the steering direction
beside a random direction of the same norm, with Wilson 95% CIs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import InterpError
from ..stats.proportions import wilson_ci
from .style import new_figure, save_figure

OUTCOMES = ("solved", "constraint_met", "both")


def steering_table(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows`: one row per (label, alpha, item) with boolean solved / constraint_met. Returns per (label, alpha,
    outcome): n, k, rate, lo, hi (Wilson 95%)."""
    need = {"label", "alpha", "solved", "constraint_met"}
    if not need <= set(rows.columns):
        raise InterpError(f"steering_table needs columns {sorted(need)}, got {sorted(rows.columns)}")
    rows = rows.assign(both=rows.solved & rows.constraint_met)
    out = []
    for (label, alpha), g in rows.groupby(["label", "alpha"]):
        for o in OUTCOMES:
            k, n = int(g[o].sum()), len(g)
            lo, hi = wilson_ci(k, n)
            out.append({"label": label, "alpha": alpha, "outcome": o, "n": n, "k": k, "rate": k / n, "lo": lo,
                        "hi": hi})
    return pd.DataFrame(out)


def plot_steering_curve(rows: pd.DataFrame, path_stem: str | Path, title: str = "") -> list[Path]:
    """One panel per outcome: rate vs alpha, steering direction (solid) and random control (dashed)."""
    t = steering_table(rows)
    fig, axes = new_figure("full", aspect=0.3, ncols=3, sharey=True)
    for ax, o in zip(axes, OUTCOMES):
        for label, g in t[t.outcome == o].groupby("label"):
            g = g.sort_values("alpha")
            ls = "--" if "random" in str(label) else "-"
            ax.errorbar(g.alpha, g.rate, yerr=[g.rate - g.lo, g.hi - g.rate], ls=ls, marker="o", ms=3, capsize=2,
                        label=f"{label}")
        ax.set_title(o.replace("_", " "), fontsize=7)
        ax.set_xlabel("alpha")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel(f"rate (n={int(t.n.max())} per point, Wilson 95%)")
    axes[0].legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=7)
    return save_figure(fig, path_stem)
