"""The engine setting: every engine computes what eager does (up to rounding) on a copy of the model, a model it
cannot trace is refused in one line, and the names the config checks are the ones the certificates know."""

from __future__ import annotations

import copy

import pytest
import torch

import benchmark
from benchmark.certificates.engines import ENGINES, build_engine
from benchmark.certificates.registry import RUN_CERTIFICATES
from benchmark.certificates.smoothing import GRID, image_generator
from benchmark.config import run_config
from benchmark.errors import BenchmarkError
from tests.conftest import LinearClassifier


class Block(torch.nn.Module):
    """A residual block, as ResNet-20 has: convolutions each followed by a batch norm, and a skip."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(width, width, 3, padding=1, bias=False), torch.nn.BatchNorm2d(width)
        self.conv2, self.bn2 = torch.nn.Conv2d(width, width, 3, padding=1, bias=False), torch.nn.BatchNorm2d(width)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def bn_net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        Block(8),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    )
    for m in net.modules():  # running statistics away from the identity, so folding has work to do
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return net.eval()


@pytest.mark.parametrize("engine", ["fold_bn", "freeze"])
def test_an_engine_computes_what_eager_does_on_a_copy(engine):
    net, x = bn_net(), torch.rand(16, 3, 8, 8)
    before = copy.deepcopy(net.state_dict())
    eager = build_engine(net, "cpu", "fp32", "eager")(x)
    other = build_engine(net, "cpu", "fp32", engine)
    assert torch.allclose(other(x), eager, atol=1e-5) and torch.allclose(
        other(x), eager, atol=1e-5
    )  # traced, then run
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the caller's model is untouched
    if engine == "fold_bn":
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in other.model.modules())


@pytest.mark.slow
def test_compile_computes_what_eager_does():
    net, x = bn_net(), torch.rand(16, 3, 8, 8)
    assert torch.allclose(
        build_engine(net, "cpu", "fp32", "compile")(x), build_engine(net, "cpu", "fp32")(x), atol=1e-5
    )


def test_an_untraceable_model_is_refused_in_one_line():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1) if x.sum() > 0 else -x.flatten(1)  # data-dependent control flow

    with pytest.raises(BenchmarkError, match="engine fold_bn cannot trace Branchy .*--engine eager"):
        build_engine(Branchy(), "cpu", "fp32", "fold_bn")
    with pytest.raises(BenchmarkError, match="no engine is called 'turbo'"):
        build_engine(bn_net(), "cpu", "fp32", "turbo")


def test_the_config_names_what_the_certificates_know():
    assert run_config.ENGINES == ENGINES
    assert set(run_config.CERTIFY_MODES) == set(RUN_CERTIFICATES)
    assert run_config.DEFAULT_RADII == GRID


@pytest.mark.parametrize("certificate", RUN_CERTIFICATES)
def test_the_public_certify_takes_any_run_level_certificate(certificate):
    """benchmark.certify(..., certificate=...) is that certifier's certificate at a run's defaults; a sequential one
    draws fewer samples than fixed n on an image far from every grid level."""
    w = torch.ones(64) / 8.0
    clf, x = LinearClassifier(w, 0.375), torch.zeros(1, 8, 8)  # true radius 0.375: between the levels 0.25 and 0.5
    cert = benchmark.certify(clf, x, 0.25, 100, 20_000, 0.001, 1000, image_generator(0, 1), certificate=certificate)
    assert cert.mode == certificate and cert.prediction == 1 and 0.25 <= cert.radius < 0.375
    assert (cert.n_used == 20_100) == (certificate == "fixed")
    with pytest.raises(ValueError, match="certificate must be one of"):
        benchmark.certify(clf, x, 0.25, 100, 1000, 0.001, certificate="cascade")
