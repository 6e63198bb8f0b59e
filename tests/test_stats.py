"""Known answers of the interval and paired-test helpers behind every table cell."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import beta

from benchmark.report.stats import bootstrap_interval, mcnemar_p, paired_difference_interval, proportion_interval


def test_clopper_pearson_known_values():
    lo, hi = proportion_interval(92, 200)  # 46.0 %: the interval a 200-image cell carries
    assert (lo, hi) == pytest.approx((beta.ppf(0.025, 92, 109), beta.ppf(0.975, 93, 108)))
    assert proportion_interval(0, 200)[0] == 0.0 and proportion_interval(200, 200)[1] == 1.0
    assert proportion_interval(0, 200)[1] == pytest.approx(1 - 0.025 ** (1 / 200))  # the exact bound at k = 0
    assert all(np.isnan(proportion_interval(0, 0)))


def test_mcnemar_counts_only_the_images_that_differ():
    a = np.array([1] * 50 + [0] * 50 + [1] * 10 + [0] * 2, dtype=bool)
    b = np.array([1] * 50 + [0] * 50 + [0] * 10 + [1] * 2, dtype=bool)
    # 10 vs 2 discordant: two-sided exact binomial p = 2 * P(X <= 2 | 12, 1/2)
    assert mcnemar_p(a, b) == pytest.approx(2 * sum(__import__("math").comb(12, k) for k in range(3)) / 2**12)
    assert mcnemar_p(a, a) == 1.0


def test_bootstrap_intervals_cover_the_mean_and_are_deterministic():
    values = np.random.default_rng(0).normal(0.3, 0.2, size=200)
    lo, hi = bootstrap_interval(values)
    assert lo < values.mean() < hi and (lo, hi) == bootstrap_interval(values)
    # a difference of identical rows is exactly zero; a shifted row's is the shift
    assert paired_difference_interval(values, values) == (0.0, 0.0)
    lo, hi = paired_difference_interval(values + 0.1, values)
    assert lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
