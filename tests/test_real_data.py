"""Real-data checks against ../shared (marker ``slow``: ``python -m pytest -m slow``)."""

from __future__ import annotations

import pytest
import torch

from benchmark.bases.pretrained import clean_accuracy
from benchmark.certificates.smoothing import add_noise
from benchmark.config.run_config import build_run_config
from benchmark.run.session import Session
from tests.conftest import SHARED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED / "data" / "cifar10").is_dir(), reason="../shared/data/cifar10 is not present"),
]


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    cfg = build_run_config("cifar10-cpu", {"cache_dir": str(tmp_path_factory.mktemp("cache"))})
    return Session(cfg)


@pytest.mark.parametrize("base,expected", [("resnet20", 0.810), ("resnet56", 0.832), ("vit_tiny_p4", 0.779)])
def test_published_clean_accuracy_on_the_jpeg_copy(runner, base, expected):
    """../shared/models/README.md: 81.0% / 83.2% / 77.9% top-1 on the 10,000 JPEG test images; 2,000 here."""
    data = torch.utils.data.Subset(runner.eval_data(), range(0, 10_000, 5))
    acc = clean_accuracy(runner.build_base(base), data, runner.device, bf16=False)
    assert abs(acc - expected) < 0.025, acc


def test_vanilla_collapses_under_noise(runner):
    """A clean-trained ResNet-20 gets about 12% of single noisy draws right at sigma 0.25 (issue #2)."""
    data = runner.eval_data()
    idx = torch.arange(0, 10_000, 5)
    x, y = data.batch(idx)
    model = runner.build_base("resnet20")
    with torch.no_grad():
        pred = model(add_noise(x, 0.25, torch.Generator().manual_seed(0))).argmax(1)
    assert 0.05 < float((pred == y).float().mean()) < 0.2
