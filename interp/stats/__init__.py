"""Statistics for SustainScore and failed-vs-successful CAS comparisons."""
from .compare import (
    Effect,
    aggregate_effect,
    benjamini_hochberg,
    curve_with_ci,
    mann_whitney_by_cell,
    step_curves,
)
from .proportions import (
    MIN_N_INTERVAL,
    ItemRates,
    Proportion,
    bootstrap_ci,
    paired_bootstrap_diff,
    per_item_rates,
    proportion,
    sustain_score,
    wilson_ci,
)

__all__ = [
    "Effect", "ItemRates", "MIN_N_INTERVAL", "Proportion", "aggregate_effect", "benjamini_hochberg", "bootstrap_ci",
    "curve_with_ci", "mann_whitney_by_cell", "paired_bootstrap_diff", "per_item_rates", "proportion",
    "step_curves", "sustain_score", "wilson_ci",
]
