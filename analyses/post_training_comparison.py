"""Model comparison (e.g. base / SFT / RL checkpoints of one family): SustainScore per model, paired differences."""
from __future__ import annotations

import pandas as pd

from interp.experiments.compare import comparison_tables
from interp.plots.sustain import plot_model_comparison

from .common import Context, main


def run(ctx: Context) -> None:
    """SustainScore of the `comparison` models on each comparison task (tables + bar figure per task)."""
    models, paired = [], []
    for task in ctx.tasks("comparison"):
        dirs = {ctx.label(e): ctx.run(e, task) for e in ctx.models("comparison")}
        dirs = {k: v for k, v in dirs.items() if v is not None}
        if not dirs:
            continue
        t = comparison_tables(dirs)
        models.append(t["models"].assign(task=task))
        paired.append(t["paired"].assign(task=task))
        ctx.figure(plot_model_comparison(t["models"], ctx.path(f"post_training_comparison-{task}")))
    ctx.table(pd.concat(models, ignore_index=True) if models else pd.DataFrame(), "post_training_comparison")
    ctx.table(pd.concat(paired, ignore_index=True) if paired else pd.DataFrame(), "post_training_paired")


if __name__ == "__main__":
    main(run, __file__)
