"""SustainScore (K=1) by model × domain, with baseline accuracy: one bar per (model, task)."""
from __future__ import annotations

import pandas as pd

from interp.experiments.report import load_run, sustain_tables
from interp.plots.sustain import plot_by_model_domain

from .common import Context, main


def run(ctx: Context) -> None:
    """SustainScore by model and domain (table + bar figure)."""
    rows = []
    for entry in ctx.models():
        for task, d in ctx.runs(entry).items():
            runs = load_run(d)
            t = sustain_tables(runs)
            if "overall" not in t:
                continue
            k1, b = t["overall"].iloc[0], t["baseline"].iloc[0]
            rows.append({"model": ctx.label(entry), "domain": runs["baseline"]["domain"].iloc[0], "task": task,
                         "baseline_acc": b["score"], "baseline_n": b["n"], "score": k1["score"], "lo": k1["lo"],
                         "hi": k1["hi"], "n_success": k1["n_success"], "n": k1["n"], "n_items": k1["n_items"]})
    df = pd.DataFrame(rows)
    ctx.table(df, "sustain_by_model_domain")
    if len(df):
        ctx.figure(plot_by_model_domain(df, ctx.path("sustain_by_model_domain")))


if __name__ == "__main__":
    main(run, __file__)
