"""Metrics as pure functions of records (as in locuslab/smoothing ``code/analyze.py``).

Certified accuracy at r is the share of images whose certificate is correct with radius >= r (Cohen et al.);
at r = 0 it is the smoothed clean accuracy. ACR is the mean of ``correct * radius``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmark.certificates.smoothing import ABSTAIN, max_radius
from benchmark.run.records import Record, certify_s_per_image  # noqa: F401 - a metric of records too

# Records as a list of Record, or as the rows of a DataFrame (benchmark.report.frame.frame): either way, columns.
Records = Sequence[Record] | object


def column(records: Records, name: str, dtype=float) -> np.ndarray:
    """One field of every record as an array."""
    if hasattr(records, "columns"):
        return records[name].to_numpy(dtype=dtype)
    return np.array([getattr(r, name) for r in records], dtype=dtype)


def certified(records: Records, r: float) -> np.ndarray:
    """Per image: certified correct at radius ``r`` (correct with radius >= r)."""
    return column(records, "correct", bool) & (column(records, "radius") >= r)


def certified_accuracy(records: Records, radii: Sequence[float]) -> list[float]:
    """Fraction of ``records`` with ``correct`` and ``radius >= r``, for each r (NaN for no records)."""
    if not len(records):
        return [float("nan")] * len(radii)
    return [float(np.mean(certified(records, r))) for r in radii]


def certified_radius(records: Records) -> np.ndarray:
    """Per image: ``correct * radius`` (abstentions and wrong predictions count 0); its mean is ACR."""
    return column(records, "radius") * column(records, "correct", bool)


def acr(records: Records) -> float:
    """Average certified radius: mean of ``correct * radius`` over all images (abstentions count 0)."""
    return float(np.mean(certified_radius(records))) if len(records) else float("nan")


def abstain_rate(records: Records) -> float:
    return float(np.mean(column(records, "prediction", int) == ABSTAIN)) if len(records) else float("nan")


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
