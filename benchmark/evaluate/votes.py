"""Vote rates on the validation split: the rates ``simulate --rates val`` chooses a sequential design on.

A design is a setting like a recipe, so it is chosen on images that are never certified: a class-stratified sample
of the validation split (held out of the training images; :mod:`benchmark.data.splits`). Each sampled image gets
fixed-n CERTIFY's counts from the ranked fit of each method and noise level (the suite's n0, n, alpha, precision and
engine; the fit from the store: published, else cached; never fitted here), with noise from its own generator, and
the top-class count ``n_top`` out of ``n`` is its rate. The counts are stored with their key under
``results/<suite>/simulate/val_votes/<method>/<base>/sigma_<s>.json`` every few images, so a count cut short
resumes where it stopped and a changed key starts afresh.
"""

from __future__ import annotations

from collections.abc import Callable

from benchmark.certificates.engines import build_engine
from benchmark.certificates.smoothing import certify_counts, image_generator
from benchmark.config.hashing import to_jsonable
from benchmark.config.run_config import RunConfig
from benchmark.data.splits import VAL_SEED, labels_of, stratified_sample
from benchmark.errors import BenchmarkError
from benchmark.evaluate.simulate import Cell
from benchmark.files import inside, read_json, safe_name, write_json_atomic
from benchmark.run.session import Session

VERSION = 1
_NOISE_OFFSET = 2_000_000  # validation images draw noise from streams no test image index reaches
_SAVE_EVERY = 10


def val_cells(
    cfg: RunConfig, methods: list[str], base: str, images: int, say: Callable[[str], None] = print
) -> list[Cell]:
    """The vote rates of ``methods`` on ``base`` at each of the suite's sigmas, on ``images`` validation images."""
    session = Session(cfg)
    if not session.dataset.val_size:
        raise BenchmarkError(f"{cfg.dataset} holds no validation split: choose on the test rates (--rates test)")
    val = session.data("val")
    picked = stratified_sample(labels_of(val), min(images, len(val)), VAL_SEED + 2)
    return [_cell(session, val, picked, method, base, float(s), say) for method in methods for s in cfg.sigmas]


def _cell(session: Session, val, picked: list[int], method: str, base: str, sigma: float, say) -> Cell:
    cfg, target = session.cfg, session.cell(method, base, sigma)
    built = session.stored(target)
    if built is None:
        raise BenchmarkError(
            f"{method}'s fit on {base} at sigma {sigma:g} is neither published nor cached: run it first "
            f"(python -m benchmark run --suite {cfg.suite} --methods {method} --sigma {sigma:g})"
        )
    key = {
        "version": VERSION,
        "method": method,
        "base": base,
        "sigma": sigma,
        "fit_hash": target.fit_hash,
        "method_config": to_jsonable(target.method_config),
        "n0": cfg.n0,
        "n": cfg.n,
        "alpha": cfg.alpha,
        "seed": cfg.seed,
        "precision": session.precision,
        "engine": cfg.engine,
        "images": picked,
    }
    folder = session.results / safe_name(cfg.suite, "suite") / "simulate" / "val_votes" / safe_name(method)
    path = inside(session.results, folder / safe_name(base, "base") / f"sigma_{sigma:g}.json")
    stored = read_json(path, "validation votes") or {}
    if stored.get("key") != key:
        stored = {"key": key, "n_top": [], "prediction": [], "label": []}
    classifier = build_engine(built.noisy_classifier(sigma), session.device, session.precision, cfg.engine)
    for count, j in enumerate(picked[len(stored["n_top"]) :], start=len(stored["n_top"]) + 1):
        x, label = val[j]
        gen = image_generator(cfg.seed, _NOISE_OFFSET + j, session.device)
        cert = certify_counts(classifier, x.to(session.device), sigma, cfg.n0, cfg.n, cfg.alpha, cfg.batch_size, gen)
        stored["n_top"].append(cert.n_top)
        stored["prediction"].append(cert.prediction)
        stored["label"].append(int(label))
        if count % _SAVE_EVERY == 0 or count == len(picked):
            write_json_atomic(path, stored)
            say(f"{method} sigma={sigma:g}: {count}/{len(picked)} validation images counted")
    rates = tuple(k / cfg.n for k in stored["n_top"])
    correct = tuple(p == y for p, y in zip(stored["prediction"], stored["label"], strict=True))
    return Cell(method, base, sigma, rates, correct)
