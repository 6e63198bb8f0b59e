"""Which run stands for a cell: of the newest run of each configuration and precision, the one a leaderboard ranks
(and an audit audits) for its base, method and sigma, under its suite's ranking rules (given: see
:class:`~benchmark.config.snapshot.SuiteSnapshot`, never read here from the suite files)."""

from __future__ import annotations

from benchmark.files import safe_name
from benchmark.run.records import Run


def fit_parts(method: str, fit: dict) -> list[tuple[str, dict]]:
    """The fitted states a run's ``fit`` names, as (method, part with ``fit_hash`` and ``state_sha256``), each once:
    its own, then those of the stages a cascade composes (its own fit is none; stages may share one state)."""
    parts = [(method, fit)] if fit.get("fit_hash") else []
    for name, part in sorted(fit.get("composes", {}).items()):
        owner = part.get("method", name)
        if (owner, part.get("fit_hash")) not in {(m, p.get("fit_hash")) for m, p in parts}:
            parts.append((owner, part))
    return parts


def fit_published(run: Run) -> bool:
    """Whether the state a run was certified with is committed beside it (or the run has no fit): its records can
    then be checked, and extended elsewhere, against that very state."""
    root = run.directory.parents[4]  # <results>/<suite>/<method>/<base>/sigma_<s>/<hash>
    return all(
        (root / "checkpoints" / safe_name(method) / part["fit_hash"] / "state.safetensors").is_file()
        for method, part in fit_parts(run.info.method, run.info.fit)
    )


def ranked_runs(
    latest: list[Run], preferred: str, published_fits: bool = False, certificate: str = "fixed"
) -> list[Run]:
    """Of the newest runs of each configuration cell and precision (:func:`~benchmark.run.records.latest_runs`), one
    per (suite, base, method, sigma): the complete run in the ``preferred`` precision, else a complete run in
    another. Partial runs, the other precision's run, superseded configurations and runs of another run-level
    certificate than the suite's ``certificate`` are not ranked; with ``published_fits`` (a suite whose results are
    committed) neither is a run whose fit is not published, nor one that certified fewer images than the suite's
    subset (``--max-images``: a smoke run, complete as asked, that must not stand beside the subset's rows)."""
    chosen: dict[tuple, Run] = {}
    for run in latest:
        if run.status != "complete" or run.mode != certificate:
            continue
        if published_fits and (not fit_published(run) or len(run.records) < (run.info.subset_size or 0)):
            continue
        cell = (run.info.suite, run.info.base, run.info.method, float(run.info.sigma))
        rank = (run.precision == preferred, run.info.updated)
        if cell not in chosen or rank > (chosen[cell].precision == preferred, chosen[cell].info.updated):
            chosen[cell] = run
    return [chosen[k] for k in sorted(chosen)]
