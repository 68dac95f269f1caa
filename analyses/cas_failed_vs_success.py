"""Constraint Attention Score of failed vs successful constrained generations: heatmap, layers, curves, tokens."""
from __future__ import annotations

import pandas as pd

from interp.attention.analysis import cas_report

from .common import Context, main


def run(ctx: Context) -> None:
    """CAS failed vs successful per model and CAS task (summary table, cell table, report figures)."""
    opts = ctx.section("cas")
    rows, cells = [], []
    for entry in ctx.models():
        label = ctx.label(entry)
        for task, d in ctx.runs(entry, ctx.tasks("cas")).items():
            res = cas_report(d, span=opts.get("span", "constraints"), normalisation=opts.get("normalisation", "raw"),
                             reference=opts.get("reference", True), n_boot=opts.get("n_boot", 1000),
                             model=ctx.model(ctx.sustain_config(entry, task)))
            s = res["summary"]
            rows.append({"model": label, "task": task, **{k: s[k] for k in (
                "n_failed", "n_success", "mean_cas_failed", "mean_cas_success", "aggregate_diff", "aggregate_p",
                "n_significant_cells", "reference_mean")},
                "diff_lo": (s["aggregate_diff_ci"] or [None, None])[0],
                "diff_hi": (s["aggregate_diff_ci"] or [None, None])[1]})
            cells.append(pd.read_csv(d / "cas_cells.csv").assign(model=label, task=task))
            for name, paths in res["figures"].items():
                ctx.copy_figures([d / p for p in paths], f"cas_{name}-{label}-{task}")
    ctx.table(pd.DataFrame(rows), "cas_failed_vs_success")
    ctx.table(pd.concat(cells, ignore_index=True) if cells else pd.DataFrame(), "cas_cells")


if __name__ == "__main__":
    main(run, __file__)
