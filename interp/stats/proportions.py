"""Proportions (SustainScore, success rates) with honest intervals: Wilson CIs and item-level bootstraps."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..errors import InterpError

Stat = Callable[..., np.ndarray]


MIN_N_INTERVAL = 3
"""Fewest independent units for which a report prints an interval; smaller groups are flagged instead.

With one or two units a bootstrap has at most 1 or 3 distinct resamples and its "interval" is an
artefact (zero width at n = 1), so the bootstrap helpers here return nan bounds below this size."""


def _check_conf(conf: float) -> None:
    if not 0 < conf < 1:
        raise InterpError(f"confidence level must lie in (0, 1), got {conf}")


def wilson_ci(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (scipy's `binomtest(...).proportion_ci`); nan at n == 0.

    Unlike the Wald interval it stays inside [0, 1] and keeps its coverage at k = 0 or k = n.
    """
    if n < 0 or k < 0 or k > n:
        raise InterpError(f"need 0 <= k <= n for a proportion, got k={k}, n={n}")
    _check_conf(conf)
    if n == 0:
        return (math.nan, math.nan)
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=conf, method="wilson")
    return (0.0 if k == 0 else float(ci.low), 1.0 if k == n else float(ci.high))


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


def _takes_axis(stat: Stat, *samples: np.ndarray) -> bool:
    """Whether `stat` accepts `axis=` (then scipy calls it once per batch of resamples)."""
    try:
        stat(*(x[None, :2] for x in samples), axis=-1)
        return True
    except TypeError:
        return False


def _scipy_ci(samples: tuple[np.ndarray, ...], stat: Stat, n_boot: int, seed: int, conf: float,
              paired: bool = False) -> tuple[float, float]:
    """scipy.stats.bootstrap interval: BCa, or percentile where BCa is undefined (e.g. constant data)."""
    _check_conf(conf)
    if n_boot < 1:
        raise InterpError(f"n_boot must be >= 1, got {n_boot}")
    kw = dict(n_resamples=n_boot, confidence_level=conf, paired=paired, vectorized=_takes_axis(stat, *samples))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa on degenerate data warns, then returns nan: handled below
        ci = sps.bootstrap(samples, stat, method="BCa", rng=np.random.default_rng(seed), **kw).confidence_interval
        if not (np.isfinite(ci.low) and np.isfinite(ci.high)):
            ci = sps.bootstrap(samples, stat, method="percentile", rng=np.random.default_rng(seed),
                               **kw).confidence_interval
    return float(ci.low), float(ci.high)


def bootstrap_ci(
    x, stat: Stat = np.mean, n_boot: int = 10000, seed: int = 0, conf: float = 0.95
) -> tuple[float, float, float]:
    """(stat(x), lo, hi): BCa bootstrap (scipy) over the entries of x (independent units, e.g. items).

    nan bounds with fewer than MIN_N_INTERVAL entries; all nan for an empty x.
    """
    x = np.asarray(x, dtype=float)
    if x.shape[0] == 0:
        return (math.nan, math.nan, math.nan)
    est = float(stat(x))
    if x.shape[0] < MIN_N_INTERVAL:
        return (est, math.nan, math.nan)
    return (est, *_scipy_ci((x,), stat, n_boot, seed, conf))


def paired_bootstrap_diff(
    a, b, n_boot: int = 10000, seed: int = 0, stat: Stat = np.mean, conf: float = 0.95
) -> tuple[float, float, float]:
    """(stat(a) - stat(b), lo, hi) for outcomes of two models/conditions on the same items (BCa, scipy).

    Items are resampled jointly (`paired=True`), so the pairing (item difficulty shared by a and b)
    narrows the interval exactly as much as it should. nan bounds with fewer than MIN_N_INTERVAL items.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise InterpError(f"paired outcomes must be aligned by item, got shapes {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        return (math.nan, math.nan, math.nan)
    est = float(stat(a) - stat(b))
    if a.shape[0] < MIN_N_INTERVAL:
        return (est, math.nan, math.nan)
    if _takes_axis(stat, a):
        def diff(x, y, axis=-1):
            return stat(x, axis=axis) - stat(y, axis=axis)
    else:
        def diff(x, y):  # type: ignore[misc]
            return stat(x) - stat(y)
    return (est, *_scipy_ci((a, b), diff, n_boot, seed, conf, paired=True))


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
    same however many seeds it has. The CI is a BCa bootstrap that resamples items (whole
    clusters of runs), because runs of one item are correlated and are not independent trials;
    a Wilson CI over all runs would be too narrow.
    """
    missing = [c for c in (item_col, success_col) if c not in df.columns]
    if missing:
        raise InterpError(f"columns {missing} not in the results table (has {list(df.columns)})")
    rates = df.groupby(item_col, sort=True)[success_col].agg(lambda s: s.astype(float).mean())
    mean, lo, hi = bootstrap_ci(rates.to_numpy(), np.mean, n_boot, seed, conf)
    return ItemRates(rates.rename("rate"), mean, lo, hi, int(rates.size), int(len(df)))
