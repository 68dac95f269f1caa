"""Proportions (SustainScore, success rates) with honest intervals: Wilson CIs and item-level bootstraps."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..errors import InterpError

Stat = Callable[..., np.ndarray]


def _z(conf: float) -> float:
    if not 0 < conf < 1:
        raise InterpError(f"confidence level must lie in (0, 1), got {conf}")
    return float(sps.norm.ppf(0.5 + conf / 2))


def wilson_ci(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials; (nan, nan) when n == 0.

    Unlike the Wald interval it stays inside [0, 1] and keeps its coverage at k = 0 or k = n.
    """
    if n < 0 or k < 0 or k > n:
        raise InterpError(f"need 0 <= k <= n for a proportion, got k={k}, n={n}")
    if n == 0:
        return (math.nan, math.nan)
    z = _z(conf)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (0.0 if k == 0 else centre - half, 1.0 if k == n else centre + half)


@dataclass(frozen=True)
class Proportion:
    """k of n with its point estimate p and Wilson interval [lo, hi] (all nan when n == 0)."""

    k: int
    n: int
    p: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.p:.3f} [{self.lo:.3f}, {self.hi:.3f}] ({self.k}/{self.n})"


def proportion(k: int, n: int, conf: float = 0.95) -> Proportion:
    """A Proportion with its Wilson interval."""
    k, n = int(k), int(n)
    lo, hi = wilson_ci(k, n, conf)
    return Proportion(k, n, k / n if n else math.nan, lo, hi)


def sustain_score(baseline_success, constrained_success, conf: float = 0.95) -> Proportion:
    """SustainScore: share of baseline-solved items still solved with the constraint added.

    Both arguments are per-item booleans aligned by item; items the baseline failed are ignored,
    so the denominator is the number of baseline successes.
    """
    b = np.asarray(baseline_success, dtype=bool).ravel()
    c = np.asarray(constrained_success, dtype=bool).ravel()
    if b.shape != c.shape:
        raise InterpError(
            f"baseline and constrained results must be aligned by item, got {b.size} and {c.size} items"
        )
    n = int(b.sum())
    if n == 0:
        raise InterpError(
            f"no baseline successes: SustainScore is undefined (0 of {b.size} items solved without the "
            "constraint); use more items or an easier task/stronger model"
        )
    return proportion(int((b & c).sum()), n, conf)


def _apply_stat(stat: Stat, x: np.ndarray) -> np.ndarray:
    """stat over axis 1 of a (n_boot, n, ...) array; vectorised when stat takes `axis`."""
    try:
        return np.asarray(stat(x, axis=1))
    except TypeError:
        return np.array([stat(row) for row in x])


def _percentile_ci(boots: np.ndarray, conf: float) -> tuple[float, float]:
    a = (1 - conf) / 2
    lo, hi = np.nanquantile(boots, [a, 1 - a], axis=0)
    return float(lo), float(hi)


def bootstrap_ci(
    x, stat: Stat = np.mean, n_boot: int = 10000, seed: int = 0, conf: float = 0.95
) -> tuple[float, float, float]:
    """(stat(x), lo, hi): percentile bootstrap over the entries of x (independent units, e.g. items)."""
    x = np.asarray(x, dtype=float)
    if x.shape[0] == 0:
        return (math.nan, math.nan, math.nan)
    idx = np.random.default_rng(seed).integers(0, x.shape[0], size=(n_boot, x.shape[0]))
    return (float(stat(x)), *_percentile_ci(_apply_stat(stat, x[idx]), conf))


def paired_bootstrap_diff(
    a, b, n_boot: int = 10000, seed: int = 0, stat: Stat = np.mean, conf: float = 0.95
) -> tuple[float, float, float]:
    """(stat(a) - stat(b), lo, hi) for outcomes of two models/conditions on the same items.

    Items are resampled jointly, so the pairing (item difficulty shared by a and b) narrows the
    interval exactly as much as it should.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise InterpError(f"paired outcomes must be aligned by item, got shapes {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        return (math.nan, math.nan, math.nan)
    idx = np.random.default_rng(seed).integers(0, a.shape[0], size=(n_boot, a.shape[0]))
    boots = _apply_stat(stat, a[idx]) - _apply_stat(stat, b[idx])
    return (float(stat(a) - stat(b)), *_percentile_ci(boots, conf))


@dataclass(frozen=True)
class ItemRates:
    """Per-item success rates over seeds and their item-weighted mean with a cluster-bootstrap CI."""

    rates: pd.Series
    mean: float
    lo: float
    hi: float
    n_items: int
    n_obs: int

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.lo:.3f}, {self.hi:.3f}] ({self.n_items} items, {self.n_obs} runs)"


def per_item_rates(
    df: pd.DataFrame, item_col: str, success_col: str, n_boot: int = 10000, seed: int = 0, conf: float = 0.95
) -> ItemRates:
    """Success rate per item over repeated runs (seeds), and their mean with a CI clustered by item.

    Estimator: r_i = mean of the runs of item i; the estimate is mean_i r_i, so every item weighs the
    same however many seeds it has. The CI is a percentile bootstrap that resamples items (whole
    clusters of runs), because runs of one item are correlated and are not independent trials;
    a Wilson CI over all runs would be too narrow.
    """
    missing = [c for c in (item_col, success_col) if c not in df.columns]
    if missing:
        raise InterpError(f"columns {missing} not in the results table (has {list(df.columns)})")
    rates = df.groupby(item_col, sort=True)[success_col].agg(lambda s: s.astype(float).mean())
    mean, lo, hi = bootstrap_ci(rates.to_numpy(), np.mean, n_boot, seed, conf)
    return ItemRates(rates.rename("rate"), mean, lo, hi, int(rates.size), int(len(df)))
