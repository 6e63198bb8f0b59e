"""Measurements that run a model beside the certificates: how well a denoiser denoises (written to run.json).

Methods that denoise expose ``denoise(z, sigma)``; the preview figure of what they show is in
:mod:`benchmark.report.previews`.
"""

from __future__ import annotations

import torch

from benchmark.certificates.smoothing import add_noise
from benchmark.data.splits import labels_of, stratified_sample


def is_denoiser(method_or_class) -> bool:
    """Whether a method (or method class) exposes ``denoise(z, sigma)``: the clean estimate its classifier sees."""
    return callable(getattr(method_or_class, "denoise", None))


@torch.no_grad()
def denoising_error(method, data, sigma: float, device: torch.device, seed: int, count: int = 256) -> dict:
    """Mean squared error per pixel of the noisy and the denoised images against the clean ones, on a fixed
    class-balanced sample of ``count`` images of ``data`` (a class-sorted copy's first images are one class) with
    fixed noise."""
    picked = stratified_sample(labels_of(data), min(count, len(data)))
    x = torch.stack([data[i][0] for i in picked]).to(device)
    z = add_noise(x, sigma, torch.Generator(device=device).manual_seed(seed))
    denoised = method.denoise(z, sigma).float()
    return {"noisy_mse": float(((z - x) ** 2).mean()), "denoised_mse": float(((denoised - x) ** 2).mean())}
