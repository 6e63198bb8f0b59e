"""Many images per forward pass: packed counts and packed sequential certificates are each image's own, whatever the
batch size, the images beside it, the run's sharding or its resume point; and packed certificates stay sound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.certificates.certifier import AdaptiveCertifier, SequentialCertifier
from benchmark.certificates.sampling import image_generator, packed_counts, sample_counts
from benchmark.certificates.sequential import ADAPTIVE, SEQUENTIAL, Design, certify_sequential_many
from benchmark.cli.parser import main
from tests.conftest import LinearClassifier

RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


def small_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)
    ).eval()


@pytest.mark.parametrize("batch_size", [1, 37, 100, 256, 5000])
def test_packed_counts_are_each_images_own_counts(batch_size):
    net, xs = small_cnn(), [torch.rand(1, 8, 8) for _ in range(4)]
    nums = [100, 250, 1, 333]
    alone = [
        sample_counts(net, x, 0.5, m, 64, image_generator(3, i)) for i, (x, m) in enumerate(zip(xs, nums, strict=True))
    ]
    packed = packed_counts(
        net, [(x, 0.5, m, image_generator(3, i)) for i, (x, m) in enumerate(zip(xs, nums, strict=True))], batch_size
    )
    assert [p.tolist() for p in packed] == [a.tolist() for a in alone]
    assert sum(int(p.sum()) for p in packed) == sum(nums)


@pytest.mark.parametrize("certifier", [SequentialCertifier(), AdaptiveCertifier()], ids=["sequential", "adaptive"])
def test_certify_many_gives_each_image_the_certificate_it_gets_alone(certifier):
    net, sigma = small_cnn(), 0.25
    xs = [torch.rand(1, 8, 8) for _ in range(6)]
    sizes = {"n0": 50, "n": 3000, "alpha": 0.001, "radii": RADII}
    alone = [
        certifier.certify([(sigma, net)], x, generator=image_generator(0, i), batch_size=64, **sizes)
        for i, x in enumerate(xs)
    ]
    for batch_size, groups in ((64, [6]), (500, [2, 4]), (7, [1, 3, 2])):
        got, start = [], 0
        for g in groups:
            gens = [image_generator(0, i) for i in range(start, start + g)]
            got += certifier.certify_many(
                [(sigma, net)], xs[start : start + g], generators=gens, batch_size=batch_size, **sizes
            )
            start += g
        assert got == alone, (batch_size, groups)
    assert all(c.mode == certifier.name for c in alone) and len({c.n for c in alone}) > 1  # images stopped apart


class _EveryLookFullAlpha(Design):
    """Invalid on purpose: every look at the full alpha (no union bound)."""

    def alphas(self, k: int, alpha: float) -> list[float]:
        return [alpha] * k


@pytest.mark.parametrize("design", [SEQUENTIAL, ADAPTIVE], ids=["sequential", "adaptive"])
def test_packed_certificates_certify_beyond_the_true_radius_at_most_alpha_of_the_time(design):
    """Real noise through the packed path: a linear classifier whose exact radius at every image is a hair below
    0.25, 20 images per pass. The design certifies 0.25 in at most alpha of the images; the invalid variant with
    full alpha at every look does so far more often (the check can fail)."""
    sigma, alpha, images = 0.25, 0.05, 1200
    w = torch.ones(64) / 8.0  # unit norm over a 1x8x8 image
    clf = LinearClassifier(w, 0.25 - 0.0005)  # radius at x = 0 just short of the grid level 0.25
    x = torch.zeros(1, 8, 8)
    slack = 3 * np.sqrt(alpha * (1 - alpha) / images)
    rates = {}
    for name, d in (("design", design), ("invalid", _EveryLookFullAlpha(**vars(design)))):
        certified = 0
        for start in range(0, images, 20):
            gens = [image_generator(11, i) for i in range(start, start + 20)]
            certs = certify_sequential_many(clf, [x] * 20, sigma, 100, 5000, alpha, RADII, 2000, gens, design=d)
            certified += sum(c.radius >= 0.25 for c in certs)
        rates[name] = certified / images
    assert rates["design"] <= alpha + slack, rates
    assert rates["invalid"] > alpha + slack, rates


def _records(results: Path) -> dict[int, dict]:
    rows = {}
    for path in results.rglob("records*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            row.pop("time_s")
            rows[row["idx"]] = row
    return rows


@pytest.mark.parametrize("certify", ["sequential", "adaptive"])
def test_a_sequential_runs_records_do_not_depend_on_batch_size_grouping_sharding_or_resume(
    certify, run_args, tmp_path, monkeypatch
):
    def run(name: str, *extra: str) -> dict[int, dict]:
        args = [a if not a.startswith(str(tmp_path / "results")) else str(tmp_path / name) for a in run_args]
        base = ["run", *args, "--methods", "gaussian", "--sigma", "0.25", "--n", "3000", "--certify", certify]
        assert main([*base, *extra]) == 0
        return _records(tmp_path / name)

    reference = run("one")
    assert len(reference) == 8 and all(r["mode"] == certify for r in reference.values())
    assert run("batch", "--batch-size", "7") == reference
    monkeypatch.setattr(SequentialCertifier, "pack", 3)
    assert run("grouped") == reference
    monkeypatch.setattr(SequentialCertifier, "pack", 1)
    assert run("sharded", "--shard", "0/2") != reference  # half the images
    assert run("sharded", "--shard", "1/2") == reference
    assert run("resumed", "--max-images", "3") != reference
    monkeypatch.setattr(SequentialCertifier, "pack", 8)
    assert run("resumed") == reference
