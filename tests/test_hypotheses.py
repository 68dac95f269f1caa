"""The study's decision rule and tests, against hand computations."""
import math

import numpy as np
import pytest

from interp.errors import InterpError
from interp.stats.hypotheses import clustered_slope, decide, mcnemar_exact, paired_rate_test, top_overlap


@pytest.mark.parametrize("effect,lo,hi,p,direction,expected", [
    (0.2, 0.1, 0.3, 0.001, 1, "supported"),
    (-0.2, -0.3, -0.1, 0.001, 1, "not supported"),      # rejects in the opposite direction
    (0.01, -0.02, 0.04, 0.4, 1, "not supported"),       # CI excludes the SESOI (0.05) in the predicted direction
    (0.03, -0.02, 0.08, 0.3, 1, "inconclusive"),
    (-0.1, -0.2, -0.05, 0.01, -1, "supported"),
    (-0.01, -0.04, 0.02, 0.5, -1, "not supported"),
    (0.0, math.nan, math.nan, 0.5, -1, "inconclusive"),  # no interval: cannot exclude anything
    (0.01, -0.03, 0.04, 0.6, 0, "not supported"),       # a 'difference' hypothesis, CI inside (-SESOI, SESOI)
    (0.01, -0.03, 0.09, 0.6, 0, "inconclusive"),
    (-0.2, -0.3, -0.1, 0.01, 0, "supported"),
])
def test_decision_rule(effect, lo, hi, p, direction, expected):
    assert decide(effect, lo, hi, p, direction, sesoi=0.05) == expected


def test_mcnemar_exact_by_hand():
    a = [1] * 8 + [0] * 2 + [1] * 5 + [0] * 5      # 8 (1,0) and 2 (0,1) discordant pairs, 10 concordant
    b = [0] * 8 + [1] * 2 + [1] * 5 + [0] * 5
    assert mcnemar_exact(a, b) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert mcnemar_exact([1, 0], [1, 0]) == 1.0
    with pytest.raises(InterpError):
        mcnemar_exact([1, 0], [1])


def test_paired_rate_test_majority_and_interval():
    a = np.array([1.0, 0.5, 0.0, 0.0] * 10)
    b = np.ones(40)
    diff, lo, hi, p = paired_rate_test(a, b, n_boot=2000)
    assert diff == pytest.approx(0.375 - 1.0)
    assert lo < diff < hi < 0
    assert p == pytest.approx(2 * 0.5 ** 20)  # 20 units fail by majority (0.5 counts as success), none the other way


def test_clustered_slope_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    items = np.repeat(np.arange(300), 3)
    x = np.tile([1, 2, 3], 300)
    y = (rng.random(900) < 0.8 - 0.1 * x).astype(float)
    s = clustered_slope(items, x, y, n_boot=500)
    assert s.lo < -0.1 < s.hi and s.hi < 0 and s.p < 0.01
    assert s.logistic_slope < 0 and s.n_items == 300 and set(s.rates) == {1.0, 2.0, 3.0}
    flat = clustered_slope(items, x, rng.random(900) < 0.5, n_boot=500)
    assert flat.lo < 0 < flat.hi
    with pytest.raises(InterpError):
        clustered_slope([1, 2], [1, 1], [0, 1])


def test_top_overlap_hypergeometric():
    a = np.arange(270.0)
    hit, p = top_overlap(a, a, k=10)
    assert hit == 10 and p == pytest.approx(1 / math.comb(270, 10))
    hit0, p0 = top_overlap(a, -a, k=10)
    assert hit0 == 0 and p0 == pytest.approx(1.0)


def test_stratified_rank_test_removes_a_confound_a_pooled_test_reports():
    from scipy import stats as sps

    from interp.stats.hypotheses import stratified_diff, stratified_rank_test

    rng = np.random.default_rng(1)
    # stratum 0: high values, mostly group a; stratum 1: low values, mostly group b; no effect within either
    x = np.concatenate([rng.normal(5, 1, 200), rng.normal(0, 1, 200)])
    strata = np.repeat([0, 1], 200)
    is_a = np.concatenate([rng.random(200) < 0.8, rng.random(200) < 0.2])
    assert sps.mannwhitneyu(x[is_a], x[~is_a]).pvalue < 1e-10  # the pooled test "finds" the stratum difference
    z, p = stratified_rank_test(x, is_a, strata)
    assert p > 0.05
    d, lo, hi = stratified_diff(x, is_a, strata, n_boot=500)
    assert lo < 0 < hi and abs(d) < 0.3
    shifted = x + 0.5 * is_a  # a real within-stratum effect is found, with the right sign and size
    z2, p2 = stratified_rank_test(shifted, is_a, strata)
    d2, lo2, hi2 = stratified_diff(shifted, is_a, strata, n_boot=500)
    assert z2 > 0 and p2 < 1e-3 and lo2 < 0.5 < hi2
    zs, ps = stratified_rank_test(np.stack([x, shifted], 1), is_a, strata)  # per column, as for heads
    assert np.allclose(zs, [z, z2]) and np.allclose(ps, [p, p2])


def test_van_elteren_one_stratum_matches_the_normal_mann_whitney():
    from scipy import stats as sps

    from interp.stats.hypotheses import stratified_rank_test

    rng = np.random.default_rng(2)
    x = np.round(rng.normal(0, 1, 60), 1)  # with ties
    is_a = np.arange(60) < 25
    _, p = stratified_rank_test(x, is_a, np.zeros(60))
    ref = sps.mannwhitneyu(x[is_a], x[~is_a], method="asymptotic", use_continuity=False).pvalue
    assert p == pytest.approx(ref, rel=1e-9)
