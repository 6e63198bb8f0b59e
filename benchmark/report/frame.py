"""Results as a table: one row per certified image, its run's metadata joined (the public way to analyse results).

>>> from benchmark.config.suite import snapshots
>>> from benchmark.report.frame import frame
>>> df = frame("results", suite="cifar10-cpu", snapshots=snapshots(["cifar10-cpu"]))
>>> df[df.ranked].groupby(["base", "sigma", "method"]).correct.mean()

Columns: every :class:`~benchmark.run.records.Record` field, then per run ``suite, base, precision, status, run``
(the run directory's config hash), ``run_mode`` (the run's run-level certificate, "fixed", "sequential" or
"adaptive": a cascade's records say "cascade" in ``mode`` while its run-level one stays "fixed"), ``updated,
radii`` (its table grid), ``subset_size, dataset_label, trainable_params, trainable_pct, stored_bytes,
fit_time_s`` (the run's own fit), ``composed_fit_time_s`` (the published fits a cascade composes, each once; None
otherwise), ``queries, fit_hash, notes``, ``stage_sigmas`` (a cascade's noise levels, "0.25/0.5/1"; None
otherwise), ``composes`` and ``composed_fits`` (the methods, and the fit hashes, a cascade certifies with),
``fit_published``, ``whole_subset_only`` (its suite is committed, so it ranks only runs of its whole subset whose
fits are published), ``suite_certificate`` (the run-level certificate its suite ranks), ``latest`` (the newest
configuration of its suite, method, base, sigma and precision) and ``ranked`` (the one run a leaderboard ranks for
its base, method and sigma: see :func:`ranked_runs`).

How a suite ranks comes from the :class:`~benchmark.config.snapshot.SuiteSnapshot` given for it, not from its
suite file: the frame is a function of the results folder and the snapshots.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from benchmark.config.snapshot import SuiteSnapshot
from benchmark.errors import BenchmarkError
from benchmark.files import read_json, safe_name
from benchmark.report.budget import BUDGET_COLUMNS, budget_of
from benchmark.run.ranking import fit_published, ranked_runs
from benchmark.run.records import Record, Run, iter_runs, latest_runs, newest

RUN_COLUMNS = (
    "suite",
    "base",
    "precision",
    "status",
    "run",
    "run_mode",
    "updated",
    "radii",
    "subset_size",
    "dataset_label",
    "trainable_params",
    "trainable_pct",
    "stored_bytes",
    "fit_time_s",
    "composed_fit_time_s",
    "queries",
    "fit_hash",
    "external",
    "notes",
    "latest",
    "ranked",
    "fit_published",
    "stage_sigmas",
    "composes",
    "composed_fits",
    "whole_subset_only",
    "suite_certificate",
    *BUDGET_COLUMNS[:4],
)


def composed_fit_time(run: Run) -> float | None:
    """The fit time of the fits a cascade composes, each counted once, from their published ``fit.json``; None when
    it composes none or one of them is not published (its cost is then unknown here)."""
    root = run.directory.parents[4]
    composes = run.info.fit.get("composes", {})
    parts = {(part.get("method", name), part.get("fit_hash")) for name, part in composes.items()}
    if not parts or any(not fhash for _, fhash in parts):
        return None
    times = [
        (read_json(root / "checkpoints" / safe_name(m) / h / "fit.json", "fit.json") or {}).get("fit_time_s")
        for m, h in parts
    ]
    return None if any(t is None for t in times) else float(sum(times))


def run_metadata(run: Run, latest: bool, ranked: bool) -> dict:
    info = run.info
    composes = info.fit.get("composes", {})
    notes = {**info.notes, **info.measurements}
    return {
        "suite": info.suite,
        "base": info.base,
        "precision": run.precision,
        "status": run.status,
        "run": run.directory.name,
        "run_mode": run.mode,
        "updated": info.updated,
        "radii": tuple(info.radii),
        "subset_size": info.subset_size,
        "dataset_label": info.dataset_label if info.dataset_label is not None else info.dataset,
        "trainable_params": info.cost.get("trainable_params"),
        "trainable_pct": info.cost.get("trainable_pct"),
        "stored_bytes": info.cost.get("stored_bytes"),
        "fit_time_s": info.timings.get("fit_time_s"),
        "composed_fit_time_s": composed_fit_time(run),
        "queries": info.fit.get("queries"),
        "fit_hash": info.fit.get("fit_hash"),
        "external": (info.fit.get("external") or {}).get("module"),
        "notes": "; ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(notes.items())),
        "latest": latest,
        "ranked": ranked,
        "fit_published": fit_published(run),
        "stage_sigmas": "/".join(f"{s:g}" for s in info.stage_sigmas) if info.stage_sigmas else None,
        "composes": ",".join(sorted({part.get("method", name) for name, part in composes.items()})) or None,
        "composed_fits": ",".join(sorted({part["fit_hash"] for part in composes.values()})) or None,
        **budget_of(info),
    }


def snapshot_of(snapshots: Mapping[str, SuiteSnapshot], suite: str) -> SuiteSnapshot:
    """The snapshot given for ``suite``; a suite without one is an error, never a silent default ranking."""
    if suite not in snapshots:
        raise BenchmarkError(
            f"no suite snapshot given for {suite!r} (build one with "
            "benchmark.config.suite.snapshot, or by hand as a SuiteSnapshot)"
        )
    return snapshots[suite]


def frame(results: str | Path, suite: str | None = None, *, snapshots: Mapping[str, SuiteSnapshot]) -> pd.DataFrame:
    """Every record under ``results`` (one suite, or all), one row each, with its run's metadata (module docstring);
    ``snapshots`` (suite name -> snapshot) say how each suite found there ranks."""
    results = Path(results)
    runs = list(iter_runs(results, suite))
    latest = newest(runs)
    ranked: set[int] = set()
    rules = {name: snapshot_of(snapshots, name) for name in {r.info.suite for r in runs}}  # per suite, not per row
    for name in sorted(rules):
        rule = rules[name]
        chosen = ranked_runs(
            [r for r in latest if r.info.suite == name],
            rule.preferred_precision,
            rule.whole_subset_only,
            rule.certificate,
        )
        ranked |= {id(r) for r in chosen}
    latest = {id(r) for r in latest}
    fields = [f.name for f in dataclasses.fields(Record)]
    rows = []
    for run in runs:
        meta = {
            **run_metadata(run, id(run) in latest, id(run) in ranked),
            "whole_subset_only": rules[run.info.suite].whole_subset_only,
            "suite_certificate": rules[run.info.suite].certificate,
        }
        rows += [{**dataclasses.asdict(record), **meta} for record in run.records]
    return pd.DataFrame(rows, columns=[*fields, *(c for c in RUN_COLUMNS if c not in fields)])


__all__ = ["frame", "latest_runs", "ranked_runs"]
