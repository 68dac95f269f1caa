"""CAS figures: layer × head difference heatmap, per-layer effects, step curves, distributions, token view.

Matplotlib functions write PNG+PDF through `save_figure` and return the paths; the `*_plotly`
functions return a `go.Figure` for notebooks (write it with `save_plotly` only when HTML is wanted:
each self-contained file is ~5 MB).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .style import FULL_WIDTH, PALETTE, ROLE_COLORS, new_figure, plotly_template, save_figure, save_plotly

LABELS = {"failed": "failed", "success": "successful", "reference": "baseline reference"}
SHORT = {"failed": "failed", "success": "successful", "reference": "baseline\nreference"}
COLORS = {"failed": ROLE_COLORS["failed"], "success": ROLE_COLORS["success"], "reference": ROLE_COLORS["baseline"]}
__all__ = ["plot_cell_heatmap", "plot_layer_effects", "plot_step_curves", "plot_phase_curves", "plot_distance_curves",
           "plot_distributions",
           "plot_token_attention", "cell_heatmap_plotly", "step_curves_plotly", "token_attention_plotly",
           "save_plotly"]


def _grid(cells: pd.DataFrame, col: str) -> np.ndarray:
    """[heads, layers] matrix of a per-cell column."""
    L, H = int(cells["layer"].max()) + 1, int(cells["head"].max()) + 1
    g = np.full((H, L), np.nan)
    g[cells["head"].to_numpy(int), cells["layer"].to_numpy(int)] = cells[col].to_numpy(float)
    return g


def _tick_step(n: int, max_ticks: int) -> int:
    return max(1, int(np.ceil(n / max_ticks)))


def plot_cell_heatmap(cells: pd.DataFrame, path_stem: str | Path, units: str = "CAS (attention share)",
                      alpha: float = 0.05) -> list[Path]:
    """Heads × layers heatmap of mean CAS failed − successful; dots mark BH-significant cells."""
    diff = _grid(cells, "diff")
    sig = _grid(cells, "significant").astype(float) > 0
    H, L = diff.shape
    lim = float(np.nanmax(np.abs(diff))) or 1e-9
    fig, ax = new_figure("full", aspect=min(0.75, 0.12 + 0.035 * H * 30 / max(L, 10)))
    im = ax.imshow(diff, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    ax.grid(False)
    hy, lx = np.nonzero(sig)
    ax.scatter(lx, hy, s=9, facecolor="black", edgecolor="white", linewidth=0.4,
               label=f"BH-adjusted p < {alpha:g}")
    ax.set_xticks(np.arange(0, L, _tick_step(L, 30)))
    ax.set_yticks(np.arange(H))
    ax.tick_params(axis="both", labelsize=6, length=2)
    ax.set_xlabel("layer")
    ax.set_ylabel("head")
    nf, ns = int(cells["n_failed"].iloc[0]), int(cells["n_success"].iloc[0])
    ax.set_title(f"Constraint attention, failed − successful (n = {nf} failed, {ns} successful; "
                 f"{int(sig.sum())} of {H * L} cells significant)", fontsize=8)
    cb = fig.colorbar(im, ax=ax, pad=0.01, fraction=0.04)
    cb.set_label(f"Δ mean {units}", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    if sig.any():
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.18), ncol=1, fontsize=6, handletextpad=0.2)
    return save_figure(fig, path_stem)


def plot_layer_effects(layers: pd.DataFrame, path_stem: str | Path, units: str = "CAS (attention share)") -> list[Path]:
    """Per layer: failed − successful difference of head-averaged CAS with 95% bootstrap CIs."""
    fig, ax = new_figure("full", aspect=0.3)
    x = layers["layer"].to_numpy()
    y = layers["diff"].to_numpy(float)
    err = np.vstack([y - layers["diff_lo"].to_numpy(float), layers["diff_hi"].to_numpy(float) - y])
    ax.axhline(0, color="black", lw=0.5)
    ax.errorbar(x, y, yerr=err, fmt="none", ecolor="#555555", elinewidth=0.7, capsize=1.5)
    sig = layers["significant"].to_numpy(bool)
    ax.plot(x[~sig], y[~sig], "o", mfc="white", mec=PALETTE[0], label="not significant")
    if sig.any():
        ax.plot(x[sig], y[sig], "o", color=PALETTE[0], label="BH-adjusted p < 0.05")
    ax.set_xticks(np.arange(0, len(x), _tick_step(len(x), 30)))
    ax.tick_params(axis="x", labelsize=6)
    ax.set_xlim(-0.7, len(x) - 0.3)
    ax.set_xlabel("layer")
    ax.set_ylabel(f"Δ {units}\n(failed − successful)")
    nf, ns = int(layers["n_failed"].iloc[0]), int(layers["n_success"].iloc[0])
    ax.set_title(f"Head-averaged CAS by layer (n = {nf} failed, {ns} successful; 95% bootstrap CI)", fontsize=8)
    ax.legend(loc="best", ncol=2)
    return save_figure(fig, path_stem)


def _progress(n_bins: int) -> np.ndarray:
    return (np.arange(n_bins) + 0.5) / n_bins * 100


def _band(ax, x, c: dict, g: str, sel=slice(None), label: bool = True) -> None:
    """One group's mean curve with its 95% band (entries `sel` of the curve), drawn at `x`."""
    mean, lo, hi = (np.asarray(c[k], dtype=float)[sel] for k in ("mean", "lo", "hi"))
    ax.plot(x, mean, "--" if g == "reference" else "-", color=COLORS.get(g),
            label=f"{LABELS.get(g, g)} (n={c['n']})" if label else None)
    ax.fill_between(x, lo, hi, color=COLORS.get(g), alpha=0.18, lw=0)


def _finish(fig, ax, path_stem, xlabel: str, ylabel: str, title: str) -> list[Path]:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=8)
    ax.legend(loc="best")
    return save_figure(fig, path_stem)


def plot_step_curves(curves: dict[str, dict], path_stem: str | Path, ylabel: str = "CAS (attention share)",
                     title: str = "Constraint attention over the generation") -> list[Path]:
    """Mean CAS per progress bin with 95% t-intervals across generations, one line per group (n in legend)."""
    fig, ax = new_figure("column", aspect=0.75)
    for g, c in curves.items():
        _band(ax, _progress(len(c["mean"])), c, g)
    ax.set_xlim(0, 100)
    return _finish(fig, ax, path_stem, "generation progress (%)", ylabel, title)


def plot_phase_curves(curves: dict[str, dict], path_stem: str | Path, ylabel: str = "CAS (attention share)",
                      title: str = "Constraint attention while thinking and while answering") -> list[Path]:
    """Phase-aligned curves (thinking progress, then answer progress), the phase boundary as a vertical line."""
    fig, ax = new_figure("column", aspect=0.75)
    nb = 1
    for g, c in curves.items():
        nb = int(c["boundary_bin"])
        x = _progress(len(c["mean"])) * 2
        for half in (slice(0, nb), slice(nb, None)):  # no line across the boundary: the phases are not contiguous
            _band(ax, x[half], c, g, half, label=half.start == 0)
    ax.axvline(100, color="0.3", lw=0.8, ls=":")
    ax.set_xlim(0, 200)
    ax.set_xticks([0, 50, 100, 150, 200], ["0", "50", "100 | 0", "50", "100"])
    return _finish(fig, ax, path_stem, f"thinking progress (%)  |  answer progress (%)   ({nb} bins each)",
                   ylabel, title)


def plot_distance_curves(curves: dict[str, dict], path_stem: str | Path, ylabel: str = "CAS (attention share)",
                         title: str = "Constraint attention by distance from the prompt") -> list[Path]:
    """Mean CAS per bin of generated-token distance from the end of the prompt, one line per group."""
    fig, ax = new_figure("column", aspect=0.75)
    for g, c in curves.items():
        _band(ax, np.asarray(c["x_tokens"], dtype=float), c, g)
    ax.set_xlim(0, None)
    return _finish(fig, ax, path_stem, "tokens generated since the end of the prompt", ylabel, title)


def plot_distributions(panels: dict[str, dict[str, np.ndarray]], path_stem: str | Path,
                       ylabel: str = "per-generation mean CAS", seed: int = 0) -> list[Path]:
    """One panel per entry (e.g. all heads, top heads): box + jittered points per group, n under each box."""
    k = len(panels)
    fig, axes = new_figure("full" if k > 1 else "column", aspect=0.42 if k > 1 else 0.8, ncols=k, squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, (name, groups) in zip(axes[0], panels.items()):
        names = [g for g in ("failed", "success", "reference") if g in groups and len(groups[g])]
        data = [np.asarray(groups[g], float) for g in names]
        bp = ax.boxplot(data, positions=np.arange(len(names)), widths=0.55, showfliers=False, patch_artist=True,
                        medianprops=dict(color="black", lw=0.9), whiskerprops=dict(lw=0.6), capprops=dict(lw=0.6),
                        boxprops=dict(lw=0.6))
        for patch, g in zip(bp["boxes"], names):
            patch.set_facecolor(COLORS[g])
            patch.set_alpha(0.25)
        for i, (g, v) in enumerate(zip(names, data)):
            ax.scatter(i + rng.uniform(-0.16, 0.16, len(v)), v, s=6, color=COLORS[g], alpha=0.8, lw=0, zorder=3)
        ax.set_xticks(np.arange(len(names)), [f"{SHORT[g]}\n(n={len(v)})" for g, v in zip(names, data)])
        ax.tick_params(axis="x", labelsize=6)
        ax.set_title(name, fontsize=8)
        ax.grid(axis="x", visible=False)
    axes[0][0].set_ylabel(ylabel)
    return save_figure(fig, path_stem)


def _show(t: str) -> str:
    return t if t.strip() else "␣" * max(1, len(t))


def _labels(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Row labels "step: token" and column labels "token (prompt position)"."""
    rows = [f"{s}: {_show(t)}" for s, t in df.index]
    cols = [f"{_show(t)} ({p})" for p, t in df.columns]
    return rows, cols


def _token_title(df: pd.DataFrame, title: str | None) -> str:
    return title or f"record {df.attrs.get('key')}"


def plot_token_attention(df: pd.DataFrame, path_stem: str | Path, title: str | None = None) -> list[Path]:
    """Generated tokens (rows) × constraint tokens (columns) attention heatmap from `token_attention`."""
    T, C = df.shape
    rows, cols = _labels(df)
    width = min(FULL_WIDTH, max(3.33, 1.9 + 0.13 * C))
    height = max(2.4, 1.3 + 0.085 * T)
    fig, ax = new_figure(width, aspect=height / width)
    im = ax.imshow(df.to_numpy(float), aspect="auto", cmap="viridis", interpolation="nearest", vmin=0)
    ax.grid(False)
    ax.set_xticks(np.arange(C), cols, rotation=90, fontsize=5)
    ax.set_yticks(np.arange(T), rows, fontsize=5)
    pos = np.asarray(df.columns.get_level_values(0))
    for i in np.nonzero(np.diff(pos) > 1)[0]:
        ax.axvline(i + 0.5, color="white", lw=1.2)  # gap between separate constraint parts
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.tick_params(length=1.5, pad=1)
    ax.set_xlabel(f"constraint token (prompt position), span {df.attrs.get('span')!r}", fontsize=7)
    ax.set_ylabel("generation step: generated token", fontsize=7)
    ax.set_title(f"{_token_title(df, title)} (n = {T} tokens)", fontsize=7)
    cb = fig.colorbar(im, ax=ax, pad=0.02, fraction=0.05, shrink=min(1.0, 3.0 / height))
    cb.set_label("attention weight", fontsize=6)
    cb.ax.tick_params(labelsize=5)
    return save_figure(fig, path_stem)


def token_attention_plotly(df: pd.DataFrame, title: str | None = None):
    """Interactive version of the token view (hover: generated token, constraint token, weight)."""
    import plotly.graph_objects as go

    rows, cols = _labels(df)
    fig = go.Figure(go.Heatmap(z=df.to_numpy(float), x=cols, y=rows, colorscale="Viridis", zmin=0,
                               colorbar=dict(title="attention weight"),
                               hovertemplate="generated %{y}<br>constraint %{x}<br>weight %{z:.4f}<extra></extra>"))
    fig.update_layout(template=plotly_template(), title=f"{_token_title(df, title)} (n = {len(rows)} tokens)",
                      xaxis=dict(title="constraint token (prompt position)", side="top", type="category"),
                      yaxis=dict(title="generation step: generated token", autorange="reversed", type="category"),
                      height=max(400, 16 * len(rows) + 200))
    return fig


def cell_heatmap_plotly(cells: pd.DataFrame, units: str = "CAS (attention share)"):
    """Interactive layer × head heatmap of failed − successful with p, BH p and means on hover."""
    import plotly.graph_objects as go

    diff = _grid(cells, "diff")
    lim = float(np.nanmax(np.abs(diff))) or 1e-9
    custom = np.stack([_grid(cells, c) for c in ("p", "p_bh", "mean_failed", "mean_success")], -1)
    sig = cells[cells["significant"]]
    fig = go.Figure(go.Heatmap(z=diff, zmin=-lim, zmax=lim, colorscale="RdBu_r", customdata=custom,
                               colorbar=dict(title=f"Δ mean {units}"),
                               hovertemplate="layer %{x} head %{y}<br>Δ %{z:.4f}<br>failed %{customdata[2]:.4f}, "
                                             "successful %{customdata[3]:.4f}<br>p %{customdata[0]:.2g}, "
                                             "BH p %{customdata[1]:.2g}<extra></extra>"))
    fig.add_trace(go.Scatter(x=sig["layer"], y=sig["head"], mode="markers", name="BH p < 0.05",
                             marker=dict(color="black", size=6, line=dict(color="white", width=1))))
    nf, ns = int(cells["n_failed"].iloc[0]), int(cells["n_success"].iloc[0])
    fig.update_layout(template=plotly_template(), xaxis_title="layer", yaxis_title="head",
                      title=f"Constraint attention, failed − successful (n = {nf} failed, {ns} successful)")
    return fig


def step_curves_plotly(curves: dict[str, dict], ylabel: str = "CAS (attention share)"):
    """Interactive step curves with CI bands."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for g, c in curves.items():
        mean, lo, hi = (np.asarray(c[k], dtype=float) for k in ("mean", "lo", "hi"))
        x = _progress(len(mean))
        col = COLORS.get(g, PALETTE[2])
        fig.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[hi, lo[::-1]], fill="toself", fillcolor=col,
                                 opacity=0.18, line=dict(width=0), hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=mean, name=f"{LABELS.get(g, g)} (n={c['n']})",
                                 line=dict(color=col, dash="dash" if g == "reference" else "solid")))
    fig.update_layout(template=plotly_template(), xaxis_title="generation progress (%)", yaxis_title=ylabel)
    return fig
