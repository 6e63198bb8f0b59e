"""Sequential CERTIFY: looks fixed in advance, alpha split by the union bound, and a certificate that stays sound."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm

from benchmark.certificates.sequential import certify_sequential, decide, look_alphas, looks
from benchmark.certificates.smoothing import certify, image_generator
from benchmark.cli.parser import main
from benchmark.run.records import latest_runs
from tests.conftest import LinearClassifier
from tests.test_run import lines_on_disk

ROOT = Path(__file__).resolve().parents[1]
RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


def certified_level(bound: float, sigma: float, radii) -> float:
    """The largest grid radius a bound on p_A certifies (NaN when it certifies none)."""
    reached = [r for r in radii if bound >= norm.cdf(r / sigma)]
    return max(reached) if reached else math.nan


def test_looks_and_alphas_are_fixed_in_advance():
    assert looks(10_000) == [100, 200, 300, 400, 600, 800, 1100, 1600, 2300, 3200, 4500, 6400, 9100, 10_000]
    alphas = look_alphas(14, 0.001)
    assert sum(alphas) == pytest.approx(0.001) and alphas[-1] == pytest.approx(0.0008)


@pytest.mark.parametrize("radius", [0.25, 0.5])
def test_a_grid_radius_beyond_the_true_one_is_certified_at_most_alpha_of_the_time(radius):
    """p_A just below the level of ``radius`` (its true radius is just short of it): the union-bound split certifies
    that level in at most alpha of the trials; full alpha at every look does so far more often, so the test can
    fail."""
    sigma, alpha, trials = 0.25, 0.05, 1500
    threshold = float(norm.cdf(radius / sigma))
    p = threshold - 0.001
    slack = 3 * np.sqrt(alpha * (1 - alpha) / trials)
    rates = {}
    for split in ("union", "naive"):
        rng = np.random.default_rng([7, int(radius * 100)])
        draw = rng.binomial
        # the naive split gives every look the full alpha: invalid, so the check must catch it
        alphas = [alpha] * len(looks(10_000)) if split == "naive" else None
        bounds = [decide(lambda m, d=draw: d(m, p), sigma, 10_000, alpha, RADII, alphas)[0] for _ in range(trials)]
        rates[split] = float(np.mean([b >= threshold for b in bounds]))
    assert rates["union"] <= alpha + slack, rates
    assert rates["naive"] > alpha + slack, rates


def test_an_image_between_two_levels_is_decided_with_far_fewer_samples():
    """A linear classifier whose smoothed version has p_A = Phi(0.32 / 0.25) = 0.90 at x (true radius 0.32): fixed-n
    CERTIFY and the sequential one certify the same grid level, 0.25, the latter with a fraction of the samples."""
    w = torch.ones(64) / 8.0  # unit norm over a 1x8x8 image
    clf, x, sigma = LinearClassifier(w, 0.32), torch.zeros(1, 8, 8), 0.25
    fixed = certify(clf, x, sigma, 100, 10_000, 0.001, 1000, image_generator(0, 5))
    seq = certify_sequential(clf, x, sigma, 100, 10_000, 0.001, RADII, 1000, image_generator(0, 5))
    assert seq.prediction == fixed.prediction == 1 and seq.mode == "sequential"
    assert certified_level(seq.p_a_lower, sigma, RADII) == certified_level(fixed.p_a_lower, sigma, RADII) == 0.25
    assert seq.n_used == 100 + seq.n < 10_100 / 5 and seq.radius <= fixed.radius < 0.32


def test_run_certify_sequential_writes_its_own_rows_beside_the_fixed_ones(run_args, tmp_path):
    base = [*run_args, "--methods", "gaussian", "--sigma", "0.25", "--n", "2000"]
    assert main(["run", *base]) == 0
    assert main(["run", *base, "--certify", "sequential"]) == 0
    runs = {r.info.config.get("certify", "fixed"): r for r in latest_runs(tmp_path / "results", "tiny")}
    assert set(runs) == {"fixed", "sequential"} and lines_on_disk(tmp_path / "results") == 16
    assert all(r.mode == "sequential" and 20 + 100 <= r.n_used <= 2020 for r in runs["sequential"].records)
    assert all(r.mode == "fixed" and r.n_used == 2020 for r in runs["fixed"].records)
    # the certificate is not part of what a fit depends on: both runs use one fit
    assert len(list((tmp_path / "cache" / "fits" / "gaussian").glob("*/state.safetensors"))) == 1
    assert runs["sequential"].info.fit["fit_hash"] == runs["fixed"].info.fit["fit_hash"]
    md = (tmp_path / "lb" / "tiny.md").read_text()
    assert "| best | gaussian |" in md and "| gaussian | fp32 | sequential CERTIFY |" in md


def test_perf_reports_every_path_on_the_same_images(tiny_suite, tmp_path, capsys):
    args = [
        "perf",
        "--suite",
        str(tiny_suite),
        "--method",
        "vanilla",
        "--sigma",
        "0.25",
        "--images",
        "3",
        "--slow-images",
        "2",
        "--n",
        "300",
        "--results",
        str(tmp_path / "r"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--allow-dirty",
    ]
    committed = ROOT / "leaderboards" / "perf.md"
    before = committed.read_bytes() if committed.is_file() else None
    assert main(args) == 0
    # no --out: the page goes beside the results it measured with, never onto the checkout's leaderboards
    text = (tmp_path / "leaderboards" / "perf.md").read_text()
    assert (committed.read_bytes() if committed.is_file() else None) == before
    for path in ("reference", "certify[fp32]", "certify[auto]", "sequential"):
        assert f"| {path} | " in text
    assert "| reference | 2 |" in text and "| certify[auto] | 3 |" in text and "fewer samples per image" in text
