"""Each row's training budget, so rows trained on different budgets are not read as like for like.

A suite gives ``gaussian`` (the reference, full fine-tuning) its own recipe; a method without one in the suite trains
on its class defaults. The budget of a row's own fit (epochs and optimizer steps as the loop counted them, optimizer
and learning rate from its resolved config) is read from run.json; a row whose epochs or steps differ from the
reference row's at the same base and sigma is flagged. A row without a fit of its own (nothing trained, or a
composition of other fits) has no budget.
"""

from __future__ import annotations

from collections.abc import Sequence

BUDGET_COLUMNS = ("train_epochs", "train_steps", "optimizer", "lr", "budget_differs")


def budget_of(info) -> dict:
    """The budget columns of a run (``info``: its :class:`~benchmark.run.records.RunInfo`)."""
    if not info.fit.get("fit_hash"):
        return dict.fromkeys(BUDGET_COLUMNS[:4])
    train = (info.config.get("method_config") or {}).get("train") or {}
    return {
        "train_epochs": info.fit.get("epochs"),
        "train_steps": info.fit.get("steps"),
        "optimizer": train.get("optimizer"),
        "lr": train.get("lr"),
    }


def flag_budgets(ranked: Sequence[dict], reference: dict | None) -> None:
    """Mark (in place) each ranked row of one base and sigma whose epochs or steps differ from ``reference``'s."""
    for row in ranked:
        known = reference is not None and row["train_steps"] is not None and reference["train_steps"] is not None
        mine, theirs = (
            (row["train_epochs"], row["train_steps"]),
            known and (reference["train_epochs"], reference["train_steps"]),
        )
        row["budget_differs"] = bool(known and row is not reference and mine != theirs)


def budget_cell(row: dict) -> str:
    """``4 ep, 1,564 steps, adamw 0.005``; epochs and steps in bold where they differ from the reference's."""
    if row.get("train_steps") is None:
        return "—"
    size = f"{row['train_epochs']:g} ep, {row['train_steps']:,} steps"
    size = f"**{size}**" if row.get("budget_differs") else size
    return f"{size}, {row['optimizer']} {row['lr']:g}" if row.get("optimizer") else size
