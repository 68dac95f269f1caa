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


def arm_table(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows`: one row per (arm, item) with boolean solved / constraint_met (e.g. steering at one alpha beside
    attention-scale arms). Returns per (arm, outcome): n, k, rate, lo, hi (Wilson 95%), arms in first-seen order."""
    if "arm" not in rows.columns:
        raise InterpError(f"arm_table needs an 'arm' column, got {sorted(rows.columns)}")
    t = steering_table(rows.assign(label=rows.arm, alpha=0.0)).drop(columns=["alpha"]).rename(columns={"label": "arm"})
    order = {a: i for i, a in enumerate(dict.fromkeys(rows.arm))}
    return t.sort_values(["arm", "outcome"], key=lambda c: c.map(order) if c.name == "arm" else
                         c.map(OUTCOMES.index)).reset_index(drop=True)


def plot_steering_curve(rows: pd.DataFrame, path_stem: str | Path, title: str = "",
                        arms: pd.DataFrame | None = None) -> list[Path]:
    """One panel per outcome: rate vs alpha, steering direction (solid) and random control (dashed). With `arms`
    (rows with an ``arm`` column, see `arm_table`), a second row of panels compares arms on the same items side
    by side (e.g. steering at +-alpha beside attention damp / boost on the constraint and on a random span)."""
    t = steering_table(rows)
    fig, axes = new_figure("full", aspect=0.3 if arms is None else 0.75, nrows=1 if arms is None else 2, ncols=3,
                           sharey="row")
    top = axes if arms is None else axes[0]
    if arms is not None:
        at = arm_table(arms)
        names = list(dict.fromkeys(at.arm))
        for ax, o in zip(axes[1], OUTCOMES):
            g = at[at.outcome == o].set_index("arm").loc[names]
            ys = range(len(names))
            colors = ["C2" if n.startswith("attn") else "C7" if n == "none" else "C0" for n in names]
            for y, c, (r, lo, hi) in zip(ys, colors, g[["rate", "lo", "hi"]].itertuples(index=False)):
                ax.errorbar([r], [y], xerr=[[r - lo], [hi - r]], fmt="o", ms=3, color=c, capsize=2)
            ax.set_xlim(-0.02, 1.02)
            ax.set_xlabel(f"{o.replace('_', ' ')} rate (n={int(at.n.max())}/arm, Wilson 95%)", fontsize=6)
        axes[1][0].set_yticks(range(len(names)), names, fontsize=5)
        axes[1][0].invert_yaxis()  # the y axis is shared along the row: once
    for ax, o in zip(top, OUTCOMES):
        for label, g in t[t.outcome == o].groupby("label"):
            g = g.sort_values("alpha")
            ls = "--" if "random" in str(label) else "-"
            ax.errorbar(g.alpha, g.rate, yerr=[g.rate - g.lo, g.hi - g.rate], ls=ls, marker="o", ms=3, capsize=2,
                        label=f"{label}")
        ax.set_title(o.replace("_", " "), fontsize=7)
        ax.set_xlabel("alpha")
        ax.set_ylim(-0.02, 1.02)
    top[0].set_ylabel(f"rate (n={int(t.n.max())} per point, Wilson 95%)")
    top[0].legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=7)
    return save_figure(fig, path_stem)
