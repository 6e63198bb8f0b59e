"""Measurements that run a model beside the certificates: how well a denoiser denoises, and what it shows.

The reports (metrics, leaderboard, plots) are pure functions of records; anything that runs a model or draws
noise for a report lives here, so that split stays clean. Methods that denoise expose ``denoise(z, sigma)``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.plots import save_figure
from benchmark.smoothing import add_noise
from benchmark.splits import labels_of, stratified_sample


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


@torch.no_grad()
def denoised_preview(images: torch.Tensor, denoise, sigmas, path: Path, title: str, seed: int = 0) -> Path:
    """A grid of what a denoiser's classifier sees: the clean images, then per sigma the noisy and denoised ones.

    Args:
        images: clean images ``[K,C,H,W]`` in [0,1].
        denoise: ``(noisy images, sigma) -> denoised images``.
        sigmas: noise levels, one pair of rows each.
        path: PNG to write.
        title: figure title.
        seed: seed of the preview noise.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("clean", images)]
    for sigma in sigmas:
        noisy = add_noise(images, sigma, torch.Generator(device=images.device).manual_seed(seed))
        rows += [(f"noisy {sigma:g}", noisy), (f"denoised {sigma:g}", denoise(noisy, sigma).float())]
    k = len(images)
    fig, axes = plt.subplots(len(rows), k, figsize=(1.2 * k + 1.2, 1.25 * len(rows)), dpi=100, squeeze=False)
    for r, (label, batch) in enumerate(rows):
        for c in range(k):
            img = batch[c].clamp(0, 1).permute(1, 2, 0).cpu().numpy()  # [C,H,W] -> [H,W,C]
            ax = axes[r][c]
            ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    return save_figure(plt, fig, path)
