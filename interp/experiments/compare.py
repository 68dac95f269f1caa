"""Model comparison (e.g. base / SFT / RL checkpoints): same task and items, one table, paired statistics."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InterpError
from ..stats import paired_bootstrap_diff, proportion
from .config import SustainConfig, load_config_file
from .report import load_run


MIN_PAIRED_ITEMS = 5  # fewer common items than this: no bootstrap CI (it would be meaninglessly narrow)


def comparison_tables(run_dirs: dict[str, Path]) -> dict[str, pd.DataFrame]:
    """Per-model baseline accuracy and SustainScore (K=1), and paired differences against the first model.

    Paired differences use items solved at baseline by both models; an item's value is the mean success
    over its single-constraint conditions (each model's own self-evident constraints).
    """
    rows, per_item, base_item = [], {}, {}
    for label, d in run_dirs.items():
        runs = load_run(d)
        base, con = runs["baseline"], runs["constrained"]
        solved = base.groupby("item_id")["success"].max()
        single = con[con["condition_kind"] == "single"] if len(con) else con
        b = proportion(int(solved.sum()), len(solved))
        s = proportion(int(single["success"].sum()), len(single)) if len(single) else proportion(0, 0)
        rows.append({"model": label, "baseline_acc": b.p, "baseline_n": b.n, "score": s.p, "lo": s.lo, "hi": s.hi,
                     "n_success": s.k, "n": s.n})
        per_item[label] = single.groupby("item_id")["success"].mean() if len(single) else pd.Series(dtype=float)
        base_item[label] = solved.astype(float)
    table = pd.DataFrame(rows)
    labels = list(run_dirs)
    diffs = []
    for other in labels[1:]:
        ref = labels[0]
        common = per_item[ref].index.intersection(per_item[other].index)
        if len(common) >= MIN_PAIRED_ITEMS:
            d, lo, hi = paired_bootstrap_diff(per_item[other][common].to_numpy(), per_item[ref][common].to_numpy(),
                                              n_boot=5000)
        else:
            d = lo = hi = np.nan
        bc = base_item[ref].index.intersection(base_item[other].index)
        bd, blo, bhi = paired_bootstrap_diff(base_item[other][bc].to_numpy(), base_item[ref][bc].to_numpy(),
                                             n_boot=5000) if len(bc) >= MIN_PAIRED_ITEMS else (np.nan, np.nan, np.nan)
        diffs.append({"comparison": f"{other} - {ref}", "sustain_diff": d, "lo": lo, "hi": hi,
                      "n_common_items": int(len(common)), "baseline_diff": bd, "baseline_lo": blo,
                      "baseline_hi": bhi, "n_items": int(len(bc))})
    return {"models": table, "paired": pd.DataFrame(diffs)}


def run_comparison(config: str | Path | dict, out: str | Path, model_cache: dict | None = None,
                   progress: bool = True) -> dict:
    """Run every model of `config["models"]` ([{label, model}]) with the shared SustainConfig fields."""
    from ..plots.sustain import plot_model_comparison
    from .report import _md_table
    from .sustain import SustainRun

    d = dict(config) if isinstance(config, dict) else load_config_file(config)
    models = d.pop("models", None)
    if not isinstance(models, list) or not all(isinstance(m, dict) and {"label", "model"} <= set(m) for m in models):
        raise InterpError("a comparison config needs `models: [{label, model}, ...]`")
    out = Path(out)
    dirs = {}
    for m in models:
        cfg = SustainConfig.from_dict({**d, "model": m["model"], "label": m["label"]})
        dirs[m["label"]] = out / m["label"]
        SustainRun(cfg, dirs[m["label"]], model=(model_cache or {}).get(m["model"]), progress=progress).run()
    tables = comparison_tables(dirs)
    figs = [str(p) for p in plot_model_comparison(tables["models"], out / "figures" / "model_comparison")]
    rep = {"tables": {k: json.loads(v.to_json(orient="records")) for k, v in tables.items()}, "figures": figs,
           "report": str(out / "comparison.md")}
    (out / "comparison.json").write_text(json.dumps(rep, indent=2))
    (out / "comparison.md").write_text("# Model comparison\n\n## SustainScore (K=1) per model\n\n"
                                       + _md_table(tables["models"]) + "\n## Paired differences vs "
                                       + f"{models[0]['label']} (bootstrap over common items)\n\n"
                                       + _md_table(tables["paired"]) + "\n![comparison](figures/model_comparison.png)\n")
    return rep
