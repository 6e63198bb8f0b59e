"""Each row's training budget (issue 40, item 8): read from run.json, and flagged where it differs from the
reference's at the same base and sigma."""

from __future__ import annotations

from benchmark.report.budget import budget_cell, budget_of, flag_budgets
from benchmark.run.records import RunInfo


def _info(fit: dict, train: dict | None) -> RunInfo:
    config = {"method_config": {"train": train}} if train is not None else {"method_config": {}}
    return RunInfo(suite="s", method="m", base="b", sigma=0.25, fit=fit, config=config)


def test_a_run_budget_comes_from_its_own_fit_and_config():
    own = _info({"fit_hash": "f", "epochs": 4, "steps": 1564}, {"optimizer": "sgd", "lr": 0.01, "epochs": 4})
    assert budget_of(own) == {"train_epochs": 4, "train_steps": 1564, "optimizer": "sgd", "lr": 0.01}
    # a composition (no fit of its own) has no budget, whatever the fits it composes trained for
    composed = _info({"composes": {"gaussian@0.5": {"fit_hash": "g"}}}, None)
    assert budget_of(composed) == {"train_epochs": None, "train_steps": None, "optimizer": None, "lr": None}


def test_rows_whose_budget_differs_from_the_reference_are_flagged_and_shown_in_bold():
    def row(epochs, steps, optimizer="adam", lr=1e-3):
        return {"train_epochs": epochs, "train_steps": steps, "optimizer": optimizer, "lr": lr}

    reference, same, longer, untrained = row(4, 1564, "sgd", 0.01), row(4, 1564), row(12, 4692), row(None, None)
    flag_budgets([reference, same, longer, untrained], reference)
    assert [r["budget_differs"] for r in (reference, same, longer, untrained)] == [False, False, True, False]
    assert budget_cell(same) == "4 ep, 1,564 steps, adam 0.001"
    assert budget_cell(longer) == "**12 ep, 4,692 steps**, adam 0.001" and budget_cell(untrained) == "—"
    alone = row(4, 1564)
    flag_budgets([alone], None)  # no reference row at this base and sigma: nothing to differ from
    assert alone["budget_differs"] is False
