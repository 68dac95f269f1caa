"""SustainScore against the number of simultaneous constraints K (tasks pooled): one figure per model."""
from __future__ import annotations

import pandas as pd

from interp.plots.sustain import plot_scaling

from .common import Context, main


def run(ctx: Context) -> None:
    """Constraint-count scaling per model (table + curve each)."""
    rows = []
    for label, t in ctx.per_model_tables("scaling"):
        rows.append(t["scaling"].assign(model=label))
        ctx.figure(plot_scaling(t["scaling"], ctx.path(f"constraint_scaling-{label}")))
    ctx.table(pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(), "constraint_scaling")


if __name__ == "__main__":
    main(run, __file__)
