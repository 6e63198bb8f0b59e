"""Known-answer and soundness tests of CERTIFY / PREDICT (Cohen et al. 2019)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import beta, binom, norm

from benchmark import certify, predict
from benchmark.certificates.smoothing import (
    ABSTAIN,
    clopper_pearson_lower,
    image_generator,
    max_radius,
    sample_counts,
)
from tests.conftest import ConstantClassifier, LinearClassifier


def test_constant_classifier_known_answer():
    """All n votes for one class: p_a_lower = alpha^(1/n) exactly, radius = sigma * Phi^-1(alpha^(1/n))."""
    x = torch.rand(3, 4, 4)
    n, alpha, sigma = 1000, 0.001, 0.5
    cert = certify(ConstantClassifier(7), x, sigma, n0=10, n=n, alpha=alpha, batch_size=128)
    assert cert.prediction == 7 and cert.n_top == n and cert.n == n
    assert cert.p_a_lower == pytest.approx(alpha ** (1 / n), rel=1e-12)
    assert cert.radius == pytest.approx(sigma * norm.ppf(alpha ** (1 / n)), rel=1e-10)
    assert cert.radius == pytest.approx(max_radius(sigma, n, alpha), rel=1e-12)
    # the table in REFERENCES.md: Phi^-1(0.001^(1/10000)) = 3.20 (R_max 0.80 at sigma 0.25)
    assert max_radius(0.25, 10_000, 0.001) == pytest.approx(0.80, abs=0.005)


@pytest.mark.parametrize("k,n", [(1, 10), (50, 100), (99, 100), (7371, 10000), (10000, 10000)])
@pytest.mark.parametrize("alpha", [0.001, 0.05])
def test_bound_is_beta_quantile(k, n, alpha):
    """One-sided (1-alpha) Clopper-Pearson = Beta(k, n-k+1) quantile at alpha (= proportion_confint(2 alpha))."""
    assert clopper_pearson_lower(k, n, alpha) == pytest.approx(beta.ppf(alpha, k, n - k + 1), rel=1e-12)
    # coverage definition: P(X >= k | p = bound) = alpha
    bound = clopper_pearson_lower(k, n, alpha)
    assert binom.sf(k - 1, n, bound) == pytest.approx(alpha, rel=1e-6)
    assert clopper_pearson_lower(0, n, alpha) == 0.0


def test_abstains_below_half():
    """A classifier that is right about half the time must abstain (p_a_lower < 0.5) with radius 0."""
    clf = LinearClassifier(torch.tensor([1.0, 0.0]), 0.0)
    x = torch.zeros(1, 1, 2)  # on the hyperplane: p_A = 1/2
    cert = certify(clf, x, 0.5, n0=100, n=2000, alpha=0.001, generator=image_generator(0, 0))
    assert cert.prediction == ABSTAIN and cert.radius == 0.0 and cert.p_a_lower < 0.5


def test_counts_do_not_depend_on_batch_size():
    clf = LinearClassifier(torch.tensor([1.0, -2.0, 0.5, 1.0]), 0.1)
    x = torch.rand(1, 2, 2)
    ref = sample_counts(clf, x, 0.7, 1234, batch_size=1000, generator=image_generator(3, 9))
    for bs in (1, 37, 100, 5000):
        got = sample_counts(clf, x, 0.7, 1234, batch_size=bs, generator=image_generator(3, 9))
        assert torch.equal(got, ref)
    assert int(ref.sum()) == 1234


def test_certify_is_deterministic_per_seed_and_index():
    clf = LinearClassifier(torch.tensor([1.0, -1.0]), 0.05)
    x = torch.tensor([[[0.3, 0.1]]])
    a = certify(clf, x, 0.25, 100, 500, 0.01, batch_size=64, generator=image_generator(0, 5))
    b = certify(clf, x, 0.25, 100, 500, 0.01, batch_size=500, generator=image_generator(0, 5))
    c = certify(clf, x, 0.25, 100, 500, 0.01, generator=image_generator(0, 6))
    assert a == b
    assert a.n_top != c.n_top or a.radius != c.radius  # another index draws other noise


def test_linear_classifier_soundness():
    """Certificates exceed the true radius |w.x+b|/||w|| with probability <= alpha (Cohen et al., Thm 1 + CP)."""
    rng = np.random.default_rng(0)
    w, b = torch.tensor([0.6, -0.8]), 0.1  # unit norm; the hyperplane through the centre (0.5, 0.5) of the box
    clf = LinearClassifier(w, b)
    alpha, sigma, points = 0.05, 0.5, 400
    violations = certified = 0
    for i in range(points):
        x = torch.tensor(rng.uniform(0, 1, size=(1, 1, 2)), dtype=torch.float32)
        score = float((x.flatten() * w).sum()) + b
        true_radius, true_class = abs(score), int(score > 0)
        cert = certify(clf, x, sigma, n0=50, n=200, alpha=alpha, batch_size=250, generator=image_generator(1, i))
        if cert.prediction == ABSTAIN:
            continue
        certified += 1
        if cert.prediction != true_class or cert.radius > true_radius + 1e-9:
            violations += 1
    assert certified > points // 2
    # consistent with a violation rate <= alpha: the one-sided binomial p-value must not be tiny
    assert binom.sf(violations - 1, certified, alpha) > 1e-3, (violations, certified)


def test_radius_is_never_beyond_truth_for_clear_cases():
    """With exact arithmetic on a far point the certificate approaches but never passes the true radius."""
    clf = LinearClassifier(torch.tensor([1.0, 0.0]), 0.0)
    x = torch.tensor([[[0.3, 0.0]]])
    cert = certify(clf, x, 0.25, 100, 20_000, 0.001, batch_size=5000, generator=image_generator(0, 0))
    assert cert.prediction == 1
    assert 0.2 < cert.radius < 0.3


def test_predict():
    x = torch.rand(1, 2, 2)
    assert predict(ConstantClassifier(3), x, 0.25, n=100, alpha=0.001) == 3
    # Cohen et al. #8: with n = 10 even unanimous votes cannot reach alpha = 0.001 -> abstain
    assert predict(ConstantClassifier(3), x, 0.25, n=10, alpha=0.001) == ABSTAIN
    balanced = LinearClassifier(torch.tensor([1.0, 0.0, 0.0, 0.0]), 0.0)
    assert predict(balanced, torch.zeros(1, 2, 2), 1.0, 1000, 0.001, generator=image_generator(0, 1)) == ABSTAIN


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"n0": 0}, "n0"),
        ({"n": 0}, "n"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.0}, "alpha"),
        ({"sigma": math.nan}, "sigma"),
    ],
)
def test_invalid_arguments(kwargs, match):
    args = {"sigma": 0.25, "n0": 10, "n": 10, "alpha": 0.01} | kwargs
    with pytest.raises(ValueError, match=match):
        certify(ConstantClassifier(0), torch.rand(1, 2, 2), **args)


def test_the_public_api_runs_the_inference_engine_at_the_precision_asked():
    """certify/predict wrap a plain model once (eval, no grad, channels_last, autocast); None takes it as given."""
    from benchmark.certificates.device import SmoothingClassifier
    from benchmark.certificates.smoothing import engine

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(256, 3))
    wrapped = engine(model, torch.device("cpu"), "bf16")
    assert isinstance(wrapped, SmoothingClassifier) and wrapped.dtype == torch.bfloat16
    assert (
        engine(wrapped, torch.device("cpu"), "fp32") is wrapped and engine(model, torch.device("cpu"), None) is model
    )
    assert engine(model, torch.device("cpu"), "fp32").dtype is None
    x = torch.rand(1, 8, 8)
    with torch.no_grad():
        exact = certify(model, x, 0.25, 100, 1000, 0.001, generator=image_generator(0, 1), precision=None)
        fp32 = certify(model, x, 0.25, 100, 1000, 0.001, generator=image_generator(0, 1), precision="fp32")
    assert exact == fp32  # the engine in fp32 changes the speed, not the votes
    with pytest.raises(ValueError, match="precision must be"):
        engine(model, torch.device("cpu"), "fp8")


@pytest.mark.parametrize("native,expected", [(False, False), (True, True)])
def test_auto_precision_needs_native_bf16(monkeypatch, native, expected):
    """oneDNN calls bf16 supported on plain AVX-512, where it is emulated and slower than fp32: "auto" follows the
    CPU's bf16 instructions, not oneDNN's flag."""
    import benchmark.certificates.device as device_module

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    cpu, precision = torch.device("cpu"), device_module.Precision
    assert device_module.resolve_precision("auto", cpu) is (precision.BF16 if expected else precision.FP32)
    assert device_module.resolve_precision("fp32", cpu) is precision.FP32
    assert device_module.resolve_precision("bf16", cpu) is precision.BF16


@pytest.mark.parametrize(
    "image,match",
    [
        (torch.full((1, 4, 4), float("nan")), "NaN or infinite"),
        (torch.full((1, 4, 4), float("inf")), "NaN or infinite"),
        (torch.full((1, 4, 4), 1.5), r"must lie in \[0,1\]"),
        (torch.full((1, 4, 4), -0.1), r"must lie in \[0,1\]"),
        (torch.zeros(1, 1, 4, 4), r"one image \[C,H,W\].*x\[0\]"),
        (torch.zeros(16), r"one image \[C,H,W\]"),
        (torch.zeros(1, 4, 4, dtype=torch.uint8), "float image.*uint8"),
        ([[0.5]], "torch.Tensor"),
    ],
)
def test_the_public_api_refuses_an_image_it_cannot_certify(image, match):
    """A NaN pixel, values outside [0,1], a batch, a flat vector, integer pixels or a list: one clear error before
    any sample is drawn (a NaN image was once certified at radius 0.6)."""
    model = ConstantClassifier(3)
    for call in (lambda: certify(model, image, 0.25, 10, 100, 0.001), lambda: predict(model, image, 0.25, 100, 0.001)):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("training", [True, False])
def test_certify_and_predict_leave_the_models_mode_as_it_was(training):
    """The engine votes in eval mode; the caller's model (and each submodule) comes back in the mode it had."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10), torch.nn.Dropout(0.5)).train(training)
    model[2].train(not training)  # a submodule in the other mode stays so too
    x = torch.rand(1, 4, 4)
    certify(model, x, 0.25, 10, 100, 0.001, generator=image_generator(0, 0))
    assert model.training is training and model[1].training is training and model[2].training is not training
    predict(model, x, 0.25, 100, 0.001, generator=image_generator(0, 1))
    assert model.training is training and model[2].training is not training
