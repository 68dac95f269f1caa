"""Study figures: every pre-registered comparison as an estimate with its CI, coloured by its verdict."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .style import new_figure, save_figure

VERDICT_COLORS = {"supported": "#1b7837", "not supported": "#b2182b", "inconclusive": "#777777", "not run": "#cccccc"}


def plot_hypotheses(table: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """One panel per effect scale (rates, CAS, slope): a row per comparison, point + CI coloured by its verdict,
    and a grey band of that comparison's ±SESOI behind it.

    `table` has columns hypothesis, comparison, effect, lo, hi, sesoi, direction, verdict, n, scale.
    """
    scales = [s for s in ("rate difference", "CAS difference", "slope per K") if s in set(table["scale"])]
    heights = [max(1, int((table["scale"] == s).sum())) for s in scales]
    fig, axes = new_figure("full", aspect=0.12 + 0.045 * sum(heights), nrows=len(scales), ncols=1,
                           gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, scale in zip(axes[:, 0], scales):
        rows = table[table["scale"] == scale].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        for yi, r in zip(y, rows.itertuples()):
            c = VERDICT_COLORS.get(r.verdict, "#777777")
            if np.isfinite(r.sesoi) and r.sesoi > 0:  # each comparison's own smallest effect of interest
                ax.fill_betweenx([yi - 0.35, yi + 0.35], -r.sesoi, r.sesoi, color="#e6e6e6", lw=0, zorder=0)
            if np.isfinite(r.lo) and np.isfinite(r.hi):
                ax.plot([r.lo, r.hi], [yi, yi], color=c, lw=1.4)
            ax.plot([r.effect], [yi], "o", color=c, ms=3.5)
        ax.axvline(0, color="black", lw=0.6)
        ax.set_yticks(y, [f"{r.hypothesis} {r.comparison} (n={r.n})" for r in rows.itertuples()], fontsize=6)
        ax.set_xlabel(scale)
    handles = [axes[0, 0].plot([], [], "o", color=c, label=v)[0] for v, c in VERDICT_COLORS.items()
               if v in set(table["verdict"])]
    axes[0, 0].legend(handles=handles, loc="lower right", fontsize=6, frameon=False)
    return save_figure(fig, path_stem)
