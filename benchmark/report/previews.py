"""A figure of what a denoiser's classifier sees: clean, noisy and denoised images per sigma (it runs the denoiser,
so unlike the tables it is not a function of results alone; ``preview-denoised`` makes it)."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.certificates.smoothing import add_noise
from benchmark.report.plots import save_figure


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
