"""Ablation figures: rescue/induce rates vs controls, head-sweep heatmap, attribution vs actual, CAS shift."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .style import PALETTE, new_figure, save_figure

ROLE_STYLE = {"main": (PALETTE[0], "on constraint"), "head": (PALETTE[2], "single sweep head"),
              "control": ("#999999", "control"), "none": ("#000000", "replay (none)")}
STAGE_TITLE = {"rescue": "rescue: failures now solved", "induce": "induce: successes now failed"}


def plot_rates(table: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Per stage, horizontal bars of the flipped share per arm with 95% Wilson CIs and n (coloured by role)."""
    from matplotlib.patches import Patch

    stages = [s for s in ("rescue", "induce") if (table["stage"] == s).any()]
    sizes = [int((table["stage"] == s).sum()) for s in stages]
    fig, axes = new_figure("column", aspect=0.2 + 0.075 * sum(sizes) + 0.12 * len(stages), nrows=len(stages),
                           squeeze=False, gridspec_kw={"height_ratios": sizes})
    for ax, stage in zip(axes[:, 0], stages):
        df = table[table["stage"] == stage]
        y = np.arange(len(df))[::-1]
        ax.barh(y, df["rate"], color=[ROLE_STYLE[r][0] for r in df["role"]], height=0.7)
        err = np.vstack([df["rate"] - df["lo"], df["hi"] - df["rate"]])
        ax.errorbar(df["rate"], y, xerr=err, fmt="o", color="black", ms=2, elinewidth=0.7, capsize=1.5)
        ax.set_yticks(y, [f"{a} (n={n})" for a, n in zip(df["arm"], df["n"])], fontsize=6)
        ax.set_xlim(0, 1.02)
        ax.set_title(STAGE_TITLE[stage], loc="left")
    axes[-1, 0].set_xlabel("share flipped (95% Wilson CI)")
    roles = [r for r in ROLE_STYLE if (table["role"] == r).any()]
    axes[0, 0].legend(handles=[Patch(color=ROLE_STYLE[r][0], label=ROLE_STYLE[r][1]) for r in roles],
                      loc="lower right", bbox_to_anchor=(1.0, 1.12), ncol=min(len(roles), 2))
    return save_figure(fig, path_stem)


def plot_sweep_heatmap(head_effect: np.ndarray, layer_effect: np.ndarray, path_stem: str | Path,
                       title: str = "knockout of constraint attention: Δ log p(correct answer)") -> list[Path]:
    """Layer x head heatmap of sweep effects with a whole-layer column; diverging colours centred on 0."""
    from matplotlib.colors import TwoSlopeNorm

    L, H = head_effect.shape
    grid = np.concatenate([head_effect, np.full((L, 1), np.nan), layer_effect[:, None]], 1)
    lim = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    lim = lim or 1.0
    fig, ax = new_figure("column", aspect=1.25)
    im = ax.imshow(grid, aspect="auto", cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), interpolation="nearest")
    ax.set_xticks(list(range(H)) + [H + 1], [str(h) for h in range(H)] + ["layer"])
    ax.set_yticks(range(0, L, max(1, L // 10)))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.grid(False)
    ax.set_title(title, fontsize=7)
    fig.colorbar(im, ax=ax, label="Δ sum log p (mean over items)", shrink=0.8)
    return save_figure(fig, path_stem)


def plot_attribution(df: pd.DataFrame, rho: float, path_stem: str | Path) -> list[Path]:
    """Attribution-patching estimate vs actual knockout effect per (item, head), identity line, rho in the title."""
    fig, ax = new_figure("column", aspect=0.85)
    items = list(dict.fromkeys(df["item"])) if "item" in df else [None]
    for i, it in enumerate(items):
        d = df if it is None else df[df["item"] == it]
        ax.scatter(d["actual"], d["estimate"], s=5, alpha=0.6, color=PALETTE[i % len(PALETTE)], lw=0,
                   label=None if it is None else str(it))
    vals = np.concatenate([df["actual"].to_numpy(float), df["estimate"].to_numpy(float)])
    vals = vals[np.isfinite(vals)]
    if vals.size:
        lo, hi = float(vals.min()), float(vals.max())
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.6, ls=":")
    ax.axhline(0, color="#777777", lw=0.4)
    ax.axvline(0, color="#777777", lw=0.4)
    ax.set_xlabel("actual knockout effect (Δ sum log p)")
    ax.set_ylabel("attribution estimate (grad × −1)")
    ax.set_title(f"attribution vs actual, Spearman ρ = {rho:.2f} (n = {len(df)})")
    if len(items) > 1:
        ax.legend(fontsize=5, markerscale=2, loc="best")
    return save_figure(fig, path_stem)


def plot_cas_shift(table: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Mean CAS on each arm's target (at the heads it acts on) before (replay) vs after the intervention."""
    df = table[(table["role"] != "none") & np.isfinite(table["cas_before"].astype(float))]
    fig, ax = new_figure("column", aspect=0.2 + 0.075 * max(len(df), 1))
    if df.empty:
        ax.text(0.5, 0.5, "no CAS captured", ha="center", va="center", transform=ax.transAxes)
        return save_figure(fig, path_stem)
    y = np.arange(len(df))[::-1]
    for yi, b, a, role in zip(y, df["cas_before"], df["cas_after"], df["role"]):
        ax.plot([b, a], [yi, yi], color=ROLE_STYLE[role][0], lw=0.8)
    ax.scatter(df["cas_before"], y, s=10, color="white", edgecolor="black", lw=0.6, zorder=3, label="before (replay)")
    ax.scatter(df["cas_after"], y, s=10, color=[ROLE_STYLE[r][0] for r in df["role"]], zorder=3, label="after")
    ax.set_yticks(y, [f"{s}: {a}" for s, a in zip(df["stage"], df["arm"])], fontsize=6)
    ax.set_xscale("symlog", linthresh=1e-3)
    top = float(np.nanmax(df[["cas_before", "cas_after"]].to_numpy(float)))
    ax.set_xlim(-3e-4, max(top, 1e-3) * 1.8)
    ax.set_xticks([t for t in (0, 1e-3, 1e-2, 1e-1, 1) if t <= max(top, 1e-3) * 1.8])
    ax.set_xlabel("mean CAS on target span (acted-on heads)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2)
    return save_figure(fig, path_stem)
