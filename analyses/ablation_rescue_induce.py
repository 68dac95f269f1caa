"""Causal ablations of constraint attention: rescue failures by damping it, induce failures by boosting it."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from interp.interventions.experiments import AblationConfig, run_ablation

from .common import Context, main


def run(ctx: Context) -> None:
    """Rescue/induce rates against controls, head sweep and attribution per model (tables + figures)."""
    opts = ctx.section("ablation")
    opts.pop("tasks", None)
    acfg = AblationConfig(**opts)
    summary, comps = [], []
    for entry in ctx.models():
        label = ctx.label(entry)
        for task, d in ctx.runs(entry, ctx.tasks("ablation")).items():
            res = run_ablation(d, acfg, model=ctx.model(ctx.sustain_config(entry, task)), log=ctx.log)
            summary.append(res["summary"].assign(model=label, task=task))
            comps.append(res["comparisons"].assign(model=label, task=task))
            for stem in sorted({Path(f).with_suffix("") for f in res["figures"]}):
                ctx.copy_figures([f for f in map(Path, res["figures"]) if f.with_suffix("") == stem],
                                 f"{stem.name}-{label}-{task}")
    ctx.table(pd.concat(summary, ignore_index=True) if summary else pd.DataFrame(), "ablation_rescue_induce")
    ctx.table(pd.concat(comps, ignore_index=True) if comps else pd.DataFrame(), "ablation_paired")


if __name__ == "__main__":
    main(run, __file__)
