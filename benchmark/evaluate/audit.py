"""Certificate audit: attack every certified image inside its certified radius and re-decide it with PREDICT.

For a certified record (class c, l2 radius R > 0) of a run, the SmoothAdv attack (:func:`benchmark.evaluate.pgd.pgd`
on :func:`benchmark.evaluate.pgd.smoothed_loss`: PGD on the Monte-Carlo soft smoothed classifier against c, ``m`` noise
draws per step, ``steps`` steps of 2.5 R / steps) looks for x' with ||x' - x||_2 <= R in the image box. PREDICT
(``n`` fresh samples, level ``alpha``) then decides x'. The image *flipped* when PREDICT returns a class other than
c (an abstention is not a flip). If the certificate is sound, a flip needs the certificate to have failed (each of
the run's certificates fails with probability at most alpha_cert over its own noise, certified or not) or PREDICT
to have erred (at most alpha_predict): in expectation at most alpha_cert per image of the run plus alpha_predict
per attacked image, however strong the attack. The audit also reports how far the
attack pushed the top-class vote share p_c = counts_c / n down (measured at x and x' on the same number of fresh
samples), which shows the attack did work even where nothing flipped.

Results: ``results/<suite>/audit/<method>/<base>/sigma_<s>/<audit hash>/`` (of the run's hash and the settings)
holds ``audit.json`` (settings and provenance) and ``records.jsonl`` (one :class:`AuditRecord` per attacked image),
written and read by the pipeline ``run`` uses (:mod:`benchmark.run.jsonl`): an interrupted audit resumes, and
identical processes share the images;
``leaderboards/<suite>-audit.md`` is generated from them by ``python -m benchmark leaderboard``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmark.certificates.device import Precision, SmoothingClassifier
from benchmark.certificates.registry import certifier_for
from benchmark.certificates.smoothing import ABSTAIN, image_generator, predict_from_counts, sample_counts
from benchmark.config.hashing import config_hash, to_jsonable
from benchmark.config.registry import METHODS
from benchmark.config.suite import snapshot
from benchmark.errors import BenchmarkError
from benchmark.evaluate.pgd import pgd, smoothed_loss
from benchmark.files import now
from benchmark.method import white_box
from benchmark.run.jsonl import RERUN, JsonlWriter, claiming, read_jsonl, typed_row
from benchmark.run.plan import cell
from benchmark.run.provenance import write_stamped
from benchmark.run.ranking import ranked_runs
from benchmark.run.records import latest_runs, run_dir
from benchmark.run.session import Session

# Audit noise comes from streams of its own, away from the certification streams of the same image index.
NOISE_OFFSET = 2 * 10**9


@dataclass(frozen=True)
class AuditSettings:
    """Attributes: steps, m: PGD steps and noise draws per step; n, alpha: PREDICT's samples and level at x'."""

    steps: int = 20
    m: int = 16
    n: int = 1000
    alpha: float = 0.001

    def __post_init__(self):
        if self.steps < 1 or self.m < 1 or self.n < 2 or not 0 < self.alpha < 1:
            raise ValueError("audit settings: steps, m >= 1, n >= 2 and 0 < alpha < 1")


@dataclass(frozen=True)
class AuditRecord:
    """One attacked image: its certificate, the perturbation found, and the decisions before and after."""

    idx: int
    label: int
    certified: int
    radius: float
    moved: float  # ||x' - x||_2 of the attack's point (<= radius)
    p_before: float  # top-class vote share at x on n fresh samples
    p_after: float  # at x'
    predict_after: int
    flipped: int
    time_s: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, row: object) -> AuditRecord:
        return typed_row(cls, row)


def audit_image(
    model: torch.nn.Module,
    x: torch.Tensor,
    c: int,
    radius: float,
    sigma: float,
    settings: AuditSettings,
    batch_size: int,
    generator: torch.Generator,
    voter: torch.nn.Module | None = None,
) -> dict:
    """Attack class ``c`` of the smoothed ``model`` at ``x`` ([C,H,W] in [0,1]) inside the l2 ball of ``radius``;
    the fields of an :class:`AuditRecord` but the image's index and label. ``model`` must be differentiable (the
    noisy classifier itself); ``voter`` counts the votes (default ``model``; the harness' inference wrapper at the
    run's precision, so PREDICT decides with the classifier that was certified)."""
    voter = model if voter is None else voter
    target = torch.tensor([c], device=x.device)
    loss = smoothed_loss(model, target, sigma, settings.m, generator)
    with white_box():
        x_adv = pgd(
            loss,
            x.unsqueeze(0),
            norm="l2",
            eps=radius,
            step=2.5 * radius / settings.steps,
            steps=settings.steps,
            generator=generator,
        )[0]
    with torch.no_grad():
        before = sample_counts(voter, x, sigma, settings.n, batch_size, generator)
        after = sample_counts(voter, x_adv, sigma, settings.n, batch_size, generator)
    decision = predict_from_counts(after, settings.alpha)
    return {
        "certified": int(c),
        "radius": float(radius),
        "moved": float((x_adv - x).norm()),
        "p_before": float(before[c]) / settings.n,
        "p_after": float(after[c]) / settings.n,
        "predict_after": decision,
        "flipped": int(decision not in (c, ABSTAIN)),
    }


def read_audit(directory: Path) -> list[AuditRecord]:
    """The records of an audit directory, one per image, in file order; strict (see :mod:`benchmark.run.jsonl`)."""
    return read_jsonl(directory, AuditRecord, "records.jsonl", RERUN)


def summary(
    records: list[AuditRecord], alpha_cert: float, alpha_predict: float, run_images: int | None = None
) -> dict:
    """Counts and means of one audit, with the flips a sound certificate allows in expectation: alpha_cert per image
    of the run (a certificate's guarantee is over all its images, certified or not, so a certified image may fail
    more often than alpha_cert) plus alpha_predict per attacked image."""
    n = len(records)
    mean = (lambda values: sum(values) / n) if n else (lambda values: float("nan"))
    return {
        "attacked": n,
        "flipped": sum(r.flipped for r in records),
        "allowed": (n if run_images is None else run_images) * alpha_cert + n * alpha_predict,
        "abstained_after": sum(r.predict_after == ABSTAIN for r in records),
        "mean_radius": mean([r.radius for r in records]),
        "mean_moved": mean([r.moved for r in records]),
        "mean_p_before": mean([r.p_before for r in records]),
        "mean_p_after": mean([r.p_after for r in records]),
        "mean_drop": mean([r.p_before - r.p_after for r in records]),
    }


def audit_settings(steps: int, m: int, n: int, alpha: float) -> AuditSettings:
    """The settings ``audit`` was given, checked (a :class:`BenchmarkError` names the bad one)."""
    try:
        return AuditSettings(steps, m, n, alpha)
    except ValueError as err:
        raise BenchmarkError(str(err)) from None


def audit_suite(cfg, methods: list[str], max_images: int | None, settings: AuditSettings) -> Iterator[str]:
    """:func:`run_audit` for each of ``methods`` (names or 'all') on each base and sigma of ``cfg``, yielding a line
    per audit as it is done."""
    if max_images is not None and max_images < 1:  # a slice would take 0 as "all" and -190 as "all but 190"
        raise BenchmarkError(f"--max-images must be >= 1 (or left out for every certified image), got {max_images}")
    for method in METHODS.resolve(methods):
        for base in cfg.bases:
            for sigma in cfg.sigmas:
                directory, stats = run_audit(cfg, method, base, sigma, max_images, settings)
                yield (
                    f"{method} {base} sigma={sigma:g}: {stats['flipped']} of {stats['attacked']} certified images "
                    f"flipped inside their radius (a sound certificate allows {stats['allowed']:.2f} in "
                    f"expectation); mean vote share {stats['mean_p_before']:.3f} -> {stats['mean_p_after']:.3f} "
                    f"-> {directory}"
                )


def run_audit(
    cfg, method: str, base: str, sigma: float, max_images: int | None, settings: AuditSettings
) -> tuple[Path, dict]:
    """Audit the ranked run of (``base``, ``method``, ``sigma``) under ``cfg.results``: its first ``max_images``
    certified images by index (all: None). Returns the audit directory and its :func:`summary`."""
    if len(certifier_for(METHODS.get(method).Config(), check=False).sigmas(sigma)) > 1:
        raise BenchmarkError(
            f"{method} votes over several noise levels: the audit re-decides with single-sigma "
            "PREDICT, so it audits single-sigma methods only"
        )
    session = Session(cfg)
    run, model = _ranked_run(cfg, session, method, base, sigma)
    noisy = model.noisy_classifier(sigma).eval()
    voter = SmoothingClassifier(noisy, session.device, Precision(run.precision))  # PREDICT as certified
    certified = [r for r in run.records if r.prediction != ABSTAIN and r.radius > 0]
    certified = certified[:max_images] if max_images else certified
    # one directory per run and audit settings: records made with other steps, m or n never mix
    audit_key = config_hash({"run": run.directory.name, "settings": to_jsonable(settings)})
    directory = run_dir(session.results, cfg.suite, method, base, sigma, audit_key, evaluation="audit")
    write_stamped(
        directory / "audit.json",
        {
            "suite": cfg.suite,
            "method": method,
            "base": base,
            "sigma": sigma,
            "run": run.directory.name,
            "precision": run.precision,
            "alpha_cert": run.info.alpha,
            "settings": to_jsonable(settings),
            "images": [r.idx for r in certified],
            "run_images": len(run.records),
            "updated": now(),
        },
        session.device,
    )
    writer = JsonlWriter(directory, AuditRecord, remedy=RERUN)
    data, by_idx = session.eval_data(), {r.idx: r for r in certified}
    with claiming(writer, [[r.idx] for r in certified]) as work:
        for (idx,) in work:
            record = by_idx[idx]
            x, label = data[idx]
            t0 = time.perf_counter()
            gen = image_generator(cfg.seed, NOISE_OFFSET + idx, session.device)
            fields = audit_image(
                noisy,
                x.to(session.device),
                record.prediction,
                record.radius,
                sigma,
                settings,
                cfg.batch_size,
                gen,
                voter=voter,
            )
            writer.append(AuditRecord(idx=idx, label=int(label), time_s=time.perf_counter() - t0, **fields))
    return directory, summary(read_audit(directory), run.info.alpha or cfg.alpha, settings.alpha, len(run.records))


def _ranked_run(cfg, session, method: str, base: str, sigma: float):
    """The ranked run of the cell and its stored fit, refused unless the suite's settings now made it."""
    # the run the leaderboard ranks, by the same snapshot of the suite the tables are built with (ranking needs no
    # families, so the registry is not read for them)
    rules = snapshot(cfg.suite, families={})
    latest = [r for r in latest_runs(session.results, cfg.suite) if (r.info.base, r.info.method) == (base, method)]
    ranked = ranked_runs(latest, rules.preferred_precision, rules.whole_subset_only, rules.certificate)
    chosen = [r for r in ranked if float(r.info.sigma) == float(sigma)]
    if not chosen:
        raise BenchmarkError(
            f"no ranked {method} run on {base} at sigma {sigma:g} under {session.results}/"
            f"{cfg.suite}: certify it first (python -m benchmark run)"
        )
    run = chosen[0]
    target = cell(cfg, method, base, sigma, run.precision)
    if target.chash != run.directory.name:
        raise BenchmarkError(
            f"{run.directory} was certified under other settings than the suite's now ({target.chash}"
            "): audit it from the commit that made it"
        )
    model = session.stored(target)
    if model is None:
        raise BenchmarkError(
            f"the fit of {run.directory} is neither published nor cached: run publish-fits where it "
            "was made, or refit it with run"
        )
    return run, model
