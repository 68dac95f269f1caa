"""SustainScore by constraint type (K=1, tasks pooled), with the controls: one figure per model."""
from __future__ import annotations

import pandas as pd

from interp.plots.sustain import plot_by_type

from .common import Context, main


def run(ctx: Context) -> None:
    """SustainScore by constraint type per model (table + bar figure each)."""
    rows = []
    for label, t in ctx.per_model_tables("overall"):
        ctrl = t["overall"][t["overall"]["group"].str.startswith("control")].assign(hardness="control")
        rows.append(pd.concat([t["by_type"], ctrl], ignore_index=True).assign(model=label))
        ctx.figure(plot_by_type(t["by_type"], t["overall"], ctx.path(f"sustain_by_type-{label}")))
    ctx.table(pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(), "sustain_by_type")


if __name__ == "__main__":
    main(run, __file__)
