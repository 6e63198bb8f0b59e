"""Sequential CERTIFY (``sequential`` and ``adaptive``): looks fixed in advance, alpha split by the union bound,
and certificates that stay sound."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import norm

from benchmark.certificates.sequential import (
    ADAPTIVE,
    SEQUENTIAL,
    Design,
    certify_sequential,
    decide,
    look_alphas,
    looks,
)
from benchmark.certificates.smoothing import certify, image_generator
from benchmark.cli.parser import main
from benchmark.config.snapshot import SuiteSnapshot
from benchmark.config.suite import snapshot
from benchmark.report.frame import frame
from benchmark.report.table import run_row
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


@pytest.mark.parametrize("design", [SEQUENTIAL, ADAPTIVE], ids=["sequential", "adaptive"])
@pytest.mark.parametrize("radius", [0.25, 0.5])
def test_a_grid_radius_beyond_the_true_one_is_certified_at_most_alpha_of_the_time(radius, design):
    """p_A just below the level of ``radius`` (its true radius is just short of it): the union-bound split certifies
    that level in at most alpha of the trials, whatever the design's stopping rule; full alpha at every look does so
    far more often, so the test can fail."""
    sigma, alpha, trials = 0.25, 0.05, 1500
    threshold = float(norm.cdf(radius / sigma))
    p = threshold - 0.001
    slack = 3 * np.sqrt(alpha * (1 - alpha) / trials)
    rates = {}
    for split in ("union", "naive"):
        rng = np.random.default_rng([7, int(radius * 100)])
        draw = rng.binomial
        # the naive split gives every look the full alpha: invalid, so the check must catch it
        alphas = [alpha] * len(design.looks(10_000)) if split == "naive" else None
        bounds = [
            decide(lambda m, d=draw: d(m, p), sigma, 10_000, alpha, RADII, alphas, design=design)[0]
            for _ in range(trials)
        ]
        rates[split] = float(np.mean([b >= threshold for b in bounds]))
    assert rates["union"] <= alpha + slack, rates
    assert rates["naive"] > alpha + slack, rates


def test_adaptive_gives_a_near_threshold_image_up_sooner_and_a_clear_one_alike():
    """p_A a hair below the level of 0.5 (sigma 0.25): ``sequential`` samples on far longer than ``adaptive``; an
    image far from every level gets the same level from both within a thousand samples."""
    sigma, n_max = 0.25, 100_000
    near = float(norm.cdf(0.5 / sigma)) - 0.002

    def decided(design, p, seed):
        rng = np.random.default_rng(seed)
        bound, _, t = decide(lambda m: int(rng.binomial(m, p)), sigma, n_max, 0.001, RADII, design=design)
        return certified_level(bound, sigma, RADII), t

    seeds = range(20)
    near_cost = {d: np.mean([decided(d, near, s)[1] for s in seeds]) for d in (ADAPTIVE, SEQUENTIAL)}
    assert near_cost[ADAPTIVE] < 0.5 * near_cost[SEQUENTIAL], near_cost
    clear = float(norm.cdf(0.375 / sigma))  # midway between the levels of 0.25 and 0.5
    for s in range(5):
        (level_a, t_a), (level_s, t_s) = decided(ADAPTIVE, clear, s), decided(SEQUENTIAL, clear, s)
        assert level_a == level_s == 0.25 and t_a <= t_s <= 1000


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


def test_perf_reports_every_path_on_the_same_images_and_resumes(tiny_suite, tmp_path, capsys):
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
        "--paths",
        "reference,fixed-fp32,fixed,sequential,adaptive,adaptive@1,fixed+fold_bn,forward,forward+freeze",
    ]
    committed = ROOT / "leaderboards" / "perf.md"
    before = committed.read_bytes() if committed.is_file() else None
    assert main(args) == 0
    # no --out: the page goes beside the results it measured with, never onto the checkout's leaderboards
    text = (tmp_path / "leaderboards" / "perf.md").read_text()
    assert (committed.read_bytes() if committed.is_file() else None) == before
    for path in ("reference", "fixed-fp32", "fixed", "sequential", "adaptive", "fixed+fold_bn"):
        assert f"| {path} | " in text
    assert "| reference | 2 |" in text and "| fixed | 3 |" in text and "| forward+freeze | - |" in text
    assert "`adaptive`: " in text and "fewer samples per image than `fixed`" in text
    # each path's records are stored; a second run certifies nothing again and the page is the same
    stored = sorted((tmp_path / "r").glob("tiny/perf/vanilla/*/sigma_0.25/*/*.jsonl"))
    assert {p.stem for p in stored} == {
        "adaptive",
        "adaptive@1",
        "fixed",
        "fixed+fold_bn",
        "fixed-fp32",
        "reference",
        "sequential",
    }
    lines = {p: p.read_text() for p in stored}
    assert main([*args[:-1], "fixed,sequential"]) == 0
    assert {p: p.read_text() for p in stored} == lines
    # fixed n through another engine certifies the same images alike (rounding aside, which n = 300 never meets)
    by = {p.stem: sorted(json.loads(line)["n_top"] for line in lines[p].splitlines()) for p in stored}
    assert by["adaptive"] == by["adaptive@1"]  # packed or one image at a time: the same records
    fixed, folded = (lines[p].splitlines() for p in stored if p.stem in ("fixed", "fixed+fold_bn"))
    assert [json.loads(a)["n_top"] for a in sorted(fixed)] == [json.loads(b)["n_top"] for b in sorted(folded)]


def test_perf_refuses_a_path_it_does_not_know(tiny_suite, tmp_path, capsys):
    code = main(
        [
            "perf",
            "--suite",
            str(tiny_suite),
            "--paths",
            "fixed+turbo",
            "--results",
            str(tmp_path / "r"),
            "--cache-dir",
            str(tmp_path / "c"),
            "--allow-dirty",
        ]
    )
    assert code == 2 and "no engine is called 'turbo'" in capsys.readouterr().err


def test_a_suite_that_certifies_adaptively_ranks_its_adaptive_rows_and_lists_fixed_ones_beside(run_args, tmp_path):
    base = [*run_args, "--methods", "gaussian", "--sigma", "0.25", "--n", "2000", "--no-leaderboard"]
    assert main(["run", *base, "--certify", "adaptive"]) == 0
    assert main(["run", *base]) == 0
    assert snapshot("quick").certificate == "adaptive" and snapshot("cifar10-cpu").certificate == "fixed"
    for certificate, other in (("adaptive", "fixed"), ("fixed", "adaptive")):
        df = frame(
            tmp_path / "results", "tiny", snapshots={"tiny": SuiteSnapshot("tiny", "fp32", certificate=certificate)}
        )
        assert set(df[df.ranked].run_mode) == {certificate} and set(df[~df.ranked].run_mode) == {other}
        rows = [run_row(g, RADII) for _, g in df.groupby("run")]
        assert sorted(r["unranked"] for r in rows) == sorted(["", f"{other} CERTIFY"])


def test_a_cascade_keeps_its_own_certificate_unless_one_is_asked_for_it_by_name(run_args, tmp_path, capsys):
    """With --methods all (or a suite's certify), a cascade certifies with its own certificate under the hash a
    fixed-n suite gives it; naming it beside --certify sequential is refused in one line."""
    assert main(["run", *run_args, "--methods", "multiscale_gaussian", "--certify", "sequential"]) == 2
    assert "certifies with its own certificate (cascade)" in capsys.readouterr().err
    lines = {}
    for mode in ("fixed", "adaptive"):
        assert main(["run", *run_args, "--methods", "all", "--certify", mode, "--dry-run"]) == 0
        out = capsys.readouterr().out
        lines[mode] = [line for line in out.splitlines() if "multiscale_gaussian" in line]
    assert lines["fixed"] and lines["fixed"] == lines["adaptive"]


def test_the_adaptive_design_is_in_the_record_key_and_never_in_a_fit_key(tiny_suite, monkeypatch):
    """A design chosen again is another configuration (its records never extend the old design's), and the fit a
    cell certifies does not depend on it."""
    from benchmark.certificates.certifier import AdaptiveCertifier
    from benchmark.config.run_config import build_run_config
    from benchmark.run.plan import cell

    def one(certify: str):
        return cell(build_run_config(str(tiny_suite), {"certify": certify}), "gaussian", "small_cnn", 0.25, "fp32")

    adaptive, fixed = one("adaptive"), one("fixed")
    assert adaptive.key["certify_design"] == vars(ADAPTIVE) and "certify_design" not in fixed.key
    assert adaptive.fit_hash == fixed.fit_hash and adaptive.chash != fixed.chash
    monkeypatch.setattr(AdaptiveCertifier, "design", Design(final_share=0.5, futility_beta=0.2))
    again = one("adaptive")
    assert again.chash != adaptive.chash and again.fit_hash == adaptive.fit_hash
