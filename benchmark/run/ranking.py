"""Which run stands for a cell: of the newest run of each configuration and precision, the one a leaderboard ranks
(and an audit audits) for its base, method and sigma, under its suite's ranking rules (given: see
:class:`~benchmark.config.snapshot.SuiteSnapshot`, never read here from the suite files)."""

from __future__ import annotations

from benchmark.files import safe_name
from benchmark.run.records import Run


def fit_published(run: Run) -> bool:
    """Whether the state a run was certified with is committed beside it (or the run has no fit): its records can
    then be checked, and extended elsewhere, against that very state."""
    root = run.directory.parents[4]  # <results>/<suite>/<method>/<base>/sigma_<s>/<hash>
    fits = [(run.info.method, run.info.fit.get("fit_hash"))]
    # a cascade's own fit is none: the fits of the stages it composes are what its records were certified with
    composes = run.info.fit.get("composes", {})
    fits += [(part.get("method", name), part.get("fit_hash")) for name, part in composes.items()]
    return all(
        not fhash or (root / "checkpoints" / safe_name(method) / fhash / "state.safetensors").is_file()
        for method, fhash in fits
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
