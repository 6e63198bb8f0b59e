"""Metrics as functions of records, with hand-computed answers."""

from __future__ import annotations

import math

import pytest

from benchmark.report.metrics import abstain_rate, acr, certified_accuracy, certify_s_per_image, envelope, r_max
from benchmark.run.records import Record


def rows():
    # (label, radius, prediction): correct follows from label and prediction
    data = [(1, 0.5, 1), (2, 0.2, 2), (4, 0.9, 3), (5, 0.0, -1)]
    return [
        Record.of(
            label=y,
            prediction=p,
            radius=r,
            time_s=2.0 * i,
            method="m",
            config_hash="h",
            dataset=None,
            split="test",
            idx=i,
            sigma=0.25,
            seed=0,
            n0=10,
            n=100,
            alpha=0.001,
            p_a_lower=None,
            n_top=None,
            n_used=110,
            mode="fixed",
        )
        for i, (y, r, p) in enumerate(data)
    ]


def test_certified_accuracy_and_acr():
    assert [r.correct for r in rows()] == [1, 1, 0, 0]
    assert certified_accuracy(rows(), [0.0, 0.2, 0.25, 0.5, 0.6]) == [0.5, 0.5, 0.25, 0.25, 0.0]
    assert acr(rows()) == pytest.approx((0.5 + 0.2) / 4)
    assert abstain_rate(rows()) == 0.25
    assert certify_s_per_image(rows()) == pytest.approx((0 + 2 + 4 + 6) / 4)


def test_empty_is_nan():
    assert all(math.isnan(v) for v in certified_accuracy([], [0.0, 1.0]))
    assert math.isnan(acr([]))
    assert math.isnan(certify_s_per_image([]))


def test_envelope_and_rmax():
    assert envelope([[0.8, 0.5, 0.0], [0.6, 0.55, 0.3]]) == [0.8, 0.55, 0.3]
    assert envelope([[float("nan"), 0.1], [0.2, float("nan")]]) == [0.2, 0.1]
    assert r_max(0.25, 100_000, 0.001) == pytest.approx(0.95, abs=0.01)
    assert math.isnan(r_max(0.25, None, 0.001))
