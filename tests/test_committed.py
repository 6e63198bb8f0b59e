"""The committed results stay reachable: every cell the repository holds resumes under the current code.

A change that moved a configuration hash (a renamed config field, a new default, a different key) would make
``run`` start a committed row over instead of resuming it, and refit instead of loading its published fit. These
checks read only ``results/`` and the suite files: no data, no model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmark.config.hashing import config_hash
from benchmark.config.overrides import override_dataclass
from benchmark.config.registry import METHODS
from benchmark.config.run_config import build_run_config
from benchmark.config.suite import suite_names
from benchmark.run.plan import cell
from benchmark.run.records import latest_runs, suites_in

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _paths(table: dict, prefix: str = "") -> set[tuple[str, str]]:
    """A nested settings table as (dotted key, value) pairs."""
    pairs = set()
    for key, value in table.items():
        if isinstance(value, dict):
            pairs |= _paths(value, f"{prefix}{key}.")
        else:
            pairs.add((f"{prefix}{key}", repr(value)))
    return pairs


def _suite_sets(cfg, info) -> set[str]:
    """The dotted keys the suite file sets for a method on a base at a sigma."""
    settings = dict(cfg.method_settings.get(info.method, {}))
    tables = [
        settings,
        settings.pop("by_base", {}).get(info.base, {}),
        settings.pop("by_sigma", {}).get(f"{info.sigma:g}", {}),
    ]
    return {k for table in tables for k, _ in _paths(table)}


SUITES = [s for s in suites_in(RESULTS) if s in suite_names()]


@pytest.mark.parametrize("suite", SUITES)
def test_every_committed_cell_resumes_under_the_current_code(suite):
    cfg = build_run_config(suite, {})
    runs = latest_runs(RESULTS, suite)
    assert runs
    for run in runs:
        info = run.info
        where = f"{info.method}/{info.base}/sigma {info.sigma:g} [{run.precision}, {run.mode}]"
        mode = dataclasses.replace(cfg, certify=run.mode)  # a sequential run is planned as `run --certify sequential`
        planned = cell(mode, info.method, info.base, info.sigma, run.precision)
        changed = _paths(planned.key["method_config"]) ^ _paths(info.config["method_config"])
        if changed:
            # Only settings the suite file now sets for this cell may differ (a validation search chose another
            # recipe); a default that moved in the code is not one of them. Today's code must still resolve the
            # recorded settings to the recorded configuration, so the run stays reachable.
            assert {k for k, _ in changed} <= _suite_sets(cfg, info), f"{where}: {sorted(changed)[:4]}"
            recorded = override_dataclass(METHODS.get(info.method).Config(), info.config["method_config"], where)
            planned = cell(mode, info.method, info.base, info.sigma, run.precision, mconfig=recorded)
        assert planned.key == info.config, f"{where}: the planned record key differs from the committed one"
        assert planned.directory(RESULTS, suite) == run.directory, f"{where}: would start over in a new directory"
        if info.fit.get("fit_key"):
            assert planned.fit_key == info.fit["fit_key"], f"{where}: the fit key moved"
            assert planned.fit_hash == config_hash(info.fit["fit_key"])


def test_published_fits_are_where_their_rows_look():
    """Each run whose fit.json is published names a fit hash the current plan looks up first; the runs checked so
    cover every method that has a run and a published fit under results/checkpoints (none is skipped unseen)."""
    assert "cifar10-cpu" in SUITES
    checked: set[str] = set()
    for suite in SUITES:
        cfg = build_run_config(suite, {})
        for run in latest_runs(RESULTS, suite):
            info = run.info
            fhash = info.fit.get("fit_hash")
            planned = cell(
                dataclasses.replace(cfg, certify=run.mode), info.method, info.base, info.sigma, run.precision
            )
            if planned.key["method_config"] != info.config["method_config"]:
                continue  # a recipe the suite changed since: the run above checks the recorded configuration
            if fhash and (RESULTS / "checkpoints" / info.method / fhash / "state.safetensors").is_file():
                assert planned.fit_hash == fhash
                checked.add(info.method)
    # every method with both a committed run and a published fit had one of its runs checked above
    ran = {run.info.method for suite in SUITES for run in latest_runs(RESULTS, suite)}
    published = {d.name for d in (RESULTS / "checkpoints").iterdir() if list(d.glob("*/state.safetensors"))}
    assert len(ran & published) >= 10 and checked == ran & published, sorted((ran & published) - checked)


@pytest.mark.parametrize("suite", SUITES)
def test_every_ranked_row_certified_the_state_it_publishes(suite):
    """A ranked row's fit is committed under results/checkpoints and is the very state its records came from (the
    SHA-256 its run.json recorded), or the row has no fit."""
    from benchmark.config.suite import snapshots
    from benchmark.files import sha256_file
    from benchmark.report.frame import frame

    df = frame(RESULTS, suite, snapshots=snapshots([suite]))
    ranked = df[df.ranked].drop_duplicates("run")
    assert len(ranked) and ranked.fit_published.all() and df.whole_subset_only.all()
    # and every ranked row certified the whole subset (a --max-images run stands beside the rows, unranked); runs
    # older than the subset_size key certified the suite's whole subset, the largest count here
    images = df[df.ranked].groupby("run").idx.nunique().loc[ranked.run]
    assert (images.to_numpy() == ranked.subset_size.fillna(images.max()).to_numpy()).all()
    for run in latest_runs(RESULTS, suite):
        if run.directory.name in set(ranked.run) and run.info.fit.get("fit_hash"):
            state = RESULTS / "checkpoints" / run.info.method / run.info.fit["fit_hash"] / "state.safetensors"
            assert sha256_file(state) == run.info.fit["state_sha256"], run.directory


@pytest.mark.parametrize("suite", ["cifar10-cpu"])  # the suite whose attack results are committed
def test_every_committed_attack_evaluated_a_published_state(suite):
    """An attack's records come from the fit its attack.json names, committed under results/checkpoints, and the
    suite's current settings still plan that very fit (so `attack` resumes it instead of refitting). Every
    attack.json under results/<suite>/attack is checked, and the committed ones (adapt and prompt_at) are there."""
    import json

    from benchmark.files import sha256_file

    paths = sorted((RESULTS / suite / "attack").glob("*/*/sigma_*/*/attack.json"))
    assert paths and len(paths) == len(list((RESULTS / suite / "attack").rglob("attack.json")))
    metas = [json.loads(p.read_text()) for p in paths]
    assert {"adapt", "prompt_at"} <= {meta["method"] for meta in metas}
    states = 0
    for meta in metas:
        cfg = build_run_config(suite, {"results": str(RESULTS), "bases": (meta["base"],)})
        target = cell(cfg, meta["method"], meta["base"], float(meta["sigma"]), meta["fit_precision"])
        assert target.key == meta["config"], meta["method"]
        if meta["fit"].get("fit_hash"):  # a method that trains nothing (vanilla) records none
            assert meta["fit"]["fit_hash"] == target.fit_hash
            state = RESULTS / "checkpoints" / meta["method"] / target.fit_hash / "state.safetensors"
            assert sha256_file(state) == meta["fit"]["state_sha256"], meta["method"]
            states += 1
    # adapt and prompt_at train: each of their attacks was checked against a committed state
    assert states == sum(meta["method"] in ("adapt", "prompt_at") for meta in metas) > 0
