"""The cascaded certificate (benchmark.certificates.cascade): analytic cases, the alpha split, and soundness by
simulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from benchmark.certificates.cascade import (
    Stage,
    certify_cascade,
    clopper_pearson_upper,
    decide_cascade,
    measure_stage,
    stage_alphas,
)
from benchmark.certificates.smoothing import ABSTAIN, clopper_pearson_lower, max_radius
from tests.conftest import ConstantClassifier

N0, N, ALPHA = 100, 10_000, 0.001


def _detail(cert, name: str):
    """A field the cascade certificate adds to its records (absent: None)."""
    return (cert.details or {}).get(name)


X = torch.full((1, 4, 4), 0.5)


class Spread(torch.nn.Module):
    """Votes for the class of the largest of the first ``k`` noisy pixels: each of k classes with probability 1/k
    whatever the image (the noise is i.i.d.), so no class ever reaches 1/2 for k >= 3."""

    def __init__(self, k: int, num_classes: int = 10):
        super().__init__()
        self.k, self.num_classes = k, num_classes

    def forward(self, x):
        logits = torch.full((len(x), self.num_classes), -1e9)
        logits[:, : self.k] = x.flatten(1)[:, : self.k]
        return logits


class Coin(torch.nn.Module):
    """Class 0 when the first noisy pixel is above the clean value, else class 1: p = 1/2 exactly, undecidable."""

    def forward(self, x):
        logits = torch.zeros(len(x), 10)
        logits[:, 0] = (x.flatten(1)[:, 0] > 0.5).float()
        logits[:, 1] = 0.5
        return logits


def cascade(stages, **kw):
    return certify_cascade(stages, X, N0, N, ALPHA, batch_size=2_000, generator=torch.Generator().manual_seed(0), **kw)


def test_confident_large_sigma_certifies_there_beyond_the_small_sigma_limit():
    cert = cascade([(0.25, ConstantClassifier(7)), (0.5, ConstantClassifier(7)), (1.0, ConstantClassifier(7))])
    assert (cert.prediction, _detail(cert, "stage"), _detail(cert, "sigma_used"), _detail(cert, "r_neg")) == (
        7,
        0,
        1.0,
        None,
    )
    # all 10,000 votes at sigma 1 with the first stage's alpha share (alpha / 5)
    assert cert.radius == pytest.approx(1.0 * norm.ppf(clopper_pearson_lower(N, N, ALPHA / 5)))
    assert cert.radius > max_radius(0.25, N, ALPHA) and cert.n_used == N0 + N and cert.mode == "cascade"


def test_spread_large_sigma_falls_back_to_the_smaller_with_the_cap():
    cert = cascade([(1.0, Spread(4)), (0.5, ConstantClassifier(2)), (0.25, ConstantClassifier(5))])
    assert (cert.prediction, _detail(cert, "stage"), _detail(cert, "sigma_used")) == (
        2,
        1,
        0.5,
    ) and cert.n_used == 2 * (N0 + N)
    uncapped = 0.5 * norm.ppf(clopper_pearson_lower(N, N, ALPHA / 5))
    # the stage at sigma 1 gave classes 0-3 about 1/4 each: the cap is sigma_1 (Phi^-1(1/2) - Phi^-1(u)), u ~ 1/4
    assert _detail(cert, "r_neg") is not None and -_detail(cert, "r_neg") < uncapped
    assert cert.radius == pytest.approx(-_detail(cert, "r_neg")) and 0.55 < cert.radius < 0.75


def test_undecided_stage_abstains_without_trying_smaller_sigmas():
    cert = cascade([(1.0, Coin()), (0.5, ConstantClassifier(3)), (0.25, ConstantClassifier(3))])
    assert (cert.prediction, cert.radius, _detail(cert, "stage")) == (ABSTAIN, 0.0, 0) and cert.n_used == N0 + N


def test_every_stage_abstaining_abstains():
    cert = cascade([(1.0, Spread(4)), (0.5, Spread(5)), (0.25, Spread(3))])
    assert (cert.prediction, cert.radius, _detail(cert, "stage"), _detail(cert, "sigma_used")) == (
        ABSTAIN,
        0.0,
        2,
        None,
    )
    assert cert.n_used == 3 * (N0 + N)


def test_same_class_at_an_earlier_stage_does_not_cap():
    """Only classes other than the certified one must stay below p0 at the larger sigmas."""
    low = Stage(1.0, 4, 0.4, 0, (0.01,) * 4 + (0.45,) + (0.01,) * 5, 1)
    top = Stage(0.5, 4, 0.99, 0, (1.0,) * 10, 1)
    prediction, radius, k, r_neg = decide_cascade([low, top], 0.5)
    # class 4's own 0.45 at sigma 1 is ignored: the cap comes from the others' 0.01 and does not bind here
    assert (prediction, k) == (4, 1) and r_neg == pytest.approx(1.0 * norm.ppf(0.01))
    assert radius == pytest.approx(0.5 * norm.ppf(0.99)) and radius < -r_neg


def test_alpha_split_sums_to_alpha_and_the_released_one_does_not():
    for k in (1, 2, 3, 5):
        lows, ups = stage_alphas(k, ALPHA)
        assert sum(lows) + sum(ups) == pytest.approx(ALPHA) and ups[-1] == 0.0
    released = [ALPHA / (k + 1) for k in range(3)]  # the released code's alpha / (k + 1) per stage
    assert sum(released) == pytest.approx(ALPHA * (1 + 1 / 2 + 1 / 3))  # 1.83 alpha on the lower bounds alone


def _true_radius(probs: list[np.ndarray], sigmas: list[float], cls: int, k: int, p0: float) -> float:
    """The largest radius the Lipschitz argument gives with the exact stage probabilities (0: not certifiable)."""
    if probs[k][cls] < p0:
        return 0.0
    radius = sigmas[k] * (norm.ppf(probs[k][cls]) - norm.ppf(p0))
    for j in range(k):
        other = max(p for c, p in enumerate(probs[j]) if c != cls)
        radius = min(radius, -sigmas[j] * (norm.ppf(other) - norm.ppf(p0)))
    return max(radius, 0.0)


def _simulate(probs, sigmas, n0, n, alpha, trials, seed, cap=True):
    """Failures (a certificate beyond what the exact probabilities allow) of the cascade on multinomial counts."""
    rng = np.random.default_rng(seed)
    lows, ups = stage_alphas(len(sigmas), alpha)
    failures = 0
    for _ in range(trials):
        stages = []
        for k, sigma in enumerate(sigmas):
            stage = measure_stage(
                lambda m, p=probs[k]: torch.from_numpy(rng.multinomial(m, p)), sigma, n0, n, lows[k], ups[k]
            )
            if not cap and stage.p_low < 0.5:  # a cascade without the cap: earlier stages bound nothing
                stage = Stage(sigma, stage.selected, stage.p_low, stage.n_top, (0.0,) * len(probs[k]), stage.samples)
            stages.append(stage)
            if stage.p_low >= 0.5 or max(stage.uppers) >= 0.5:
                break
        prediction, radius, k, _ = decide_cascade(stages, 0.5)
        if prediction != ABSTAIN and radius > _true_radius(probs, sigmas, prediction, k, 0.5) + 1e-12:
            failures += 1
    return failures


# Stage 0 (sigma 1) gives class 1 p = 0.4 (a cap of sigma_0 * 0.253 on any certificate of another class) and abstains
# confidently most of the time at n = 400; stage 1 (sigma 0.5) gives class 0 p = 0.9, whose own radius (0.64) the cap
# binds: an upper bound at stage 0 that undershoots 0.4 is what would make a certificate wrong.
PROBS = [np.array([0.0, 0.4, 0.32, 0.28]), np.array([0.9, 0.05, 0.05, 0.0])]


def test_cascade_is_sound_at_alpha_005():
    trials, alpha = 2_000, 0.05
    failures = _simulate(PROBS, [1.0, 0.5], 20, 400, alpha, trials, seed=1)
    assert failures / trials <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / trials)


def test_the_soundness_check_catches_a_cascade_without_its_cap():
    trials, alpha = 400, 0.05
    assert _simulate(PROBS, [1.0, 0.5], 20, 400, alpha, trials, seed=1, cap=False) / trials > 0.3


def test_upper_bound_is_the_mirror_of_the_lower():
    assert clopper_pearson_upper(30, 100, 0.01) == pytest.approx(1 - clopper_pearson_lower(70, 100, 0.01))
    assert clopper_pearson_upper(100, 100, 0.01) == 1.0


def test_multiscale_composes_single_sigma_fits_and_refuses_other_certificates(tmp_path):
    from baselines.multiscale import Multiscale, MultiscaleGaussian
    from benchmark.certificates.device import SmoothingClassifier
    from benchmark.certificates.registry import certifier_for
    from benchmark.errors import BenchmarkError
    from benchmark.method import cost
    from tests.test_contract import context, tiny_base

    ctx = context(tmp_path)
    method = MultiscaleGaussian(MultiscaleGaussian.Config.tiny(), tiny_base("cnn"), ctx)
    assert [p.name for p in ctx.composed] == ["gaussian", "gaussian"] and not method.needs_fit()
    # the gaussian fine-tunes at 0.25 and 0.5 are two full models: both are the cascade's cost
    assert cost(method)["trainable_params"] == 2 * sum(p.numel() for p in tiny_base("cnn").parameters())
    certifier = certifier_for(method.config, "fixed", method.name)
    assert certifier.sigmas(0.25) == (0.25, 0.5) and certifier.cell_sigmas([0.25, 0.5, 1.0]) == [0.25]
    assert certifier.cell_sigmas([0.5]) == []  # run only when its smallest sigma is selected
    stages = [(s, SmoothingClassifier(method.noisy_classifier(s), torch.device("cpu"), None)) for s in (0.25, 0.5)]
    assert stages[0][1].model is not stages[1][1].model  # one fit per sigma, each its own stage
    x = torch.rand(1, 8, 8)
    cert = certifier.certify(stages, x, n0=10, n=50, alpha=0.01, batch_size=30, generator=torch.Generator())
    assert cert.mode == "cascade" and _detail(cert, "stage") in (0, 1)
    with pytest.raises(BenchmarkError, match="without --certify sequential"):
        certifier_for(method.config, "sequential", method.name)
    with pytest.raises(BenchmarkError, match="single-sigma methods only"):
        Multiscale(Multiscale.Config(over="multiscale_gaussian", sigmas=(0.25, 0.5)), tiny_base("cnn"), ctx)
    with pytest.raises(ValueError, match="distinct"):
        Multiscale.Config(sigmas=(0.5, 0.5))


def test_an_unranked_cascade_run_says_why_by_its_run_not_by_its_record_mode():
    """Cascade records carry mode "cascade", yet each stage is the fixed-n CERTIFY: a cascade run left out of the
    ranking is so for its precision or its unpublished fits, and only a sequential run is named by its mode."""
    import pandas as pd

    from benchmark.report.table import _unranked_reason

    meta = {
        "ranked": False,
        "latest": True,
        "mode": "cascade",
        "run_mode": "fixed",
        "status": "complete",
        "fit_published": False,
    }
    assert _unranked_reason(pd.Series(meta)) == "fit not published"
    assert _unranked_reason(pd.Series({**meta, "fit_published": True})) == "other precision"
    assert _unranked_reason(pd.Series({**meta, "status": "partial"})) == "partial"
    assert _unranked_reason(pd.Series({**meta, "run_mode": "sequential"})) == "sequential CERTIFY"
    assert _unranked_reason(pd.Series({**meta, "ranked": True})) == ""
    # a complete smoke run (--max-images) of a committed suite with its fits published
    meta = {**meta, "fit_published": True, "subset_size": 200, "suite": "cifar10-cpu", "whole_subset_only": True}
    assert _unranked_reason(pd.Series(meta), n_images=1) == "1 of 200 images"
    assert _unranked_reason(pd.Series(meta), n_images=200) == "other precision"
    # a suite whose results are not committed ranks a short run: one left out is so for its precision
    assert _unranked_reason(pd.Series({**meta, "whole_subset_only": False}), n_images=1) == "other precision"


class Quarters(torch.nn.Module):
    """Votes 0, 1, 2, 3, 0, 1, ... by position in the batch whatever the image: in batches of a multiple of 4, each
    of the four classes gets exactly a quarter of the votes (a known answer for the stage's upper bounds)."""

    def forward(self, x):
        logits = torch.zeros(len(x), 10)
        logits[torch.arange(len(x)), torch.arange(len(x)) % 4] = 1.0
        return logits


def test_the_cap_uses_the_upper_bound_at_its_alpha_share():
    """With exact counts at sigma 1 (2,500 of 10,000 for each of classes 0-3), the cap is pinned: the upper bounds
    at the first stage's share alpha / 5, split over the 10 classes."""
    cert = cascade([(1.0, Quarters()), (0.5, ConstantClassifier(2)), (0.25, ConstantClassifier(5))])
    u = clopper_pearson_upper(N // 4, N, ALPHA / 5 / 10)
    assert (cert.prediction, _detail(cert, "stage")) == (2, 1)
    assert _detail(cert, "r_neg") == pytest.approx(1.0 * norm.ppf(u)) and cert.radius == pytest.approx(
        -_detail(cert, "r_neg")
    )
    # the released split's level for the same bound (alpha / 1, Goodman aside) would give a larger radius
    assert -1.0 * norm.ppf(clopper_pearson_upper(N // 4, N, ALPHA / 10)) > cert.radius


def test_stage_shares_separate_certified_from_correctly_certified():
    import pandas as pd

    from benchmark.certificates.cascade import CascadeCertifier

    details = [
        {"stage": 0, "sigma_used": 1.0},
        {"stage": 0, "sigma_used": 1.0},
        {"stage": 1, "sigma_used": 0.5},
        {"stage": 2},
    ]
    group = pd.DataFrame({"details": details, "correct": [1, 0, 1, 0]})
    assert CascadeCertifier.row_notes(group) == "50.0% at 1 (25.0% correctly), 25.0% at 0.5 (25.0% correctly)"
    assert CascadeCertifier.row_notes(group.assign(details=[None] * 4)) == "none certified"


def test_a_cascades_fit_cost_counts_each_published_fit_it_composes_once(tmp_path):
    import json

    import pandas as pd

    from benchmark.report.frame import composed_fit_time
    from benchmark.report.table import _fit_time
    from benchmark.run.records import Run, RunInfo

    directory = tmp_path / "cifar10-cpu" / "multiscale" / "resnet20" / "sigma_0.25" / "abc"
    directory.mkdir(parents=True)
    for fhash, seconds in (("d1", 100.0), ("d2", 40.0)):
        (tmp_path / "checkpoints" / "diffusion" / fhash).mkdir(parents=True)
        (tmp_path / "checkpoints" / "diffusion" / fhash / "fit.json").write_text(json.dumps({"fit_time_s": seconds}))
    stages = {
        "diffusion": {"fit_hash": "d1"},
        "diffusion@0.5": {"fit_hash": "d1", "method": "diffusion"},
        "diffusion@1": {"fit_hash": "d2", "method": "diffusion"},
    }
    run = Run(directory, RunInfo("cifar10-cpu", "multiscale", "resnet20", 0.25, fit={"composes": stages}), [])
    assert composed_fit_time(run) == 140.0  # d1 serves two stages: one fit, counted once
    assert _fit_time(pd.Series({"fit_time_s": 0.0, "composed_fit_time_s": 140.0})) == 140.0
    assert _fit_time(pd.Series({"fit_time_s": 5.0, "composed_fit_time_s": None})) == 5.0
    stages["diffusion@1"]["fit_hash"] = "unpublished"
    assert composed_fit_time(run) is None  # its cost is unknown here, not zero
    assert composed_fit_time(Run(directory, RunInfo("cifar10-cpu", "gaussian", "resnet20", 0.25), [])) is None
