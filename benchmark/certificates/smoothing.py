"""Randomized smoothing: the one noise sampler, Monte-Carlo counts, the confidence bound, CERTIFY and PREDICT.

This is Cohen, Rosenfeld & Kolter (ICML 2019), "Certified Adversarial Robustness via Randomized Smoothing",
Algorithms 1 (PREDICT) and 2 (CERTIFY), as in locuslab/smoothing ``code/core.py``, with three deliberate
differences that do not change the certificate:

* noise is drawn in fixed blocks of :data:`NOISE_BLOCK` samples from an explicit ``torch.Generator``, so the
  counts for an image depend on the generator's seed only, never on ``batch_size`` (the released code draws one
  ``randn_like`` per batch, so its results change with the batch size);
* votes are counted with ``torch.bincount`` on the device instead of a NumPy loop;
* PREDICT uses ``scipy.stats.binomtest`` (``binom_test`` was removed in SciPy 1.12).

Everything is in [0, 1] pixel units: ``sigma`` is the noise standard deviation on images in [0, 1] and the
classifier normalises inside (Cohen et al. issues #6 and #12).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import beta, binomtest, norm

from benchmark.certificates.engines import ENGINES, build_engine
from benchmark.certificates.inputs import check_image, keeping_modes
from benchmark.certificates.sampling import NOISE_BLOCK, add_noise, image_generator, packed_counts, sample_counts

__all__ = [
    "ABSTAIN",
    "NOISE_BLOCK",
    "Certificate",
    "add_noise",
    "certify",
    "clopper_pearson_lower",
    "image_generator",
    "max_radius",
    "predict",
    "predict_from_counts",
    "radius_from_p",
    "packed_counts",
    "sample_counts",
]

ABSTAIN = -1
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)  # the radii the suites tabulate by default (config.run_config.DEFAULT_RADII)
Classifier = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Certificate:
    """Outcome of CERTIFY for one input.

    Attributes:
        prediction: the certified class, or -1 (:data:`ABSTAIN`).
        radius: certified l2 radius in [0, 1] pixel units (0.0 on abstain), at full precision.
        p_a_lower: one-sided (1 - alpha) Clopper-Pearson lower bound on P(f(x + noise) = prediction).
        n_top: votes for the selected class among the ``n`` estimation samples.
        n: number of estimation samples.
        n_used: noisy samples the certifier classified (selection and estimation), as counted.
        mode: which certificate made it (the name of its :class:`~benchmark.certificates.certifier.Certifier`).
        details: what that certificate adds to a record (its docstring says what; None: nothing).
    """

    prediction: int
    radius: float
    p_a_lower: float
    n_top: int
    n: int
    n_used: int = 0
    mode: str = "fixed"
    details: dict | None = None


def _check(sigma: float, n: int, alpha: float, n0: int | None = None) -> None:
    if not (isinstance(sigma, int | float) and np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    if n0 is not None and (int(n0) != n0 or n0 < 1):
        raise ValueError(f"n0 must be an integer >= 1, got {n0!r}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")


def clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower confidence bound on a binomial proportion.

    Equals ``statsmodels.proportion_confint(k, n, alpha=2 * alpha, method="beta")[0]`` as used by Cohen et al.
    """
    if k <= 0:
        return 0.0
    return float(beta.ppf(alpha, k, n - k + 1))


def radius_from_p(sigma: float, p_a_lower: float) -> float:
    """Certified l2 radius ``sigma * Phi^-1(p_a_lower)`` (Cohen et al., Theorem 1 with p_B = 1 - p_A)."""
    return float(sigma * norm.ppf(p_a_lower))


def engine(classifier: Classifier, device: torch.device, precision: str | None) -> Classifier:
    """``classifier`` for Monte-Carlo voting at ``precision`` through the eager engine: eval mode, no autograd,
    channels_last and autocast (:func:`benchmark.certificates.engines.build_engine`); as given for None or a
    classifier already wrapped."""
    return build_engine(classifier, device, precision, "eager")


def max_radius(sigma: float, n: int, alpha: float) -> float:
    """Largest radius CERTIFY can return with ``n`` samples: all votes for one class, ``sigma*Phi^-1(alpha^(1/n))``."""
    return radius_from_p(sigma, alpha ** (1.0 / n))


def certify(
    classifier: Classifier,
    x: torch.Tensor,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    precision: str | None = "auto",
    *,
    certificate: str = "fixed",
    radii: Sequence[float] = GRID,
    engine: str = "eager",
) -> Certificate:
    """CERTIFY of Cohen et al. (2019), Algorithm 2, or the same certificate decided sequentially.

    ``certificate="fixed"``: selects the top class from ``n0`` noisy samples, then counts its votes among ``n``
    fresh samples; abstains when the one-sided (1 - alpha) Clopper-Pearson lower bound ``p_a_lower`` is below 1/2,
    and otherwise certifies radius ``sigma * Phi^-1(p_a_lower)``. With probability at least 1 - alpha over the
    noise, the returned class is that of the smoothed classifier at every point within the radius (or the call
    abstains). ``"sequential"`` and ``"adaptive"`` (:mod:`benchmark.certificates.sequential`) give a certificate as
    valid, drawing at most ``n`` samples and stopping once the grid ``radii`` is decided.

    Args:
        classifier: maps ``[B,C,H,W]`` images in [0, 1] to logits ``[B,K]``.
        x: image ``[C,H,W]`` in [0, 1].
        sigma: noise standard deviation in [0, 1] pixel units, > 0.
        n0: number of selection samples, >= 1.
        n: number of estimation samples (a sequential certificate's most), >= 1.
        alpha: failure probability, in (0, 1).
        batch_size: samples per forward pass (does not change the result).
        generator: source of the noise (see :func:`image_generator`).
        precision: run ``classifier`` through the harness' inference engine at "auto" (bf16 autocast where the
            device runs it natively, else fp32: a run's default), "bf16", "fp16" or "fp32"; None uses it as given.
        certificate: "fixed", "sequential" or "adaptive" (what ``run --certify`` takes).
        radii: the grid of radii a sequential certificate decides (default: the suites' grid).
        engine: how the forward pass runs (:mod:`benchmark.certificates.engines`; a run's default: "eager").

    Returns:
        A :class:`Certificate`. The classifier's train/eval modes are as the caller left them.

    Raises:
        ValueError: a bad sigma, n0, n, alpha, certificate or engine, or an image that is not a float [C,H,W] tensor
            of finite pixels in [0, 1] (:func:`benchmark.certificates.inputs.check_image`).
    """
    from benchmark.certificates.registry import RUN_CERTIFICATES, certifier_class  # it imports this module

    _check(sigma, n, alpha, n0)
    check_image(x)
    if certificate not in RUN_CERTIFICATES:
        raise ValueError(f"certificate must be one of {', '.join(RUN_CERTIFICATES)}, got {certificate!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    with keeping_modes(classifier):
        wrapped = build_engine(classifier, x.device, precision, engine)
        return certifier_class(certificate)().certify(
            [(sigma, wrapped)], x, n0=n0, n=n, alpha=alpha, batch_size=batch_size, generator=generator, radii=radii
        )


def certify_counts(
    classifier: Classifier,
    x: torch.Tensor,
    sigma: float,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int,
    generator: torch.Generator | None,
) -> Certificate:
    """CERTIFY's selection, estimation and bound on a classifier used as given (the harness wraps it once per
    cell; :func:`certify` checks the image and wraps the caller's model around this)."""
    selection = sample_counts(classifier, x, sigma, n0, batch_size, generator)
    c_a = int(selection.argmax())
    estimation = sample_counts(classifier, x, sigma, n, batch_size, generator)
    n_a = int(estimation[c_a]) if c_a < len(estimation) else 0
    p_a_lower = clopper_pearson_lower(n_a, n, alpha)
    n_used = int(selection.sum()) + int(estimation.sum())
    if p_a_lower < 0.5:
        return Certificate(ABSTAIN, 0.0, p_a_lower, n_a, n, n_used)
    return Certificate(c_a, radius_from_p(sigma, p_a_lower), p_a_lower, n_a, n, n_used)


def predict(
    classifier: Classifier,
    x: torch.Tensor,
    sigma: float,
    n: int,
    alpha: float,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    precision: str | None = "auto",
) -> int:
    """PREDICT of Cohen et al. (2019), Algorithm 1: the smoothed prediction, or -1 (abstain).

    Abstains unless a two-sided binomial test rejects, at level ``alpha``, that the top two classes are equally
    likely (Hung & Fithian 2019); the returned class is then wrong with probability at most ``alpha``.
    """
    _check(sigma, n, alpha)
    check_image(x)
    with keeping_modes(classifier):
        counts = sample_counts(engine(classifier, x.device, precision), x, sigma, n, batch_size, generator)
    return predict_from_counts(counts, alpha)


def predict_from_counts(counts: torch.Tensor, alpha: float) -> int:
    """PREDICT's decision on the class counts of its ``n`` noisy samples (see :func:`predict`)."""
    counts = counts.cpu()
    top2 = torch.topk(counts, k=min(2, len(counts)))
    c1 = int(top2.values[0])
    c2 = int(top2.values[1]) if len(counts) > 1 else 0
    if binomtest(c1, c1 + c2, p=0.5).pvalue > alpha:
        return ABSTAIN
    return int(top2.indices[0])
