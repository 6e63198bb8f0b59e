"""``benchmark_model``: one's own model certified on a suite's images with the suite's protocol, as a row."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from benchmark.config.run_config import build_run_config
from benchmark.config.suite import PROJECT_ROOT
from benchmark.errors import BenchmarkError
from benchmark.run.external import ExternalSession
from benchmark.run.runner import Runner


def benchmark_model(
    model: nn.Module,
    name: str,
    suite: str = "cifar10-cpu",
    sigma: float = 0.25,
    *,
    results: str | Path,
    base: str | None = None,
    version: str = "",
    fresh: bool = False,
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
        name: the row's name (letters, digits, _ . -; not a registered method's).
        results: the results tree written: your own (copy the committed ``results/`` there to rank beside its
            rows), never the committed one, whose leaderboards are generated from the suite's own runs.
        version: a tag of yours in the record key, for a change the key cannot see (a plain attribute, code
            outside the model's class): the class, its source and the model's tensors are in the key already.
        fresh: discard this row's records first (certify again from the first image).
        max_images: certify only the first this many images of the subset (a smoke row, listed apart).
    """
    if Path(results).resolve() == (PROJECT_ROOT / "results").resolve():
        raise BenchmarkError(
            "results= is the committed results tree: copy it (cp -r results my-results) and pass that copy"
        )
    overrides = {
        "results": str(results),
        "cache_dir": str(cache_dir or PROJECT_ROOT / ".cache"),
        "device": device,
        "max_images": max_images,
        "methods": [],
    }
    cfg = build_run_config(suite, overrides)
    listed_with = base or cfg.bases[0]
    session = ExternalSession(cfg, model, name, listed_with, sigma, version)
    (directory,) = Runner(cfg, fresh=fresh, progress=progress, session=session).run()
    return directory
