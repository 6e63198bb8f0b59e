"""``benchmark_model``: one's own model certified on a suite's images with the suite's protocol, as a row."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from benchmark.config.run_config import build_run_config
from benchmark.config.suite import PROJECT_ROOT
from benchmark.run.external import ExternalSession
from benchmark.run.runner import Runner


def benchmark_model(
    model: nn.Module,
    name: str,
    suite: str = "cifar10-cpu",
    sigma: float = 0.25,
    *,
    base: str | None = None,
    results: str | Path = "results",
    max_images: int | None = None,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """Certify ``model`` (noisy images in [0, 1] -> logits, its normalisation inside, as a method's noisy
    classifier) on ``suite``'s test images at noise level ``sigma``, with the suite's n0, n, alpha, certificate,
    precision, engine and seed, through the runner a registered method takes; return the run directory.

    The records and run.json go under ``results/<suite>/<name>/<base>/sigma_<s>/`` and the row is marked
    external (run.json's fit names the model's class and SHA-256): ``python -m benchmark leaderboard --results
    <results>`` then lists it in ``base``'s table (default: the suite's first base) beside the ranked rows, ranked
    like them when it certified the whole subset. Interrupted, the same call resumes where it stopped.

    Args:
        name: the row's name (not a registered method's).
        max_images: certify only the first this many images of the subset (a smoke row, listed apart).
        results: the results tree written (use your own, or copy the committed one to compare in one table).
    """
    overrides = {
        "results": str(results),
        "cache_dir": str(cache_dir or PROJECT_ROOT / ".cache"),
        "device": device,
        "max_images": max_images,
        "sigmas": [float(sigma)],
        "methods": [],
    }
    cfg = build_run_config(suite, overrides)
    listed_with = base or cfg.bases[0]
    session = ExternalSession(cfg, model, name, listed_with, sigma)
    (directory,) = Runner(cfg, progress=progress, session=session).run()
    return directory
