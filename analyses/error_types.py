"""Failure analysis: reasoning vs output-specification errors per constraint type (tasks pooled), per model."""
from __future__ import annotations

import pandas as pd

from interp.plots.sustain import plot_error_types

from .common import Context, main


def run(ctx: Context) -> None:
    """Error types of constrained failures per model (counts table + stacked bars each)."""
    rows = []
    for label, t in ctx.per_model_tables("errors"):
        rows.append(t["errors"].assign(model=label))
        ctx.figure(plot_error_types(t["errors"], ctx.path(f"error_types-{label}")))
    ctx.table(pd.concat(rows, ignore_index=True).fillna(0) if rows else pd.DataFrame(), "error_types")


if __name__ == "__main__":
    main(run, __file__)
