"""Certification throughput of the cifar10-cpu classifiers (pytest-benchmark).

The default test run only checks that each case works (benchmarks are disabled in ``addopts``); measure with
``OMP_NUM_THREADS=1 python -m pytest tests/test_benchmarks.py --benchmark-enable`` (one thread: the suite's
queues run that way). Noisy samples per second = ``SAMPLES / mean``. These are the numbers behind the suite's
batch size (``benchmark/config/suites/cifar10-cpu.toml``) and the README's per-image times; weights are random, which
does not change the cost.
"""

from __future__ import annotations

import functools

import pytest
import torch

from baselines.denoised_smoothing import Denoised, DnCNN
from benchmark.bases.published import CifarResNet, ViTTinyP4
from benchmark.certificates.device import Precision, SmoothingClassifier, resolve_precision
from benchmark.certificates.smoothing import image_generator, sample_counts

SAMPLES = 1000


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "resnet20":
        return CifarResNet(3)
    if name == "dncnn6x32+resnet20":
        return Denoised(DnCNN(3, depth=6, width=32), CifarResNet(3))
    return ViTTinyP4().architecture()


def _image() -> torch.Tensor:
    return torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))


@functools.cache
def _reference_counts(name: str, samples: int) -> tuple[int, ...]:
    """The votes of a fresh copy of the model's weights, called bare (no wrapper) in fp32 on the noise of image 0 of
    seed 0, in batches of 30 (not the benchmark's batch size)."""
    with torch.no_grad():
        counts = sample_counts(_model(name).eval(), _image(), 0.25, samples, 30, image_generator(0, 0))
    return tuple(counts.tolist())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("batch_size", [200, 1000])
@pytest.mark.parametrize("model", ["resnet20", "dncnn6x32+resnet20", "vit_tiny_p4"])
def test_certification_throughput(benchmark, model, batch_size, precision):
    device = torch.device("cpu")
    bf16 = precision == "bf16"
    if bf16 and resolve_precision("auto", device) is not Precision.BF16:
        pytest.skip("this CPU has no native bf16 (emulated bf16 is 10-50x slower than fp32)")
    classifier = SmoothingClassifier(_model(model), device, Precision(precision))
    x = _image()
    # With benchmarks disabled this runs once, as a test: a small count keeps the default run fast.
    samples = SAMPLES if not benchmark.disabled else 100

    def run():
        return sample_counts(classifier, x, 0.25, samples, batch_size, image_generator(0, 0))

    counts = benchmark(run)
    # The wrapper (eval, no grad, channels_last, autocast) and the batch size change nothing but speed: the votes
    # equal those of the bare model in fp32 in other batches. In bf16 the top class is the same and few votes move.
    reference = torch.tensor(_reference_counts(model, samples))
    assert int(reference.sum()) == samples and reference.shape == (10,)
    if bf16:
        assert int(counts.sum()) == samples and int(counts.argmax()) == int(reference.argmax())
        assert int((counts - reference).abs().sum()) <= 0.2 * samples, (counts.tolist(), reference.tolist())
    else:
        assert counts.tolist() == reference.tolist()
    benchmark.extra_info["noisy_images_per_s"] = samples / benchmark.stats["mean"] if benchmark.stats else None
