"""Activation-patching heatmap: per layer x span, the mean over items of the patch's effect with its CI."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InterpError
from .style import new_figure, save_figure


def patching_table(results: Sequence, answer: str = "correct", n_boot: int = 2000, seed: int = 0):
    """Mean effect (Δ log p(answer), patched minus the run that was patched) per (layer, span) over items, with a
    percentile-bootstrap 95% CI over items: (mean, lo, hi) arrays ``[L, S]`` and n."""
    if not results:
        raise InterpError("patching_table: no results")
    r0 = results[0]
    for r in results:
        if (r.layers, r.spans, r.direction, r.hook) != (r0.layers, r0.spans, r0.direction, r0.hook):
            raise InterpError("patching_table: results differ in layers/spans/direction/hook; plot them separately")
    if answer not in r0.answers:
        raise InterpError(f"answer {answer!r} not in the results (have {r0.answers})")
    a = r0.answers.index(answer)
    eff = np.stack([r.effect()[a] for r in results])  # [n, L, S]
    rng = np.random.default_rng(seed)
    boots = eff[rng.integers(0, len(eff), (n_boot, len(eff)))].mean(1)
    return eff.mean(0), np.percentile(boots, 2.5, 0), np.percentile(boots, 97.5, 0), len(eff)


def plot_patching_heatmap(results: Sequence, path_stem: str | Path, answer: str = "correct") -> list[Path]:
    """Layer x span heatmap of the mean Δ log p(`answer`) (diverging, centred on 0); each cell annotated with the
    mean and marked * where the bootstrap 95% CI over items excludes 0. PNG + PDF."""
    from matplotlib.colors import TwoSlopeNorm

    mean, lo, hi, n = patching_table(results, answer)
    r0 = results[0]
    L, S = mean.shape
    lim = float(np.nanmax(np.abs(mean))) or 1.0
    fig, ax = new_figure("column", aspect=max(0.6, 0.09 * L + 0.3))
    im = ax.imshow(mean, aspect="auto", cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -lim, lim), interpolation="nearest")
    for i in range(L):
        for j in range(S):
            sig = "*" if lo[i, j] > 0 or hi[i, j] < 0 else ""
            ax.text(j, i, f"{mean[i, j]:+.2f}{sig}", ha="center", va="center", fontsize=5)
    ax.set_xticks(range(S), r0.spans)
    ax.set_yticks(range(L), [str(x) for x in r0.layers])
    ax.set_xlabel("span")
    ax.set_ylabel(f"layer ({r0.hook})")
    ax.grid(False)
    ax.set_title(f"{r0.direction}: Δ log p({answer}), mean over n={n} items (* 95% CI excludes 0)", fontsize=6)
    fig.colorbar(im, ax=ax, label="Δ sum log p", shrink=0.8)
    return save_figure(fig, path_stem)
