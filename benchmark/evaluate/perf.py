"""``python -m benchmark perf``: how fast certification is, on one base, one image set, one n, one machine.

Paths, each on the same images of the suite's subset, with the same method fit and each image's own noise
generator (the one a run uses, so a path's records are a run's):

* ``reference``: a faithful re-implementation of the loop of locuslab/smoothing ``code/core.py`` (fp32, the image
  repeated per batch, ``randn_like`` noise, predictions copied to the host and counted per batch);
* ``<certificate>``: a run-level certificate (``fixed``, ``sequential``, ...) through the run's engine at the
  default precision, as many images at once as a run hands it (:attr:`Certifier.pack`); ``<certificate>-fp32`` at
  fp32; ``<certificate>+<engine>`` through another engine; ``<certificate>@<k>`` k images at once;
* ``forward``: the bare batched forward pass of ready noisy batches through the engine at the default precision,
  the limit of any certifier (no noise drawing, no counting); ``forward+<engine>`` through another engine.

Every path's records go to ``<results>/<suite>/perf/<method>/<base>/sigma_<s>/<key>/<path>.jsonl`` (the key hashes
the fit, n0, n, alpha, batch size and seed), one image at a time through the one writer, so an interrupted path
resumes and a path measured in another session joins the same table; ``<path>.json`` stamps who measured it on
which machine. ``leaderboards/perf.md`` is generated from every stored measurement of the suite
(:mod:`benchmark.report.perf_page`).
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.certificates.device import resolve_precision
from benchmark.certificates.engines import ENGINES, build_engine
from benchmark.certificates.registry import RUN_CERTIFICATES, certifier_class, certifier_for
from benchmark.certificates.smoothing import (
    ABSTAIN,
    Certificate,
    add_noise,
    clopper_pearson_lower,
    image_generator,
    radius_from_p,
)
from benchmark.config.hashing import config_hash
from benchmark.config.registry import METHODS
from benchmark.config.run_config import RunConfig
from benchmark.data.datasets import subset_indices
from benchmark.errors import BenchmarkError
from benchmark.files import now, write_json_atomic
from benchmark.run.grouped import timed_records
from benchmark.run.jsonl import RERUN, JsonlWriter, claiming
from benchmark.run.provenance import stamp
from benchmark.run.records import Record, run_dir
from benchmark.run.runner import noise, protocol
from benchmark.run.session import Session

PATH = re.compile(
    r"^(?P<what>[a-z_]+)(?:-(?P<precision>fp32|bf16))?(?:\+(?P<engine>[a-z_]+))?(?:@(?P<pack>[1-9][0-9]*))?$"
)


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


def parse_path(path: str) -> tuple[str, str, str, int | None]:
    """(what, precision, engine, images at once) of a path name: ``reference``, ``forward[+engine]`` or
    ``<certificate>[-fp32|-bf16][+engine][@k]`` (a one-line error for anything else)."""
    m = PATH.match(path)
    bare = m is not None and m["what"] in ("reference", "forward")  # no pack; the reference no precision or engine
    if (
        m is None
        or m["what"] not in ("reference", "forward", *RUN_CERTIFICATES)
        or (bare and (m["pack"] or (m["what"] == "reference" and (m["precision"] or m["engine"]))))
    ):
        raise BenchmarkError(
            f"no perf path is called {path!r}: use reference, forward[+engine] or "
            f"<certificate>[-fp32][+engine][@images] with a certificate of {', '.join(RUN_CERTIFICATES)}"
        )
    engine = m["engine"] or "eager"
    if engine not in ENGINES:
        raise BenchmarkError(f"no engine is called {engine!r} (in {path}): known are {', '.join(ENGINES)}")
    return m["what"], m["precision"] or "auto", engine, int(m["pack"]) if m["pack"] else None


def perf_dir(cfg: RunConfig, method: str, base: str, sigma: float, fit_hash: str, precision: str) -> Path:
    """Where the measurements of one fit at one protocol and default precision live (module docstring)."""
    key = config_hash(
        {"fit": fit_hash, "n0": cfg.n0, "n": cfg.n, "alpha": cfg.alpha, "batch": cfg.batch_size, "seed": cfg.seed}
        | {"precision": precision}
    )
    return run_dir(Path(cfg.results), cfg.suite, method, base, sigma, key, evaluation="perf")


def forward_rate(classifier, x: torch.Tensor, sigma: float, batch_size: int, generator, repeats: int = 5) -> float:
    """Noisy samples per second of the bare forward pass of ``classifier`` (an engine), on one ready batch."""
    batch = add_noise(x.unsqueeze(0).expand(batch_size, *x.shape), sigma, generator)
    classifier(batch).argmax(1)  # warm-up: first-call allocations, kernel selection, compilation
    t0 = time.perf_counter()
    for _ in range(repeats):
        classifier(batch).argmax(1)
    return repeats * batch_size / (time.perf_counter() - t0)


def machine(device) -> dict:
    """What the timings depend on: the CPU (or GPU), whether bf16 runs natively, the threads."""
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "unknown CPU")
    return {"cpu": cpu, "native_bf16": resolve_precision("auto", device) == "bf16", **stamp(device)}


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def measure(
    cfg: RunConfig, method: str, base: str, sigma: float, images: int, slow_images: int, paths: list[str]
) -> Path:
    """Measure each of ``paths`` on the first ``images`` of the suite's subset (``reference`` and the fp32 paths on
    the first ``slow_images``), resuming what is stored; returns the measurement's directory."""
    if images < 1 or slow_images < 1:
        raise BenchmarkError(f"--images and --slow-images must be >= 1, got {images} and {slow_images}")
    parsed = {p: parse_path(p) for p in paths}
    if len(certifier_for(METHODS.get(method).Config(), check=False).sigmas(sigma)) > 1:
        raise BenchmarkError(f"{method} votes over several noise levels: perf times single-sigma methods")
    session = Session(cfg)
    data = session.eval_data()
    indices = subset_indices(len(data), cfg.start, cfg.skip, images, cfg.seed)
    cell = session.cell(method, base, sigma)
    fitted = session.stored(cell) or session.fit(cell)[0]
    model = fitted.noisy_classifier(sigma).eval()
    default = str(resolve_precision(cfg.precision, session.device))  # what a path without -fp32/-bf16 runs at
    directory = perf_dir(cfg, method, base, sigma, cell.fit_hash, default)
    meta = {"suite": cfg.suite, "method": method, "base": base, "sigma": sigma, "fit": cell.fit_hash}
    meta |= {"n0": cfg.n0, "n": cfg.n, "alpha": cfg.alpha, "batch_size": cfg.batch_size, "seed": cfg.seed}
    meta |= {"radii": list(cfg.radii), "default_precision": default}
    for path, (what, precision, engine_name, pack) in parsed.items():
        slow = what == "reference" or precision == "fp32"  # the paths named slow run on the first images only
        precision = default if precision == "auto" else precision
        info = {**meta, "path": path, "precision": str(resolve_precision(precision, session.device))}
        classifier = build_engine(model, session.device, precision, engine_name)
        if what == "forward":
            x = data[indices[0]][0].to(session.device)
            gen = image_generator(cfg.seed, indices[0], session.device)
            info["rate"] = forward_rate(classifier, x, sigma, cfg.batch_size, gen)
        else:
            certify, pack = _certifier(cfg, what, model, classifier, sigma, session, pack)
            info["images_at_once"] = pack
            chosen = indices[:slow_images] if slow else indices
            _certify_path(cfg, directory, path, chosen, data, certify, pack, method, sigma, session.device)
        write_json_atomic(directory / f"{path}.json", {**info, "updated": now(), **machine(session.device)})
    return directory


def _certifier(cfg: RunConfig, what: str, model, classifier, sigma: float, session, pack: int | None):
    """``certify(images, indices) -> certificates`` of a path, and how many images it takes at once."""
    num_classes = session.dataset.num_classes
    if what == "reference":
        one = functools.partial(
            reference_certify,
            model,
            sigma=sigma,
            n0=cfg.n0,
            n=cfg.n,
            alpha=cfg.alpha,
            batch_size=cfg.batch_size,
            num_classes=num_classes,
        )
        return (lambda xs, idxs: [one(x=x, seed=i) for x, i in zip(xs, idxs, strict=True)]), 1
    certifier = certifier_class(what)()

    def certify(xs, idxs):  # a run's protocol and noise streams (benchmark.run.runner), so records compare
        generators = noise(cfg, idxs, session.device)
        return certifier.certify_many([(sigma, classifier)], xs, generators=generators, **protocol(cfg))

    return certify, pack or certifier.pack


def _certify_path(cfg, directory: Path, path: str, chosen, data, certify, pack: int, method, sigma, device) -> None:
    """Certify the ``chosen`` images ``pack`` at a time (:func:`benchmark.run.grouped.timed_records`)."""
    writer = JsonlWriter(directory, Record, name=f"{path}.jsonl", pattern=f"{path}.jsonl", remedy=RERUN)
    groups = [[int(i) for i in chosen[k : k + pack]] for k in range(0, len(chosen), pack)]
    fields = {"method": method, "config_hash": directory.name, "dataset": cfg.dataset, "split": cfg.split}
    fields |= {"sigma": sigma, "seed": cfg.seed, "n0": cfg.n0, "n": cfg.n, "alpha": cfg.alpha}
    with claiming(writer, groups) as work:
        for group in work:
            todo = [i for i in group if i not in writer.done]  # a group cut short by an interruption: its rest
            for record in timed_records(certify, data, todo, device, **fields):
                writer.append(record)
