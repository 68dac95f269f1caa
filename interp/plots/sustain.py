"""SustainScore figures: by constraint type, constraint-count scaling, error types, model comparison."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .style import PALETTE, new_figure, save_figure


def _errorbars(ax, pos, df: pd.DataFrame, horizontal: bool = False, **kw) -> None:
    """CI bars at `pos` for the rows of `df` with an interval; groups too small for one (nan bounds, n < 3) get
    no bar at all, not a zero-width one that would read as certainty."""
    pos = np.asarray(pos, dtype=float)
    s, lo, hi = (df[c].to_numpy(float) for c in ("score", "lo", "hi"))
    ok = np.isfinite(lo) & np.isfinite(hi)
    if not ok.any():
        return
    err = np.vstack([s[ok] - lo[ok], hi[ok] - s[ok]])
    kw = {"fmt": "none", "ecolor": "black", **kw}
    if horizontal:
        ax.errorbar(s[ok], pos[ok], xerr=err, **kw)
    else:
        ax.errorbar(pos[ok], s[ok], yerr=err, **kw)


def plot_by_type(by_type: pd.DataFrame, overall: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Horizontal bars of SustainScore per constraint type (hard/soft coloured) with Wilson CIs and n."""
    ctrl = overall[overall["group"].str.startswith("control")]
    rows = pd.concat([by_type.assign(color=by_type["hardness"].map({"hard": PALETTE[0], "soft": PALETTE[2]}).fillna(PALETTE[0])),
                      ctrl.assign(color="#999999")], ignore_index=True)
    rows = rows[rows["n"] > 0]
    fig, ax = new_figure("column", aspect=0.25 + 0.09 * max(len(rows), 1))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, rows["score"], color=rows["color"], height=0.7)
    _errorbars(ax, y, rows, horizontal=True, elinewidth=0.7, capsize=1.5)
    ax.set_yticks(y, [f"{g} (n={n})" for g, n in zip(rows["group"], rows["n"])])
    ax.set_xlim(0, 1.05)
    ax.axvline(1.0, color="black", lw=0.5, ls=":")
    ax.set_xlabel("SustainScore (share still solved, 95% Wilson CI)")
    from matplotlib.patches import Patch

    kinds = [("hard", PALETTE[0]), ("soft", PALETTE[2])]
    handles = [Patch(color=c, label=k) for k, c in kinds if (rows.get("hardness") == k).any()]
    handles.append(Patch(color="#999999", label="control"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles))
    return save_figure(fig, path_stem)


def plot_scaling(scaling: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """SustainScore vs number of constraints K with Wilson CIs."""
    df = scaling[scaling["n"] > 0]
    fig, ax = new_figure("column")
    ax.plot(df["K"], df["score"], marker="o", color=PALETTE[0])
    _errorbars(ax, df["K"], df, ecolor=PALETTE[0], capsize=2)
    for k, s, n in zip(df["K"], df["score"], df["n"]):
        ax.annotate(f"n={n}", (k, s), textcoords="offset points", xytext=(4, 4), fontsize=6)
    ax.set_xlabel("constraints per item, K")
    ax.set_ylabel("SustainScore (95% Wilson CI)")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(df["K"])
    ax.set_xlim(df["K"].min() - 0.3, df["K"].max() + 0.4)
    return save_figure(fig, path_stem)


def plot_error_types(errors: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Stacked counts of constrained failures per constraint type: reasoning, output-spec, truncated."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = new_figure("column")
    if errors.empty:
        ax.text(0.5, 0.5, "no constrained failures", ha="center", va="center", transform=ax.transAxes)
        return save_figure(fig, path_stem)
    kinds = [("reasoning", PALETTE[1]), ("output_spec", PALETTE[4]), ("truncated", "#999999")]
    left = np.zeros(len(errors))
    y = np.arange(len(errors))[::-1]
    for c, color in kinds:
        if c in errors.columns:
            ax.barh(y, errors[c], left=left, color=color, height=0.7,
                    label="truncated" if c == "truncated" else c.replace("_", "-") + " error")
            left += errors[c].to_numpy()
    labels = ["K-sets (mixed)" if t == "mixed" else t for t in errors["ctype"]]
    ax.set_yticks(y, [f"{t} (n={int(n)})" for t, n in zip(labels, left)])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    ax.set_xlabel("constrained failures (count)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    return save_figure(fig, path_stem)


def plot_model_comparison(table: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """SustainScore per model (rows of `table`: model, score, lo, hi, n), with Wilson CIs."""
    fig, ax = new_figure("column")
    x = np.arange(len(table))
    ax.bar(x, table["score"], color=[PALETTE[i % len(PALETTE)] for i in range(len(table))], width=0.6)
    _errorbars(ax, x, table, capsize=2, elinewidth=0.7)
    ax.set_xticks(x, [f"{m}\n(n={n})" for m, n in zip(table["model"], table["n"])])
    ax.set_ylabel("SustainScore")
    ax.set_ylim(0, 1.05)
    return save_figure(fig, path_stem)


def plot_by_model_domain(table: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Grouped bars: domains on x, one bar per model (legend), Wilson CIs and n on each bar.

    `table` rows: model, domain, score, lo, hi, n.
    """
    models = list(dict.fromkeys(table["model"]))
    domains = list(dict.fromkeys(table["domain"]))
    width = 0.8 / max(len(models), 1)
    fig, ax = new_figure("full" if len(models) * len(domains) > 4 else "column")
    for i, m in enumerate(models):
        sub = table[table["model"] == m].set_index("domain").reindex(domains)
        x = np.arange(len(domains)) + (i - (len(models) - 1) / 2) * width
        ok = sub["n"].fillna(0).to_numpy() > 0
        ax.bar(x[ok], sub["score"][ok], width=width * 0.95, color=PALETTE[i % len(PALETTE)], label=m)
        _errorbars(ax, x[ok], sub[ok], capsize=1.5, elinewidth=0.6)
        for xi, n in zip(x[ok], sub["n"][ok]):
            ax.text(xi, 0.02, f"n={int(n)}", ha="center", va="bottom", fontsize=5.5, rotation=90, color="white")
    ax.set_xticks(np.arange(len(domains)), domains)
    ax.set_ylabel("SustainScore (95% Wilson CI)")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(models), 4))
    return save_figure(fig, path_stem)
