"""What the zoo can load: the ranked rows of the committed results, with the fits they were certified with."""

from __future__ import annotations

from pathlib import Path

from benchmark.config.suite import PROJECT_ROOT, load_suite, snapshot
from benchmark.errors import BenchmarkError
from benchmark.report.metrics import certified_accuracy
from benchmark.run.ranking import fit_parts, fit_published, ranked_runs
from benchmark.run.records import Run, latest_runs, suites_in

RESULTS = PROJECT_ROOT / "results"


def ranked(results: Path, suite: str) -> list[Run]:
    """The runs ``suite``'s leaderboard ranks (one per base, method and sigma), as its snapshot says, but external
    models' rows."""
    rules = snapshot(suite)
    runs = ranked_runs(
        latest_runs(results, suite), rules.preferred_precision, rules.whole_subset_only, rules.certificate
    )
    return [run for run in runs if not run.info.fit.get("external")]  # a user's own model is theirs to load


def ranked_run(results: Path, suite: str, method: str, base: str, sigma: float) -> Run:
    """The ranked run of one row, or a one-line error naming what the suite ranks (``suite``: a name or a file)."""
    suite = load_suite(suite)[0] if suite.endswith(".toml") else suite
    if suite not in suites_in(results):
        raise BenchmarkError(f"no results of suite {suite!r} under {results}: see python -m benchmark zoo")
    runs = ranked(results, suite)
    for run in runs:
        info = run.info
        if (info.method, info.base) == (method, base) and abs(float(info.sigma) - float(sigma)) < 1e-9:
            return run
    rows = sorted({f"{r.info.method}/{r.info.base}/{float(r.info.sigma):g}" for r in runs})
    raise BenchmarkError(
        f"{suite} ranks no {method} on {base} at sigma {float(sigma):g}: it ranks {', '.join(rows) or 'nothing'}"
        " (python -m benchmark zoo lists them)"
    )


def fit_hashes(run: Run) -> list[str]:
    """The fits a run's records came from: its own, or those of the stages a cascade composes (each once)."""
    return [part["fit_hash"] for _, part in fit_parts(run.info.method, run.info.fit)]


def available(suite: str | None = None, results: str | Path | None = None) -> list[dict]:
    """One entry per ranked row of ``suite`` (every suite under ``results``, the committed ones by default): suite,
    method, base, sigma, precision, trainable share, fit hashes, whether every fit is published (``loadable``),
    the radius grid and the certified accuracy (%) at it."""
    root = Path(results) if results is not None else RESULTS
    entries = []
    if suite and suite not in suites_in(root):
        raise BenchmarkError(f"no results of suite {suite!r} under {root}: known are {', '.join(suites_in(root))}")
    for name in [suite] if suite else suites_in(root):
        for run in ranked(root, name):
            info = run.info
            radii = [float(r) for r in info.radii]
            entries.append(
                {
                    "suite": name,
                    "method": info.method,
                    "base": info.base,
                    "sigma": float(info.sigma),
                    "precision": run.precision,
                    "trainable_pct": info.cost.get("trainable_pct"),
                    "fit_hashes": fit_hashes(run),
                    "loadable": fit_published(run),
                    "radii": radii,
                    "certified_accuracy": [100 * a for a in certified_accuracy(run.records, radii)],
                }
            )
    return entries


def zoo_table(entries: list[dict]) -> str:
    """The listing as a plain-text table (``python -m benchmark zoo``)."""
    if not entries:
        return "nothing to load: no ranked rows"
    grid = entries[0]["radii"]
    head = ["suite", "method", "base", "sigma", "trainable %", "fit", *[f"r={r:g}" for r in grid]]
    lines = [head]
    for e in entries:
        share = "—" if e["trainable_pct"] is None else f"{e['trainable_pct']:.2f}"
        fit = ",".join(h[:10] for h in e["fit_hashes"]) or "—"
        if not e["loadable"]:
            fit += " (not published)"
        accs = [f"{a:.1f}" for a in e["certified_accuracy"]] if e["radii"] == grid else ["(own grid)"]
        lines.append([e["suite"], e["method"], e["base"], f"{e['sigma']:g}", share, fit, *accs])
    widths = [max(len(row[i]) for row in lines if i < len(row)) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in lines)
