"""Multi-scale (cascaded) smoothing: Jeong & Shin (NeurIPS 2023), "Multi-scale diffusion denoised smoothing"
(../shared/REFERENCES.md section 4; jh-jeong/smoothing-multiscale).

``multiscale`` composes any registered per-sigma method: each stage is that method's noisy classifier at one sigma
of the set, with that method's fit at that sigma (``diffusion`` by default, the paper's setting: one DDPM for every
sigma; ``multiscale_gaussian`` composes the ``gaussian`` fine-tunes, one per sigma). It trains nothing itself; the
fits it composes come from the fit store like any start and are named in its run.json. Certification is the
cascade of :mod:`benchmark.certificates.cascade`: sigmas from the largest down, certify at the first stage whose
lower bound reaches p0, the radius capped by the larger-sigma stages that abstained confidently, undecided -> abstain.
A cascade is one row per base: its cell sits at the smallest sigma of its set and its records say, per image, the
deciding stage, the sigma used, the cap r_neg and the samples drawn over the stages.

Deviations from the released code, besides the failure-probability split of :mod:`benchmark.certificates.cascade`:

* noise in [0,1] pixel units throughout (the released code's model space is [-1,1], so it scales sigma by 2 and
  divides radii by 2: the same certificate);
* no ``pred_uc`` / ``corr_uc`` bookkeeping: an abstention counts as wrong, as everywhere in this suite;
* the cascade's stages are any registered method, not only the DDPM denoiser;
* a stage uses fixed-n CERTIFY (the sequential certificate is not offered inside a cascade: ``--certify
  sequential`` is refused for cascades).

``multiscale_calibrated`` is the paper's "diffusion calibration", whose code is not public: the suite's DDPM is
fine-tuned through the frozen base, single-step (the one-shot denoiser of ``diffusion``, no back-propagation
through a sampling trajectory). For a clean batch (x, y), each step draws one sigma of the set, m noisy copies
z_i = x + N(0, sigma^2 I) and the base's probabilities p_i = softmax(f(D_sigma(z_i))). An image is *recoverable*
when the base classifies its clean version correctly (r = 1[argmax f(x) = y]). The loss is

    L = w_B * mean_x r * mean_i ||p_i - e_y||^2                          (Brier: consistent, correct outputs)
      + w_AC * mean_x (1 - r) * mean_{i<j} <p_i, p_j>                    (anti-consistency: the chance that two
                                                                           noisy copies agree, pushed down)
      + w_MSE * mean_i ||D_sigma(z_i) - x||^2 / dim                       (keeps D a denoiser)

with w_B = 1, w_AC = 1, w_MSE = 1 and m = 2 by default (``Config``). The anti-consistency term is our reading of
"diverse outputs otherwise": the collision probability of two independent noisy predictions, which is minimal when
the predictions of an unrecoverable image spread over classes, so that the stage abstains and the cascade moves to
a smaller sigma instead of certifying a wrong class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.certificates.smoothing import add_noise
from benchmark.config.train_config import TrainConfig
from benchmark.errors import BenchmarkError
from benchmark.method import Method


def _check_cascade(sigmas: tuple[float, ...], p0: float) -> None:
    if not sigmas or any(not isinstance(s, int | float) or s <= 0 for s in sigmas):
        raise ValueError(f"sigmas must be positive numbers, got {sigmas!r}")
    if len(set(sigmas)) != len(sigmas):
        raise ValueError(f"sigmas must be distinct, got {sigmas!r}")
    if not 0.5 <= p0 < 1.0:  # below 1/2 a class reaching p0 need not be the top class: no certificate
        raise ValueError(f"p0 must lie in [0.5, 1), got {p0!r}")


class _Cascade(Method):
    """What every cascade shares: its config names the cascade certificate (one cell at the smallest sigma, voting
    over a stage per sigma of the set); a subclass builds ``self.parts`` (sigma -> the method whose noisy
    classifier is that stage) or overrides :meth:`stage`."""

    family = "cascade"

    def stage(self, sigma: float) -> nn.Module:
        return self.parts[sigma].noisy_classifier(sigma)

    def noisy_classifier(self, sigma: float) -> nn.Module:
        """The stage at ``sigma``, one of the cascade's noise levels: the cascade certificate votes over each."""
        if sigma not in self.config.sigmas:
            raise ValueError(f"{self.name} has stages at sigma {self.config.sigmas}, not {sigma:g}")
        return self.stage(sigma)

    def report(self, sigma: float) -> dict:
        return {"sigmas": "/".join(f"{s:g}" for s in sorted(self.config.sigmas)), "p0": self.config.p0}


class Multiscale(_Cascade):
    name = "multiscale"
    summary = "nothing: a cascade over sigma 1.0 / 0.5 / 0.25 of another method's fits (`over`, default `diffusion`)"
    paper = "Jeong & Shin 2023"
    version = 1

    @dataclass(frozen=True)
    class Config:
        """Attributes:
        over: the registered per-sigma method each stage is (its fit at that sigma, under the suite's settings).
        sigmas: the noise levels of the cascade (tried from the largest down).
        p0: the probability a stage's top class must reach to certify there (the paper's ``--skip_p``).
        over_settings: settings applied over the suite's for ``over`` (e.g. ``max_sigma = 1.0`` for a DDPM that
            must denoise the largest sigma), so the single-sigma rows of ``over`` keep their own.
        """

        over: str = "diffusion"
        sigmas: tuple[float, ...] = (0.25, 0.5, 1.0)
        p0: float = 0.5
        over_settings: dict[str, Any] = field(default_factory=dict)
        certificate: ClassVar[str] = "cascade"  # a class attribute: not a setting, so no config hash moves

        def __post_init__(self):
            _check_cascade(self.sigmas, self.p0)

        @classmethod
        def tiny(cls):
            return cls(over="gaussian", sigmas=(0.25, 0.5))

    def __init__(self, config, base, ctx):
        super().__init__(config, base, ctx)
        from benchmark.config.registry import METHODS

        if ctx.fit is None:
            raise BenchmarkError(f"{self.name} composes {config.over!r} fits: it needs the harness' ctx.fit")
        if getattr(METHODS.get(config.over).Config, "certificate", None) is not None:
            raise BenchmarkError(f"{self.name} over {config.over!r}: a cascade composes single-sigma methods only")
        self.parts = {sigma: ctx.fit(name, sigma, settings) for name, sigma, settings in self.composes(config)}

    @classmethod
    def composes(cls, config) -> list[tuple[str, float, dict | None]]:
        return [(config.over, s, dict(config.over_settings) or None) for s in sorted(config.sigmas)]

    def report(self, sigma: float) -> dict:
        return {**super().report(sigma), "over": self.config.over}


class MultiscaleGaussian(Multiscale):
    """``multiscale_gaussian``: the cascade over the ``gaussian`` fine-tunes, one per sigma (cheap to certify)."""

    name = "multiscale_gaussian"
    summary = "the `multiscale` cascade over the `gaussian` fine-tunes (one per sigma)"
    paper = "Jeong & Shin 2023, cheap composition"
    family = "cascade"

    @dataclass(frozen=True)
    class Config(Multiscale.Config):
        over: str = "gaussian"


class MultiscaleCalibrated(_Cascade):
    """``multiscale_calibrated``: the cascade over the suite's DDPM after diffusion calibration (module docstring)."""

    name = "multiscale_calibrated"
    summary = (
        'the cascade over the suite\'s DDPM after "diffusion calibration" (Brier + anti-consistency + MSE, '
        "single-step; formulas in `baselines/multiscale.py`)"
    )
    paper = "Jeong & Shin 2023"
    version = 1

    @dataclass(frozen=True)
    class Config:
        """Attributes (see the module docstring for the loss):
        sigmas, p0: the cascade's, as ``multiscale``.
        over_settings: settings applied over the suite's ``diffusion`` ones for the DDPM calibration starts from.
        brier_weight, anti_weight, mse_weight: w_B, w_AC and w_MSE.
        draws: noisy copies m per image and step (>= 2: the anti-consistency term compares pairs).
        train: the fine-tune (AdamW at a small learning rate, a few hundred steps at CPU scale).
        """

        sigmas: tuple[float, ...] = (0.25, 0.5, 1.0)
        p0: float = 0.5
        over_settings: dict[str, Any] = field(default_factory=dict)
        certificate: ClassVar[str] = "cascade"
        brier_weight: float = 1.0
        anti_weight: float = 1.0
        mse_weight: float = 1.0
        draws: int = 2
        train: TrainConfig = field(
            default_factory=lambda: TrainConfig(epochs=1, batch_size=64, optimizer="adamw", lr=2e-5)
        )

        def __post_init__(self):
            _check_cascade(self.sigmas, self.p0)
            if self.draws < 2:
                raise ValueError(f"draws must be >= 2 (the anti-consistency term compares pairs), got {self.draws}")
            if min(self.brier_weight, self.anti_weight, self.mse_weight) < 0:
                raise ValueError("the loss weights must be >= 0")

        @classmethod
        def tiny(cls):
            return cls(
                sigmas=(0.25, 0.5),
                train=TrainConfig(epochs=1, batch_size=16, optimizer="adamw", lr=1e-3, max_steps_per_epoch=2),
            )

    def __init__(self, config, base, ctx):
        super().__init__(config, base, ctx)
        if ctx.fit is None:
            raise BenchmarkError(f"{self.name} calibrates the 'diffusion' fit: it needs the harness' ctx.fit")
        # one DDPM serves every sigma; this method owns its copy and fine-tunes it
        self.diffusion = ctx.fit(*self.composes(config)[0])
        if not self.diffusion.needs_fit():
            raise BenchmarkError(f"{self.name} calibrates the suite's own DDPM: give diffusion no checkpoint")
        self.unet = self.diffusion.unet  # fit_method enables its gradients
        self.base.requires_grad_(False)

    @classmethod
    def composes(cls, config) -> list[tuple[str, float, dict | None]]:
        return [("diffusion", min(config.sigmas), {"max_sigma": max(config.sigmas), **config.over_settings})]

    def stage(self, sigma: float) -> nn.Module:
        return self.diffusion.noisy_classifier(sigma)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.unet.parameters())

    def fit_module(self) -> nn.Module:
        return self.unet

    def train_mode(self) -> None:
        self.unet.train()
        self.base.eval()

    def training_loss(self, batch, sigma, generator):
        x, y = batch
        cfg = self.config
        pick = int(torch.randint(len(cfg.sigmas), (1,), generator=generator, device=x.device))
        level = sorted(cfg.sigmas)[pick]
        denoiser = self.diffusion.denoiser(level).train()
        with torch.no_grad():
            recoverable = (self.base(x).argmax(dim=1) == y).float()
        outputs = [denoiser(add_noise(x, level, generator)) for _ in range(cfg.draws)]
        probs = [F.softmax(self.base(out).float(), dim=1) for out in outputs]
        onehot = F.one_hot(y, probs[0].shape[1]).float()
        brier = torch.stack([((p - onehot) ** 2).sum(dim=1) for p in probs]).mean(dim=0)
        pairs = [(probs[i] * probs[j]).sum(dim=1) for i in range(cfg.draws) for j in range(i + 1, cfg.draws)]
        agreement = torch.stack(pairs).mean(dim=0)
        mse = torch.stack([F.mse_loss(out.float(), x) for out in outputs]).mean()
        brier_term = (recoverable * brier).mean()
        anti_term = ((1 - recoverable) * agreement).mean()
        return cfg.brier_weight * brier_term + cfg.anti_weight * anti_term + cfg.mse_weight * mse

    def report(self, sigma: float) -> dict:
        return {
            **super().report(sigma),
            "over": "diffusion (calibrated)",
            "loss": f"{self.config.brier_weight:g} Brier + {self.config.anti_weight:g} anti-consistency + "
            f"{self.config.mse_weight:g} MSE",
        }
