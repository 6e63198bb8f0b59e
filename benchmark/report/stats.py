"""The uncertainty of a table cell over its images, and paired comparisons of two rows certified on the same images.

A row's certified accuracy at r is a share of n images: its 95% interval is two-sided Clopper-Pearson. ACR is a mean
over images: its interval is a seeded percentile bootstrap. Two rows on the same images are compared pairwise:
exact McNemar (a binomial test on the discordant images) for certified-at-r, and a paired bootstrap interval for the
ACR difference. Every function is deterministic.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta, binomtest

LEVEL = 0.95
RESAMPLES = 2000
_SEED = 20240923


def proportion_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval of a binomial share k / n (NaN, NaN for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1.0 - a, k + 1, n - k))
    return lo, hi


def _resample_means(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, len(values)])
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    return values[picks].mean(axis=1)


def bootstrap_interval(values, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = _SEED):
    """Percentile bootstrap interval of the mean of ``values`` (NaN, NaN when empty)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    means = _resample_means(values, resamples, seed)
    a = (1.0 - level) / 2.0
    return float(np.quantile(means, a)), float(np.quantile(means, 1.0 - a))


def mcnemar_p(a, b) -> float:
    """Exact two-sided McNemar p-value of paired 0/1 outcomes ``a`` and ``b`` (1.0 when no image differs)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_difference_interval(a, b, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = _SEED):
    """Bootstrap interval of mean(a - b) over paired images (the same resampled images for both)."""
    return bootstrap_interval(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), level, resamples, seed)


def paired_difference(a, b) -> tuple[float, float, float, float]:
    """Paired 0/1 outcomes ``a`` - ``b`` over the same images: (mean difference, its paired bootstrap interval,
    exact McNemar p), the one reading of two rows on shared images."""
    lo, hi = paired_difference_interval(a, b)
    return float(np.mean(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))), lo, hi, mcnemar_p(a, b)
