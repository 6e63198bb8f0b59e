"""``python -m benchmark perf``: how fast certification is, on one base, one image set, one n, one machine.

Paths, each on the same images of the suite's subset, with the same method fit:

* ``reference``: a faithful re-implementation of the loop of locuslab/smoothing ``code/core.py`` (fp32, the image
  repeated per batch, ``randn_like`` noise, predictions copied to the host and counted per batch);
* ``certify[<precision>]``: the public :func:`benchmark.certify` at fp32 and at the default precision ("auto");
* ``forward``: the bare batched forward pass of ready noisy batches through the engine at the default precision,
  the limit of any certifier (no noise drawing, no counting);
* ``sequential``: sequential CERTIFY at the default precision (mean samples per image and seconds per image).

The fp32 paths are slow, so they may run on the first ``slow_images`` of the images only (the report says so).
Each path's certified accuracy on its images is reported beside its speed; ``leaderboards/perf.md`` gives the
ratios. Timings are of one process on this machine; the report names the CPU and thread count.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmark.certificates.device import resolve_precision
from benchmark.certificates.registry import certifier_for
from benchmark.certificates.sequential import certify_sequential
from benchmark.certificates.smoothing import (
    ABSTAIN,
    Certificate,
    add_noise,
    certify,
    clopper_pearson_lower,
    engine,
    image_generator,
    radius_from_p,
)
from benchmark.config.registry import METHODS
from benchmark.config.run_config import RunConfig
from benchmark.data.datasets import subset_indices
from benchmark.errors import BenchmarkError
from benchmark.run.records import Record
from benchmark.run.session import Session


@torch.no_grad()
def reference_certify(model, x, sigma, n0, n, alpha, batch_size, num_classes, seed) -> Certificate:
    """locuslab/smoothing ``Smooth.certify`` re-implemented: fp32, ``x.repeat``, ``randn_like``, host counting."""
    torch.manual_seed(seed)

    def sample_noise(num: int) -> np.ndarray:
        counts = np.zeros(num_classes, dtype=int)
        remaining = num
        while remaining > 0:
            this_batch = min(batch_size, remaining)
            remaining -= this_batch
            batch = x.unsqueeze(0).repeat((this_batch, 1, 1, 1))
            noise = torch.randn_like(batch) * sigma
            predictions = model(batch + noise).argmax(1)
            counts += np.bincount(predictions.cpu().numpy(), minlength=num_classes)[:num_classes]
        return counts

    c_a = int(sample_noise(n0).argmax())
    n_a = int(sample_noise(n)[c_a])
    p_a_lower = clopper_pearson_lower(n_a, n, alpha)
    if p_a_lower < 0.5:
        return Certificate(ABSTAIN, 0.0, p_a_lower, n_a, n, n0 + n)
    return Certificate(c_a, radius_from_p(sigma, p_a_lower), p_a_lower, n_a, n, n0 + n)


def _record(cert: Certificate, idx: int, label: int, seconds: float) -> Record:
    return Record.of_certificate(
        cert,
        label=label,
        idx=idx,
        time_s=seconds,
        method="perf",
        config_hash="0" * 10,
        dataset=None,
        split="test",
        sigma=0.0,
        seed=None,
        n0=None,
        n=cert.n,
        alpha=None,
    )


def forward_rate(model, data, indices, sigma: float, batch_size: int, device, repeats: int = 5) -> float:
    """Noisy samples per second of the bare forward pass through the engine (default precision), on ready batches."""
    classifier = engine(model, device, "auto")
    x = data[indices[0]][0].to(device)
    batch = add_noise(x.unsqueeze(0).expand(batch_size, *x.shape), sigma, image_generator(0, indices[0], device))
    classifier(batch)  # warm-up: first-call allocations and kernel selection
    t0 = time.perf_counter()
    for _ in range(repeats):
        classifier(batch).argmax(1)
    return repeats * batch_size / (time.perf_counter() - t0)


def measure(cfg: RunConfig, method: str, base: str, sigma: float, images: int, slow_images: int) -> dict:
    """Run every path on the first ``images`` of the suite's subset (the fp32 paths on the first ``slow_images``);
    return the records of each path and the forward pass's rate."""
    if images < 1 or slow_images < 1:
        raise BenchmarkError(f"--images and --slow-images must be >= 1, got {images} and {slow_images}")
    if len(certifier_for(METHODS.get(method).Config(), check=False).sigmas(sigma)) > 1:
        raise BenchmarkError(f"{method} votes over several noise levels: perf times single-sigma methods")
    session = Session(cfg)
    data = session.eval_data()
    indices = subset_indices(len(data), cfg.start, cfg.skip, images, cfg.seed)
    cell = session.cell(method, base, sigma)
    fitted = session.stored(cell) or session.fit(cell)[0]
    model = fitted.noisy_classifier(sigma).eval()
    device, num_classes = session.device, session.dataset.num_classes
    sizes = {"n0": cfg.n0, "n": cfg.n, "alpha": cfg.alpha, "batch_size": cfg.batch_size}

    def gen(i: int):
        return image_generator(cfg.seed, i, device)

    paths = {
        "reference": (
            indices[:slow_images],
            lambda x, i: reference_certify(model, x, sigma, cfg.n0, cfg.n, cfg.alpha, cfg.batch_size, num_classes, i),
        ),
        "certify[fp32]": (
            indices[:slow_images],
            lambda x, i: certify(model, x, sigma, **sizes, generator=gen(i), precision="fp32"),
        ),
        "certify[auto]": (indices, lambda x, i: certify(model, x, sigma, **sizes, generator=gen(i))),
        "sequential": (
            indices,
            lambda x, i: certify_sequential(
                engine(model, device, "auto"), x, sigma, cfg.n0, cfg.n, cfg.alpha, cfg.radii, cfg.batch_size, gen(i)
            ),
        ),
    }
    records: dict[str, list[Record]] = {}
    for name, (chosen, certify_one) in paths.items():
        records[name] = []
        for idx in chosen:
            x, label = data[idx]
            t0 = time.perf_counter()
            cert = certify_one(x.to(device), idx)
            records[name].append(_record(cert, idx, int(label), time.perf_counter() - t0))
    return {
        "records": records,
        "forward": forward_rate(model, data, indices, sigma, cfg.batch_size, device),
        "precision": str(resolve_precision("auto", device)),
    }
