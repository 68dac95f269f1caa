"""Pre-registration power table of the 135M study: `python -m analyses.study_power --config analyses/configs/study_135m.yaml`.

Reads the `pilot` section of the study config (numbers measured before the study) and writes, per hypothesis,
the units a two-sided test at alpha = 0.05 needs for 80% power next to the units the config is expected to
yield, to `<out>/tables/study_power.csv`; prints the same as a Markdown table (pasted into STUDY.md).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from interp.experiments.config import load_config_file
from interp.stats.power import (n_paired_mean, n_paired_proportions, n_slope_binary, n_two_means,
                                n_two_proportions)

SESOI = 0.2  # smallest effect of interest (difference in rates) where the pilot difference is 0 or reversed
CONDITIONS_PER_ITEM = 5  # hard single-constraint conditions per baseline-solved item (pilot mean)


def _sd_from_ci(diff_ci: list[float], n: list[int]) -> float:
    """Per-generation SD implied by a normal 95% CI of a difference of two means with group sizes n."""
    se = (diff_ci[1] - diff_ci[0]) / (2 * 1.959963984540054)
    return se / math.sqrt(1 / n[0] + 1 / n[1])


def power_table(cfg: dict) -> pd.DataFrame:
    """One row per planned test: hypothesis, comparison, effect assumed, units needed, units expected."""
    p = cfg["pilot"]
    sus, abl = cfg["sustain"], cfg["ablation"]
    tasks = list(cfg["tasks"])
    solved = sum(sus["n_items"] * p["baseline_acc"][t] for t in tasks)
    fail_rate = 1 - p["h1_constrained"]
    gens = solved * CONDITIONS_PER_ITEM
    abl_items = abl["max_items"] * len(abl["tasks"])
    # pilot ablation yield: 12 failures and 6 successes from 3 items
    abl_fail, abl_succ = abl_items * 4, abl_items * 2
    sd = _sd_from_ci(p["h2_ci"], p["h2_n"])
    rows = []

    def add(h, comparison, unit, effect, need, expect):
        rows.append({"hypothesis": h, "comparison": comparison, "unit": unit, "assumed_effect": effect,
                     "n_needed": need, "n_expected": round(expect), "powered": bool(expect >= need)})

    for ctl in ("neutral", "paraphrase"):
        pc = p[f"h1_{ctl}"]
        add("H1", f"constrained vs {ctl} control (paired, McNemar)", "baseline-solved items",
            round(p["h1_constrained"] - pc, 3), n_paired_proportions(p["h1_constrained"], pc), solved)
    add("H2", "CAS failed vs successful (Mann-Whitney, aggregate)", "generations per group",
        f"d={p['h2_diff'] / sd:.2f}", n_two_means(p["h2_diff"] / sd),
        min(gens * fail_rate, gens * (1 - fail_rate)))
    for ctl, pc in p["h3_controls"].items():
        add("H3", f"rescue: damp constraints vs {ctl}", "failures per arm", round(p["h3_rescue"] - pc, 3),
            n_two_proportions(p["h3_rescue"], pc), abl_fail)
    for ctl, pc in p["h4_controls"].items():
        eff = p["h4_induce"] - pc
        need = n_two_proportions(p["h4_induce"], pc) if eff >= SESOI else n_two_proportions(p["h4_induce"], p["h4_induce"] - SESOI)
        add("H4", f"induce: boost constraints vs {ctl}" + ("" if eff >= SESOI else f" (SESOI {SESOI})"),
            "successes per arm", round(eff, 3), need, abl_succ)
    ks = sorted(int(k) for k in p["h5_by_k"])
    slope = (p["h5_by_k"][ks[-1]] - p["h5_by_k"][ks[0]]) / (ks[-1] - ks[0])
    add("H5", "SustainScore slope over K (linear probability)", "constrained generations over K",
        round(slope, 4), n_slope_binary(slope, p["h1_constrained"], [float(k) for k in ks]), solved * len(ks))
    d6 = (p["h6_failed"] - p["h6_reference"]) / sd
    add("H6", "CAS failed vs teacher-forced reference (paired)", "failed generations", f"d={d6:.2f}",
        n_paired_mean(d6), gens * fail_rate)
    return pd.DataFrame(rows)


def main(argv=None) -> pd.DataFrame:
    a = argparse.ArgumentParser(prog="python -m analyses.study_power", description=__doc__.splitlines()[0])
    a.add_argument("--config", default="analyses/configs/study_135m.yaml")
    args = a.parse_args(argv)
    cfg = load_config_file(args.config)
    df = power_table(cfg)
    out = Path(cfg.get("out", "figures")) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "study_power.csv", index=False)
    print(df.to_markdown(index=False))
    return df


if __name__ == "__main__":
    main()
