"""The one noise sampler and the Monte-Carlo vote counts of randomized smoothing: every certificate, training loop
and evaluation draws its Gaussian noise through :func:`add_noise`, and every certificate counts votes through
:func:`packed_counts` (one image: :func:`sample_counts`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
import torch

Classifier = Callable[[torch.Tensor], torch.Tensor]

# Noise is drawn in blocks of this many samples whatever the batch size, which makes the noise sequence (and so
# every count) a function of the generator state alone. 100 divides Cohen's n0 and the usual n.
NOISE_BLOCK = 100


def image_generator(seed: int, idx: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator that draws all noise for test image ``idx`` of a run seeded with ``seed``.

    Seeding per (seed, idx) makes each image's record independent of batching, sharding and resume point.
    NumPy's SeedSequence mixes the pair so that neighbouring indices get unrelated streams.
    """
    state = np.random.SeedSequence([int(seed), int(idx)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state) & ((1 << 63) - 1))


def add_noise(x: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return ``x + N(0, sigma^2 I)``: the one Gaussian noise sampler (training and certification both use it);
    ``sigma`` may be a tensor broadcast against ``x`` (a per-image level, as an ensemble trains with)."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + noise * sigma


Job = tuple[torch.Tensor, float, int, "torch.Generator | None"]  # (image [C,H,W], sigma, samples, its generator)


def _noisy_blocks(jobs: list[Job]) -> Iterator[tuple[int, torch.Tensor]]:
    """(job, block of noisy copies) for every job in turn, each job's noise drawn from its own generator in blocks
    of NOISE_BLOCK: each job's sample sequence depends on its generator alone, never on the batch size or on the
    jobs beside it."""
    for j, (x, sigma, num, generator) in enumerate(jobs):
        remaining = num
        while remaining > 0:
            block = min(NOISE_BLOCK, remaining)
            remaining -= block
            yield j, add_noise(x.unsqueeze(0).expand(block, *x.shape), sigma, generator)


@torch.no_grad()
def packed_counts(classifier: Classifier, jobs: list[Job], batch_size: int = 1000) -> list[torch.Tensor]:
    """Classify the noisy copies of several images, packed into forward passes of ``batch_size`` across images,
    and count each image's votes per class (one int64 tensor ``[K]`` per job).

    Packing is what lets a sequential certificate, whose looks want a few hundred samples an image, run the model
    at full batches; each image's counts are those :func:`sample_counts` gives it alone."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    pending: deque[tuple[int, torch.Tensor]] = deque()
    tallies: list[torch.Tensor] = []  # per forward pass: job * K + the class of each sample
    classes, total = 0, 0

    def forward(size: int) -> None:
        nonlocal classes
        chunk, owner = [], []
        while size:
            j, block = pending.popleft()
            if len(block) > size:  # cut the block: its rest opens the next pass
                pending.appendleft((j, block[size:]))
                block = block[:size]
            chunk.append(block)
            owner.append(torch.full((len(block),), j, dtype=torch.long, device=block.device))
            size -= len(block)
        logits = classifier(torch.cat(chunk) if len(chunk) > 1 else chunk[0])
        classes = logits.shape[1]
        tallies.append(torch.cat(owner) * classes + logits.argmax(dim=1))

    for j, block in _noisy_blocks(jobs):
        pending.append((j, block))
        total += len(block)
        while total >= batch_size:
            forward(batch_size)
            total -= batch_size
    if total:
        forward(total)
    if not tallies:
        raise ValueError("no samples to count: each image needs at least one")
    flat = torch.bincount(torch.cat(tallies), minlength=len(jobs) * classes)
    return list(flat.reshape(len(jobs), classes))


@torch.no_grad()
def sample_counts(
    classifier: Classifier,
    x: torch.Tensor,
    sigma: float,
    num: int,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Classify ``num`` noisy copies of ``x`` and count the votes per class.

    Args:
        classifier: maps ``[B,C,H,W]`` images in [0, 1] to logits ``[B,K]``.
        x: one image ``[C,H,W]`` in [0, 1].
        sigma: noise standard deviation in [0, 1] pixel units.
        num: number of noise samples.
        batch_size: samples per forward pass (does not change the counts).
        generator: source of the noise; its device must match ``x``.

    Returns:
        int64 tensor ``[K]`` on ``x.device`` with the number of samples classified as each class.
    """
    return packed_counts(classifier, [(x, sigma, num, generator)], batch_size)[0]
