"""Metrics as pure functions of records (as in locuslab/smoothing ``code/analyze.py``).

Certified accuracy at r is the share of images whose certificate is correct with radius >= r (Cohen et al.);
at r = 0 it is the smoothed clean accuracy. ACR is the mean of ``correct * radius``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmark.records import Record
from benchmark.smoothing import ABSTAIN, max_radius


def certified_accuracy(records: Sequence[Record], radii: Sequence[float]) -> list[float]:
    """Fraction of ``records`` with ``correct`` and ``radius >= r``, for each r (NaN for no records)."""
    if not records:
        return [float("nan")] * len(radii)
    correct = np.array([bool(r.correct) for r in records])
    radius = np.array([float(r.radius) for r in records])
    return [float(np.mean(correct & (radius >= r))) for r in radii]


def acr(records: Sequence[Record]) -> float:
    """Average certified radius: mean of ``correct * radius`` over all images (abstentions count 0)."""
    if not records:
        return float("nan")
    return float(np.mean([float(r.radius) * bool(r.correct) for r in records]))


def abstain_rate(records: Sequence[Record]) -> float:
    if not records:
        return float("nan")
    return float(np.mean([r.prediction == ABSTAIN for r in records]))


def certify_s_per_image(records: Sequence[Record]) -> float:
    """Mean certification wall time per image, as each record measured it (NaN for no records)."""
    if not records:
        return float("nan")
    return float(np.mean([float(r.time_s) for r in records]))


def r_max(sigma: float, n: int | None, alpha: float | None) -> float:
    """The largest radius a run can certify (all n votes for one class); NaN when n or alpha is unknown."""
    if not n or not alpha:
        return float("nan")
    return max_radius(sigma, n, alpha)


def envelope(curves: Sequence[Sequence[float]]) -> list[float]:
    """Pointwise maximum over sigma of certified-accuracy curves on one radius grid (NaN cells ignored)."""
    arr = np.array(curves, dtype=float)
    if arr.size == 0:
        return []
    with np.errstate(all="ignore"):
        out = np.nanmax(np.where(np.isnan(arr), -np.inf, arr), axis=0)
    return [float("nan") if np.isinf(v) else float(v) for v in out]
