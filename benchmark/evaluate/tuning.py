"""Recipe search on the validation split, never on the test images.

A suite lists candidate recipes per method (``[tuning.<method>] candidates = [{...}, ...]``, each table applied over
the method's settings for the base). ``python -m benchmark tune`` fits every candidate on ``tune_train`` (the
training split without the validation images; fits are seeded and kept in the fit store like any other, so a
search resumes), scores each on a class-stratified sample of ``val`` with the proxy below, and writes the search,
candidates, scores and the chosen one, to ``results/<suite>/tuning/<method>/<base>/sigma_<s>/<search hash>.json``.
The chosen recipe is then written into the suite's ``[method_settings]`` by hand (that edit is the committed
decision), fitted on the full training split as usual and certified on the test subset.

Proxy: for each scored validation image, ``samples`` noisy copies from a fresh generator give the top class and its
empirical share p; the image counts as certified at radius r when the top class is the label, p > 1/2 and
sigma * Phi^-1(p) >= r (p capped at 1 - 1/(2 samples)). The candidate with the largest mean of that radius over the
images (the proxy ACR) is chosen; the first listed wins a tie. It is a point estimate with no confidence bound, so
it ranks recipes; it certifies nothing.

At sigma 0 (``--sigma 0``: a method trained without noise for empirical robustness, as ``adapt`` and ``prompt_at``
are for the ``attack`` rows) there is no smoothing to score: the proxy is robust accuracy under the attack of
:class:`~benchmark.evaluate.attack.AttackSettings` (ADAPT's PGD-10, l-infinity 8/255, adaptive) on the scored
validation images, right both clean and attacked; the largest wins, then the larger clean accuracy, then the first
listed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from scipy.stats import norm

from benchmark.certificates.device import SmoothingClassifier
from benchmark.certificates.smoothing import image_generator, sample_counts
from benchmark.config.hashing import config_hash, to_jsonable
from benchmark.config.overrides import override_dataclass
from benchmark.config.registry import METHODS
from benchmark.config.run_config import RunConfig
from benchmark.data.splits import VAL_SEED, labels_of, stratified_sample
from benchmark.errors import BenchmarkError
from benchmark.evaluate.attack import AttackSettings, evaluate
from benchmark.files import check_writable, inside, now, safe_name, write_json_atomic
from benchmark.run.plan import cell, method_config
from benchmark.run.provenance import check_clean, command_line, git_state, package_versions
from benchmark.run.session import Session

VERSION = 1
# Validation images draw their noise from streams of their own (far from any test index's).
_NOISE_OFFSET = 10**9


def candidates(cfg: RunConfig, method: str) -> list[dict]:
    table = cfg.tuning.get(method) or {}
    found = table.get("candidates") if isinstance(table, dict) else None
    if not isinstance(found, list) or len(found) < 2 or not all(isinstance(c, dict) for c in found):
        raise BenchmarkError(
            f"suite {cfg.suite!r} lists no search for {method}: add [tuning.{method}] with "
            "candidates = [{...}, {...}] (two or more tables of settings)"
        )
    return found


@torch.no_grad()
def score(classifier, data, picked: list[int], sigma: float, radii, samples: int, batch_size: int, seed: int) -> dict:
    """The proxy (module docstring) of ``classifier`` on the images ``picked`` of ``data``."""
    radius, correct = [], []
    cap = 1.0 - 0.5 / samples
    for j in picked:
        x, label = data[j]
        gen = image_generator(seed, _NOISE_OFFSET + j, x.device)
        counts = sample_counts(classifier, x, sigma, samples, batch_size, gen)
        top = int(counts.argmax())
        p = min(float(counts[top]) / samples, cap)
        correct.append(top == int(label) and p > 0.5)
        radius.append(sigma * float(norm.ppf(p)) if correct[-1] else 0.0)
    scores = {
        f"acc@{r:g}": sum(c and q >= r for c, q in zip(correct, radius, strict=True)) / len(picked) for r in radii
    }
    return {**scores, "acr": sum(radius) / len(picked)}


def score_attack(model, data, picked: list[int], device, seed: int, batch: int = 32) -> dict:
    """The sigma-0 proxy (module docstring): clean and robust accuracy of ``model`` on the images ``picked``."""
    settings = AttackSettings()
    clean = robust = 0
    for start in range(0, len(picked), batch):
        chunk = picked[start : start + batch]
        x = torch.stack([data[j][0] for j in chunk]).to(device)
        y = torch.tensor([int(data[j][1]) for j in chunk], device=device)
        gen = image_generator(seed, _NOISE_OFFSET + chunk[0], device)
        before, after, _ = evaluate(model, model, x, y, 0.0, settings, gen)
        clean += int((before == y).sum())
        robust += int(((before == y) & (after == y)).sum())
    return {"robust": robust / len(picked), "clean": clean / len(picked)}


def objective(scores: dict) -> tuple[float, ...]:
    """What a search maximises: the proxy ACR, or at sigma 0 robust then clean accuracy."""
    return (scores["acr"],) if "acr" in scores else (scores["robust"], scores["clean"])


def search(cfg: RunConfig, method: str, base: str, sigma: float, val_images: int, samples: int, say=print) -> dict:
    """Fit, score and choose among the suite's candidates for ``method`` on ``base`` at ``sigma``; return the record
    (also written, after every candidate, so a search cut short keeps what it scored)."""
    session = Session(cfg)
    listed = candidates(cfg, method)
    if not session.dataset.val_size:
        raise BenchmarkError(
            f"{cfg.dataset} holds no validation split out of its training images: a search there "
            "would read the images that are certified"
        )
    val = session.data("val")
    picked = stratified_sample(labels_of(val), min(val_images, len(val)), VAL_SEED + 1)
    key = {
        "version": VERSION,
        "method": method,
        "base": base,
        "sigma": float(sigma),
        "candidates": listed,
        "val_images": len(picked),
        "samples": samples,
        "seed": cfg.seed,
        "precision": session.precision,
        "radii": list(cfg.radii),
    }
    path = session.results / safe_name(cfg.suite, "suite") / "tuning" / safe_name(method, "method")
    path = inside(
        session.results, path / safe_name(base, "base") / f"sigma_{float(sigma):g}" / f"{config_hash(key)}.json"
    )
    record = {
        **key,
        "suite": cfg.suite,
        "search_hash": config_hash(key),
        "proxy": __doc__.split("Proxy: ")[1].strip(),
        "val": {
            "split_size": len(val),
            "split_seed": VAL_SEED,
            "scored": len(picked),
            "scored_sha256": hashlib.sha256(",".join(map(str, picked)).encode()).hexdigest(),
        },
        "fit_split": "tune_train",
        "argv": command_line(),
        "git": git_state(),
        "packages": package_versions(),
        "started": now(),
        "results": [],
        "status": "running",
    }
    for i, settings in enumerate(listed):
        result = _candidate(cfg, session, method, base, sigma, i, settings, val, picked, samples)
        record["results"].append(result)
        record["updated"] = now()
        write_json_atomic(path, record)
        scores = ", ".join(f"{k} {v:.4f}" for k, v in result["scores"].items())
        say(f"{method}/{base} sigma={sigma:g} candidate {i} {settings}: {scores}")
    best = max(range(len(listed)), key=lambda i: (*objective(record["results"][i]["scores"]), -i))
    record.update(chosen=best, chosen_settings=listed[best], status="complete", updated=now())
    write_json_atomic(path, record)
    say(f"{method}/{base} sigma={sigma:g}: chosen candidate {best} {listed[best]} -> {path}")
    return record


def _candidate(cfg, session, method, base, sigma, i: int, settings: dict, val, picked, samples: int) -> dict:
    """Candidate ``i``: its settings over the suite's, fitted on tune_train, scored on the picked val images."""
    where = f"[tuning.{method}] candidate {i}"
    mconfig = override_dataclass(method_config(cfg, method, base, sigma), settings, where)
    target = cell(cfg, method, base, sigma, session.precision, mconfig=mconfig, train_split="tune_train")
    fitted, fit = session.fit(target)
    if sigma == 0:
        scores = score_attack(fitted.noisy_classifier(0.0).eval(), val, picked, session.device, cfg.seed)
    else:
        classifier = SmoothingClassifier(fitted.noisy_classifier(sigma), session.device, session.precision)
        scores = score(classifier, val, picked, sigma, cfg.radii, samples, cfg.batch_size, cfg.seed)
    return {
        "settings": settings,
        "method_config": to_jsonable(mconfig),
        "fit_hash": target.fit_hash,
        "state_sha256": fit.get("state_sha256"),
        "fit_time_s": fit.get("fit_time_s"),
        "final_loss": fit.get("final_loss"),
        "scores": scores,
    }


def run_sigmas(sigmas: list[float] | None) -> list[float] | None:
    """The noise levels of ``tune --sigma`` that a run certifies at (None: the suite's); sigma 0 is tune's own level
    (a method trained without noise, scored by robust accuracy), a negative one an error."""
    if sigmas is not None and any(s < 0 for s in sigmas):
        raise BenchmarkError("--sigma must be >= 0 (0: a method trained without noise, scored by robust accuracy)")
    return [s for s in sigmas or [] if s > 0] or None


def tune_suite(
    cfg: RunConfig,
    methods: list[str] | None,
    sigmas: list[float] | None,
    val_images: int,
    samples: int,
    allow_dirty: bool,
) -> None:
    """:func:`search` for each of ``methods`` (default: every method ``cfg``'s suite has a search for), each base of
    ``cfg`` and each of ``sigmas`` (default: the suite's); refused for a published suite on uncommitted code unless
    ``allow_dirty``."""
    methods = METHODS.resolve(methods or list(cfg.tuning) or ["none"])
    check_clean(cfg.suite, allow_dirty)
    check_writable(Path(cfg.results))
    for method in methods:
        for base in cfg.bases:
            for sigma in sigmas or cfg.sigmas:
                search(cfg, method, base, sigma, val_images, samples)
