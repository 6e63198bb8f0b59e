"""Published numbers of the registry's methods ("reported elsewhere"), kept apart from the suite's measurements.

Why apart: a published number was computed by other people with another base, another test subset, another N and
often as an envelope over sigma and hyper-parameters; it is a reference to compare against, never a result of
ours. So these numbers never enter the results folder, the frame, the rankings or the paired comparisons; cards
and pages that show them label them "reported elsewhere", with their source and its label.

Where they come from: ``reported.toml`` beside this module (package data), transcribed by hand from the team's
reference sheet (``../shared/REFERENCES.md``, the "(b) Numbers" of each section and section 8), copied as stated,
never interpolated or derived, each number with the sheet's label of its source:

* ``paper``: a table of the paper itself;
* ``data``: recomputed from the certification logs released with the code (Cohen's definitions);
* ``repo-doc``: the repository's README or analysis tables;
* ``2nd``: a secondary source quoting the paper (another paper's table, a review, an abstract page).

Numbers the sheet marks unverified ([U]) are not transcribed. The project never reads REFERENCES.md at run time.

How to add one: append a ``[[<method>]]`` table to ``reported.toml``, where ``<method>`` is a registry name
(``python -m benchmark list``), with ``source`` (who published it, where), ``label`` (one of the above),
``references_section`` (e.g. ``"1(b)"``), ``dataset`` (``cifar10`` or ``imagenet``), ``setting`` (model, sigma, N,
images as given), ``certified_accuracy`` (percent, keyed by the radius as a canonical string: ``f"{r:g}"``, so
``"0"``, ``"0.25"``, ``"1"``), and optionally ``sigma`` (left out for an envelope or a cascade), ``acr`` and
``note`` (anything a reader must know: the base differs from ours, the number is an envelope, ...). The file is
checked when it is first read; ``tests/test_reported.py`` also checks every method key against the registry.
"""

from __future__ import annotations

import math
import tomllib
from functools import cache
from importlib import resources
from typing import Any

DATA_FILE = "reported.toml"
LABELS = ("paper", "data", "repo-doc", "2nd")
DATASETS = ("cifar10", "imagenet")
REQUIRED = ("source", "label", "references_section", "dataset", "setting", "certified_accuracy")
OPTIONAL = ("sigma", "acr", "note")


class ReportedNumbersError(ValueError):
    """``reported.toml`` breaks its schema: the message names the entry and the field."""


def reported_numbers(method: str, dataset: str | None = None) -> list[dict[str, Any]]:
    """The published entries of ``method`` (all datasets, or only ``dataset``), in the file's order.

    Each entry is a dict of the schema's fields (``sigma``, ``acr`` as None and ``note`` as "" when not given) with
    ``certified_accuracy`` as ``{radius string: percent}``. An unknown method (or one with no published numbers)
    gives ``[]``. The dicts are copies: changing one does not change what the next call returns.
    """
    entries = _load().get(method, ())
    return [_copy(e) for e in entries if dataset is None or e["dataset"] == dataset]


def reported_methods() -> list[str]:
    """The methods with at least one published entry, in the file's order."""
    return list(_load())


def _copy(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "certified_accuracy": dict(entry["certified_accuracy"])}


@cache
def _load() -> dict[str, tuple[dict[str, Any], ...]]:
    """Read and check ``reported.toml`` once."""
    text = resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ReportedNumbersError(f"{DATA_FILE}: {err}") from err
    return {method: _entries(method, rows) for method, rows in table.items()}


def _entries(method: str, rows: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(rows, list) or not rows:
        raise ReportedNumbersError(f"{DATA_FILE}: {method!r} must be a non-empty array of tables ([[{method}]])")
    return tuple(_entry(f"{DATA_FILE}: [[{method}]] #{i + 1}", row) for i, row in enumerate(rows))


def _entry(where: str, row: Any) -> dict[str, Any]:
    """One checked entry with the optional fields filled in."""
    if not isinstance(row, dict):
        raise ReportedNumbersError(f"{where}: not a table")
    missing = [k for k in REQUIRED if k not in row]
    unknown = sorted(set(row) - set(REQUIRED) - set(OPTIONAL))
    if missing or unknown:
        raise ReportedNumbersError(f"{where}: missing {missing}, unknown {unknown}")
    for key in ("source", "references_section", "setting", "note"):
        if not isinstance(row.get(key, ""), str) or (key != "note" and not row[key].strip()):
            raise ReportedNumbersError(f"{where}: {key} must be a non-empty string")
    if row["label"] not in LABELS:
        raise ReportedNumbersError(f"{where}: label {row['label']!r} is none of {LABELS}")
    if row["dataset"] not in DATASETS:
        raise ReportedNumbersError(f"{where}: dataset {row['dataset']!r} is none of {DATASETS}")
    entry = {k: row[k] for k in REQUIRED}
    entry["certified_accuracy"] = _accuracies(where, row["certified_accuracy"])
    entry["sigma"] = _number(where, "sigma", row.get("sigma"), positive=True)
    entry["acr"] = _number(where, "acr", row.get("acr"), positive=False)
    entry["note"] = row.get("note", "")
    return entry


def _accuracies(where: str, table: Any) -> dict[str, float]:
    """``{radius: percent}`` with canonical radius keys and every percent in [0, 100]."""
    if not isinstance(table, dict) or not table:
        raise ReportedNumbersError(f"{where}: certified_accuracy must be a non-empty table")
    checked: dict[str, float] = {}
    for key, value in table.items():
        try:
            radius = float(key)
        except ValueError:
            raise ReportedNumbersError(f"{where}: radius {key!r} is not a number") from None
        if not math.isfinite(radius) or radius < 0 or key != f"{radius:g}":
            raise ReportedNumbersError(f"{where}: radius {key!r} must be a finite r >= 0 written as f'{{r:g}}'")
        pct = _number(where, f"certified_accuracy[{key!r}]", value, positive=False)
        if pct > 100:
            raise ReportedNumbersError(f"{where}: certified_accuracy[{key!r}] = {value} is not a percentage")
        checked[key] = pct
    return checked


def _number(where: str, name: str, value: Any, positive: bool) -> float | None:
    """``value`` as a float (None stays None), finite and >= 0 (> 0 if ``positive``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReportedNumbersError(f"{where}: {name} = {value!r} is not a number")
    if value < 0 or (positive and value == 0):
        raise ReportedNumbersError(f"{where}: {name} = {value!r} must be {'> 0' if positive else '>= 0'}")
    return float(value)
