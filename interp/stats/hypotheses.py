"""Pre-registered hypothesis tests and their verdicts (STUDY.md): paired rate differences with McNemar's exact
test, a K-slope clustered by item, and the supported / not supported / inconclusive decision rule.

Decision rule (two-sided tests, alpha 0.05): *supported* when the test rejects and the estimate lies in the
predicted direction; *not supported* when the test rejects in the opposite direction, or when the CI excludes
the smallest effect of interest (SESOI) in the predicted direction; *inconclusive* otherwise. For a hypothesis
of "a difference" (direction 0) it is *not supported* when the CI lies inside (-SESOI, SESOI).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import optimize
from scipy import stats as sps

from ..errors import InterpError
from .proportions import MIN_N_INTERVAL, paired_bootstrap_diff

VerdictName = Literal["supported", "not supported", "inconclusive", "not run"]


@dataclass(frozen=True)
class Verdict:
    """One planned comparison: the estimate, its CI and p, the n behind it and the pre-registered verdict."""

    hypothesis: str
    comparison: str
    unit: str
    n: int
    effect: float
    lo: float
    hi: float
    p: float
    test: str
    direction: int
    sesoi: float
    verdict: VerdictName

    def to_dict(self) -> dict:
        return asdict(self)


def decide(effect: float, lo: float, hi: float, p: float, direction: int, sesoi: float,
           alpha: float = 0.05) -> VerdictName:
    """The pre-registered verdict of one test (see the module docstring); NaN estimates are inconclusive."""
    if direction not in (-1, 0, 1):
        raise InterpError(f"direction must be -1, 0 or +1, got {direction}")
    if any(math.isnan(x) for x in (effect, p)):
        return "inconclusive"
    rejects = p < alpha
    if direction == 0:
        if rejects:
            return "supported"
        return "not supported" if (not math.isnan(lo) and -sesoi < lo and hi < sesoi) else "inconclusive"
    if rejects:
        return "supported" if effect * direction > 0 else "not supported"
    if not math.isnan(lo) and (hi < sesoi if direction > 0 else lo > -sesoi):
        return "not supported"
    return "inconclusive"


def verdict(hypothesis: str, comparison: str, unit: str, n: int, effect: float, lo: float, hi: float, p: float,
            test: str, direction: int, sesoi: float, alpha: float = 0.05) -> Verdict:
    return Verdict(hypothesis, comparison, unit, int(n), float(effect), float(lo), float(hi), float(p), test,
                   direction, float(sesoi), decide(effect, lo, hi, p, direction, sesoi, alpha))


def mcnemar_exact(a, b) -> float:
    """Two-sided exact McNemar p of paired binary outcomes `a` vs `b` (binomial test on the discordant pairs)."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise InterpError(f"paired outcomes must align, got shapes {a.shape} and {b.shape}")
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    if n10 + n01 == 0:
        return 1.0
    return float(sps.binomtest(n10, n10 + n01, 0.5).pvalue)


def paired_rate_test(a, b, n_boot: int = 10000, seed: int = 0) -> tuple[float, float, float, float]:
    """(mean(a) - mean(b), lo, hi, McNemar p) for per-unit outcomes in [0, 1] of two paired conditions.

    The CI is the paired BCa bootstrap over units; McNemar runs on each unit's majority outcome
    (rate >= 0.5 counts as a success, which is conservative for a predicted drop of `a`).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    diff, lo, hi = paired_bootstrap_diff(a, b, n_boot=n_boot, seed=seed)
    return diff, lo, hi, mcnemar_exact(a >= 0.5, b >= 0.5)


def _logistic_slope(x: np.ndarray, y: np.ndarray) -> float:
    def nll(w):
        z = w[0] + w[1] * x
        return float(np.sum(np.logaddexp(0, z) - y * z))

    res = optimize.minimize(nll, np.zeros(2), method="BFGS")
    return float(res.x[1])


@dataclass(frozen=True)
class Slope:
    """Linear-probability slope of success on x with an item-clustered bootstrap CI, plus the logistic slope."""

    slope: float
    lo: float
    hi: float
    p: float
    logistic_slope: float
    n_obs: int
    n_items: int
    rates: dict


def clustered_slope(items, x, y, n_boot: int = 2000, seed: int = 0, conf: float = 0.95) -> Slope:
    """Slope of y (0/1) on x by least squares, CI and p from a percentile bootstrap that resamples items
    (every observation of an item together: the conditions of one item are not independent)."""
    items = np.asarray(items)
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if not (len(items) == len(x) == len(y)) or len(x) == 0:
        raise InterpError("clustered_slope needs equally long, non-empty items, x and y")
    if np.unique(x).size < 2:
        raise InterpError("clustered_slope needs at least two distinct x values")
    est = float(np.polyfit(x, y, 1)[0])
    uniq, inv = np.unique(items, return_inverse=True)
    groups = [np.flatnonzero(inv == i) for i in range(len(uniq))]
    rng = np.random.default_rng(seed)
    boots = []
    if len(uniq) >= MIN_N_INTERVAL:
        for _ in range(n_boot):
            idx = np.concatenate([groups[i] for i in rng.integers(len(groups), size=len(groups))])
            if np.unique(x[idx]).size >= 2:
                boots.append(np.polyfit(x[idx], y[idx], 1)[0])
    if boots:
        b = np.asarray(boots)
        lo, hi = (float(v) for v in np.quantile(b, [(1 - conf) / 2, (1 + conf) / 2]))
        p = float(min(1.0, 2 * min((b <= 0).mean(), (b >= 0).mean())))
        p = max(p, 1.0 / len(b))
    else:
        lo = hi = p = math.nan
    rates = {float(v): float(y[x == v].mean()) for v in np.unique(x)}
    return Slope(est, lo, hi, p, _logistic_slope(x, y), int(len(x)), int(len(uniq)), rates)


def top_overlap(a, b, k: int = 10) -> tuple[int, float]:
    """How many of the top-k cells of score `a` are among the top-k of `b`, and the hypergeometric p of at least
    that many by chance (cells ranked by descending score)."""
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise InterpError("top_overlap needs scores over the same cells")
    ta, tb = set(np.argsort(-a)[:k]), set(np.argsort(-b)[:k])
    hit = len(ta & tb)
    return hit, float(sps.hypergeom.sf(hit - 1, a.size, k, k))


def _rank_sum_stats(x: np.ndarray, is_a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of x ``[n, cells]``: rank sum W of group a, its null mean and variance (midranks, tie-corrected)."""
    n = x.shape[0]
    n1 = int(is_a.sum())
    r = sps.rankdata(x, axis=0)
    w = r[is_a].sum(0)
    e = n1 * (n + 1) / 2.0
    ties = np.zeros(x.shape[1])
    for j in range(x.shape[1]):
        _, counts = np.unique(x[:, j], return_counts=True)
        ties[j] = float(((counts ** 3) - counts).sum())
    var = n1 * (n - n1) / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    return w, np.full(x.shape[1], e), var


def stratified_rank_test(x, is_a, strata) -> tuple[np.ndarray, np.ndarray]:
    """Van Elteren's stratified Wilcoxon-Mann-Whitney test of group a vs b, per column of x ``[n]`` or ``[n, cells]``.

    Ranks are taken within each stratum, each stratum's rank sum weighted by 1 / (n_s + 1); strata with only one
    group carry no information and are skipped. Returns (z, two-sided p) per column (z > 0: a ranks higher).
    A pooled Mann-Whitney would confound the strata (e.g. task families with different CAS levels and failure
    rates) with the groups.
    """
    x = np.asarray(x, dtype=float)
    one = x.ndim == 1
    x = x[:, None] if one else x
    is_a = np.asarray(is_a, dtype=bool)
    strata = np.asarray(strata)
    num = np.zeros(x.shape[1])
    den = np.zeros(x.shape[1])
    for s in np.unique(strata):
        m = strata == s
        if is_a[m].all() or not is_a[m].any() or m.sum() < 3:
            continue
        w, e, v = _rank_sum_stats(x[m], is_a[m])
        k = 1.0 / (m.sum() + 1)
        num += k * (w - e)
        den += k * k * v
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(den > 0, num / np.sqrt(den), np.nan)
    p = 2 * sps.norm.sf(np.abs(z))
    return (z[0], p[0]) if one else (z, p)


def stratified_diff(x, is_a, strata, n_boot: int = 2000, seed: int = 0, conf: float = 0.95) -> tuple[float, float, float]:
    """Mean of a minus mean of b within each stratum, averaged with weights n_a n_b / n (Mantel-Haenszel style),
    with a percentile bootstrap that resamples within each stratum and group."""
    x = np.asarray(x, dtype=float)
    is_a = np.asarray(is_a, dtype=bool)
    strata = np.asarray(strata)
    cells = []
    for s in np.unique(strata):
        a, b = x[(strata == s) & is_a], x[(strata == s) & ~is_a]
        if len(a) and len(b):
            cells.append((a, b, len(a) * len(b) / (len(a) + len(b))))
    if not cells:
        return math.nan, math.nan, math.nan

    def est(parts) -> float:
        return float(sum(w * (a.mean() - b.mean()) for a, b, w in parts) / sum(w for _, _, w in parts))

    point = est(cells)
    if n_boot <= 0 or min(min(len(a), len(b)) for a, b, _ in cells) < MIN_N_INTERVAL:
        return point, math.nan, math.nan
    rng = np.random.default_rng(seed)
    boots = [est([(rng.choice(a, len(a)), rng.choice(b, len(b)), w) for a, b, w in cells]) for _ in range(n_boot)]
    lo, hi = np.quantile(boots, [(1 - conf) / 2, (1 + conf) / 2])
    return point, float(lo), float(hi)
