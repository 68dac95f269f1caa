"""Sample-size formulas against hand computations and a Monte-Carlo check of the paired test's power."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from interp.stats.power import (n_paired_mean, n_paired_proportions, n_slope_binary, n_two_means,
                                n_two_proportions)

ZA, ZB = 1.959963984540054, 0.8416212335729143


def test_two_proportions_matches_fleiss_without_correction():
    # Fleiss (1981) table value for 0.5 vs 0.3 at alpha .05, power .8 (no continuity correction): 93
    assert n_two_proportions(0.5, 0.3) == 93
    assert n_two_proportions(0.4, 0.4) == math.inf


def test_two_means_hand_computed():
    assert n_two_means(0.5, rank_test=False) == math.ceil(2 * (ZA + ZB) ** 2 / 0.25)  # 63
    assert n_two_means(0.5) == math.ceil(2 * (ZA + ZB) ** 2 / 0.25 * math.pi / 3)
    assert n_paired_mean(0.25) == math.ceil((ZA + ZB) ** 2 / 0.0625)


def test_paired_proportions_hand_computed_and_bounds():
    want = math.ceil((ZA * math.sqrt(0.3) + ZB * math.sqrt(0.3 - 0.04)) ** 2 / 0.04)
    assert n_paired_proportions(0.6, 0.4, discordant=0.3) == want == 57
    # independence within a pair is the conservative default: more pairs than a correlated design
    assert n_paired_proportions(0.6, 0.4) > want
    with pytest.raises(ValueError):
        n_paired_proportions(0.9, 0.1, discordant=0.5)


def test_paired_proportions_power_by_simulation():
    """At the returned n, McNemar's exact test rejects in about 80% of simulated studies."""
    p1, p0, disc = 0.6, 0.45, 0.35
    n = n_paired_proportions(p1, p0, discordant=disc)
    # pairs: (1,0) with prob a, (0,1) with prob b, a + b = disc, a - b = p1 - p0
    a, b = (disc + (p1 - p0)) / 2, (disc - (p1 - p0)) / 2
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        cells = rng.multinomial(n, [a, b, 1 - a - b])
        hits += sps.binomtest(int(cells[0]), int(cells[0] + cells[1]), 0.5).pvalue < 0.05
    assert 0.72 < hits / 2000 < 0.88


def test_slope_hand_computed():
    # x in {1, 2, 3}: Var(x) = 2/3
    got = n_slope_binary(-0.05, 0.5, [1, 2, 3])
    assert got == math.ceil(0.25 * ((ZA + ZB) / 0.05) ** 2 / (2 / 3))
    assert n_slope_binary(0.0, 0.5, [1, 2]) == math.inf
