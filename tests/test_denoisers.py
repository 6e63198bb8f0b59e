"""Denoised smoothing baselines: the diffusion timestep mapping and exact-noise path, caching, settings."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import DDPMScheduler
from torch import nn

from baselines.diffusion import OneShotDenoiser, timestep_for_sigma
from benchmark.cli.parser import main
from benchmark.config.registry import METHODS
from benchmark.report import previews
from tests.test_contract import context, fit_tiny, tiny_base

ALPHAS = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod


@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5, 1.0])
def test_timestep_is_first_with_noise_at_least_two_sigma(sigma):
    t = timestep_for_sigma(ALPHAS, sigma)
    ratio = lambda i: float(torch.sqrt((1 - ALPHAS[i]) / ALPHAS[i]))  # noqa: E731
    assert ratio(t) >= 2 * sigma > ratio(t - 1)  # closest from above


class OracleUNet(nn.Module):
    """Predicts the exact noise that a known delta puts into x_t, so the one-shot x0 must be the clean image."""

    def __init__(self, delta: torch.Tensor, abar: float):
        super().__init__()
        self.delta, self.abar = delta, abar

    def forward(self, x_t, t):
        eps = (self.abar**0.5) * 2 * self.delta / ((1 - self.abar) ** 0.5)
        return type("Out", (), {"sample": eps})()


def test_exact_noise_path_uses_the_sampled_delta():
    """x_t = sqrt(abar) (2(x + delta) - 1): the delta drawn by the harness, scaled, never a fresh draw."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 8, 8, generator=gen) * 0.8 + 0.1
    delta = torch.randn(x.shape, generator=gen) * 0.25
    t = timestep_for_sigma(ALPHAS, 0.25)
    den = OneShotDenoiser(OracleUNet(delta, float(ALPHAS[t])), ALPHAS, 0.25)
    z = x + delta
    torch.testing.assert_close(den.noisy_input(z), ALPHAS[t].sqrt() * (2 * z - 1))
    torch.testing.assert_close(den(z), x, atol=1e-5, rtol=0)  # the oracle removes exactly that delta
    torch.testing.assert_close(den(z), den(z))  # deterministic: nothing is resampled inside


def test_surrogate_never_touches_the_target(tmp_path):
    cls = METHODS.get("dncnn_surrogate")
    ctx = context(tmp_path)
    method = cls(cls.Config.tiny(), tiny_base("cnn"), ctx)
    fit_tiny(method)
    assert method.queried.counter == {"queries": 0, "backward_calls": 0}
    with torch.no_grad():
        method.noisy_classifier(0.25)(torch.rand(2, 1, 8, 8))
    assert method.queried.counter["queries"] == 2


def test_denoisers_cached_once_and_stab_starts_from_mse(tiny_suite, run_args, tmp_path):
    args = [
        *run_args,
        "--methods",
        "dncnn,dncnn_stab,diffusion",
        "--bases",
        "small_cnn,small_vit",
        "--max-images",
        "2",
    ]
    assert main(["run", *args]) == 0
    fits = tmp_path / "cache" / "fits"
    assert len(list((fits / "dncnn").glob("*/state.safetensors"))) == 2  # per sigma, shared by both bases
    assert len(list((fits / "dncnn_stab").glob("*/state.safetensors"))) == 4  # per sigma and base
    assert len(list((fits / "diffusion").glob("*/state.safetensors"))) == 1  # one DDPM for every sigma and base
    reports = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("tiny/diffusion/*/*/*/run.json")]
    assert len(reports) == 4
    assert all("denoised_mse" in r["measurements"] and "timestep" in r["notes"] for r in reports)
    preview = [
        "plot",
        "--denoised",
        "--suite",
        str(tiny_suite),
        "--methods",
        "dncnn,diffusion",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "lb"),
        "--images",
        "3",
    ]
    assert main(preview) == 0
    assert (tmp_path / "lb" / "tiny" / "denoised_dncnn.png").stat().st_size > 1000
    assert (tmp_path / "lb" / "tiny" / "denoised_diffusion.png").stat().st_size > 1000


def test_preview_shows_a_fit_of_either_precision_without_fitting_again(tiny_suite, run_args, tmp_path, monkeypatch):
    """A denoiser fitted in bf16 at one sigma (e.g. published from another machine) and in fp32 at the other is
    previewed as it stands: no new fit, and the title says which precision each sigma's fit came from."""
    for sigma, precision in (("0.25", "bf16"), ("0.5", "fp32")):
        one = [*run_args, "--methods", "dncnn", "--sigma", sigma, "--precision", precision, "--max-images", "1"]
        assert main(["run", *one]) == 0
    fits = sorted((tmp_path / "cache" / "fits" / "dncnn").glob("*/state.safetensors"))
    assert len(fits) == 2
    preview = [
        "plot",
        "--denoised",
        "--suite",
        str(tiny_suite),
        "--methods",
        "dncnn",
        "--precision",
        "fp32",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "lb"),
        "--images",
        "2",
    ]
    titles = []
    real = previews.denoised_preview
    monkeypatch.setattr(previews, "denoised_preview", lambda *a: titles.append(a[4]) or real(*a))
    assert main(preview) == 0
    assert sorted((tmp_path / "cache" / "fits" / "dncnn").glob("*/state.safetensors")) == fits
    assert titles and titles[0].endswith("(fits by sigma, 0.25: bf16; 0.5: fp32)")
    assert (tmp_path / "lb" / "tiny" / "denoised_dncnn.png").stat().st_size > 1000
