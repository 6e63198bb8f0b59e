"""How a leaderboard row reads: its name (precision, certificate, status, subset), the data it ran on, and its cells
with their intervals, in one format for the full tables and the README summary."""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchmark.report.labels import run_label, subset_note, unfinished

DASH = "—"


def label(row: dict, rows: Sequence[dict]) -> str:
    return run_label(row["method"], row["precision"], mixed=len({r["precision"] for r in rows}) > 1)


def precision_note(rows: Sequence[dict]) -> str:
    """One sentence giving the precision of rows whose names carry none: a base whose rows all ran in one
    precision labels none of them, so without this its rows would read as whatever the page says is usual."""
    uniform = {}
    for base in sorted({r["base"] for r in rows}):
        precisions = {r["precision"] for r in rows if r["base"] == base}
        if len(precisions) == 1:
            uniform[base] = precisions.pop()
    if not uniform:
        return "Precision: in brackets after each method."
    named = "; ".join(f"every `{b}` row ran in {p}" for b, p in uniform.items())
    mixed = len(uniform) < len({r["base"] for r in rows})
    return f"Precision: {named}" + ("; elsewhere in brackets after each method." if mixed else ".")


def row_name(row: dict, rows: Sequence[dict]) -> str:
    """The name of ``row`` among ``rows`` (those of its table): its label, and its status unless complete."""
    base_rows = [r for r in rows if r["base"] == row["base"]]
    return (
        label(row, base_rows)
        + (" (external model)" if row.get("external") else "")
        + row.get("certificate_label", "")
        + unfinished(row["status"])
        + subset_note(row["status"], row["n_images"], row["subset_size"])
    )


def data_names(rows: Sequence[dict]) -> str:
    """The data of ``rows``, one name per registered dataset: the label of its most recently updated run, since
    labels only grew more precise (early runs called the JPEG q75 copy plain "CIFAR-10")."""
    newest: dict[str, dict] = {}
    for r in rows:
        if not isinstance(r["dataset"], str) or not r["dataset"]:  # an imported log may name no data
            continue
        key = r["dataset_name"]
        if key not in newest or r["updated"] > newest[key]["updated"]:
            newest[key] = r
    return ", ".join(sorted(str(r["dataset"]) for r in newest.values()))


def fmt(value, kind: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if kind == "pct":
        return f"{100 * value:.1f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "s":
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def with_interval(row: dict, key: str, kind: str) -> str:
    """A cell and its 95% interval, compactly: ``46.0 (39.0–53.1)``."""
    value, lo, hi = row.get(key), row.get(f"{key}_lo"), row.get(f"{key}_hi")
    if value is None or (isinstance(value, float) and math.isnan(value)) or lo is None or math.isnan(lo):
        return fmt(value, kind)
    return f"{fmt(value, kind)} ({fmt(lo, kind)}–{fmt(hi, kind)})"


def notes_cell(r: dict) -> str:
    shares = r.get("stage_shares") and f"certified per stage: {r['stage_shares']}"
    composed = r.get("composed_fit_time_s")
    composed = composed is not None and f"fit s counts the fits it composes ({composed:,.0f} s)"
    return "; ".join(x for x in (r["notes"], shares, composed) if x) or DASH


def share_cell(row: dict) -> str:
    return DASH if row["trainable_pct"] is None else f"{row['trainable_pct']:.2f}"
