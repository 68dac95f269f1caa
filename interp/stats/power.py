"""Sample sizes for planned comparisons (normal approximations), used to pre-register a study's n per arm.

Each function returns the number of units (items, generations or pairs) a two-sided test at level `alpha`
needs for the given `power` against the stated effect, or `inf` when the effect is zero.
"""
from __future__ import annotations

import math

from scipy import stats as sps


def _z(alpha: float, power: float) -> tuple[float, float]:
    return float(sps.norm.ppf(1 - alpha / 2)), float(sps.norm.ppf(power))


def n_two_proportions(p1: float, p0: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Units per arm for a two-proportion z-test of p1 vs p0 (independent arms)."""
    if not (math.isfinite(p1) and math.isfinite(p0)) or p1 == p0:
        return math.inf
    za, zb = _z(alpha, power)
    pb = (p1 + p0) / 2
    num = (za * math.sqrt(2 * pb * (1 - pb)) + zb * math.sqrt(p1 * (1 - p1) + p0 * (1 - p0))) ** 2
    return math.ceil(num / (p1 - p0) ** 2)


def n_paired_proportions(p1: float, p0: float, discordant: float | None = None, alpha: float = 0.05,
                         power: float = 0.8) -> float:
    """Pairs for McNemar's test of p1 vs p0 measured on the same units (Connor 1987).

    `discordant` is the share of pairs whose outcomes differ; None assumes independent outcomes within a
    pair, p1(1-p0) + p0(1-p1), which is the conservative choice when the correlation is unknown.
    """
    d = p1 - p0
    if d == 0:
        return math.inf
    pd_ = discordant if discordant is not None else p1 * (1 - p0) + p0 * (1 - p1)
    if pd_ < d * d or pd_ <= 0:
        raise ValueError(f"discordant share {pd_} is impossible for a difference of {d}")
    za, zb = _z(alpha, power)
    return math.ceil((za * math.sqrt(pd_) + zb * math.sqrt(pd_ - d * d)) ** 2 / (d * d))


def n_two_means(d: float, alpha: float = 0.05, power: float = 0.8, rank_test: bool = True) -> float:
    """Units per group to detect a standardised difference `d` (Cohen's d) between two independent groups.

    With `rank_test` the t-test size is inflated by the Mann-Whitney asymptotic relative efficiency bound
    for normal data (pi/3), the test the CAS comparison uses.
    """
    if d == 0:
        return math.inf
    za, zb = _z(alpha, power)
    n = 2 * (za + zb) ** 2 / (d * d)
    return math.ceil(n * (math.pi / 3 if rank_test else 1.0))


def n_paired_mean(d: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Pairs to detect a mean paired difference of `d` standard deviations of the differences."""
    if d == 0:
        return math.inf
    za, zb = _z(alpha, power)
    return math.ceil((za + zb) ** 2 / (d * d))


def n_slope_binary(slope: float, p: float, x_values: list[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """Observations in total (spread evenly over `x_values`) to detect a linear-probability slope `slope`.

    Var(slope) = p(1-p) / (n Var(x)) for a binary outcome with mean `p` (Wald test of the OLS slope).
    """
    if slope == 0:
        return math.inf
    m = sum(x_values) / len(x_values)
    var_x = sum((x - m) ** 2 for x in x_values) / len(x_values)
    za, zb = _z(alpha, power)
    return math.ceil(p * (1 - p) * ((za + zb) / slope) ** 2 / var_x)
