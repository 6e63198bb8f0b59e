"""Leaderboard rows from :func:`benchmark.report.frame.frame`: one row per run, with the uncertainty of every cell and
the paired comparisons that decide what a table may claim.

Per row: certified accuracy at each radius with its 95% Clopper-Pearson interval over images, ACR with a 95%
bootstrap interval, and the exact McNemar p-value against the suite's reference method (``gaussian``: full
fine-tuning) at each radius, paired on the images both certified. Ranked rows (one per base, method and sigma; see
:func:`benchmark.report.frame.ranked_runs`) are sorted by ACR; a ranked row whose paired 95% bootstrap interval of the
ACR difference to the best row contains 0 is "tied" with it, otherwise "below". Other runs are rows too, unranked,
with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchmark.certificates.registry import certifier_class
from benchmark.config.run_config import DEFAULT_RADII
from benchmark.config.snapshot import SuiteSnapshot
from benchmark.report.budget import flag_budgets
from benchmark.report.frame import frame
from benchmark.report.metrics import (
    abstain_rate,
    acr,
    certified,
    certified_accuracy,
    certified_radius,
    certify_s_per_image,
)
from benchmark.report.stats import bootstrap_interval, mcnemar_p, paired_difference_interval, proportion_interval

REFERENCE = "gaussian"


def radius_label(r: float) -> str:
    return f"acc@{r:g}"


def _unranked_reason(meta: pd.Series, n_images: int | None = None) -> str:
    if meta["ranked"]:
        return ""
    if not meta["latest"]:
        return "superseded"
    if meta["run_mode"] != meta.get("suite_certificate", "fixed"):
        return f"{meta['run_mode']} CERTIFY"
    if meta["status"] != "complete":
        return meta["status"]
    if not meta["fit_published"]:
        return "fit not published"
    subset = _int(meta.get("subset_size"))
    # a committed suite ranks only runs of its whole subset (results.ranked_runs); elsewhere a short run is ranked
    if n_images is not None and subset and n_images < subset and meta["whole_subset_only"]:
        return f"{n_images} of {subset} images"
    return "other precision"


def run_row(group: pd.DataFrame, radii: Sequence[float]) -> dict:
    """The row of one run: its records (``group``, rows of the frame) reduced to metrics and intervals."""
    meta = group.iloc[0]
    n_images = len(group)
    row = {
        "method": meta["method"],
        "base": meta["base"],
        "sigma": float(meta["sigma"]),
        "n_images": n_images,
        "n": _int(meta["n"]),
        "alpha": _float(meta["alpha"]),
        "trainable_params": _int(meta["trainable_params"]),
        "trainable_pct": _float(meta["trainable_pct"]),
        "fit_time_s": _fit_time(meta),
        "certify_s_per_image": certify_s_per_image(group),
        "acr": acr(group),
        "samples_per_image": float(group["n_used"].astype(float).mean()),
    }
    for r, share in zip(radii, certified_accuracy(group, radii), strict=True):
        lo, hi = proportion_interval(int(certified(group, r).sum()), n_images)
        row.update({radius_label(r): share, f"{radius_label(r)}_lo": lo, f"{radius_label(r)}_hi": hi})
    row["acr_lo"], row["acr_hi"] = bootstrap_interval(certified_radius(group))
    stages = _text(meta.get("stage_sigmas"))
    levels = [float(s) for s in stages.split("/")] if stages else [row["sigma"]]
    certifier = certifier_class(str(meta["mode"]))
    row.update(
        abstain_rate=abstain_rate(group),
        r_max=certifier.r_max(levels, row["n"], row["alpha"]) if row["n"] and row["alpha"] else float("nan"),
        stage_sigmas=stages,
        composes=_text(meta.get("composes")),
        composed_fits=_text(meta.get("composed_fits")),
        composed_fit_time_s=_float(meta.get("composed_fit_time_s")),
        fit_hash=_text(meta.get("fit_hash")),
        external=_text(meta.get("external")),
        stage_shares=certifier.row_notes(group),
        certificate_label=certifier.row_label(stages),
        stored_bytes=_int(meta["stored_bytes"]),
        queries=_int(meta["queries"]),
        notes=meta["notes"] or None,
        dataset=meta["dataset_label"],
        dataset_name=meta["dataset"],
        updated=meta["updated"],
        config_hash=meta["run"],
        status=meta["status"],
        precision=meta["precision"],
        subset_size=_int(meta["subset_size"]),
        ranked=bool(meta["ranked"]),
        unranked=_unranked_reason(meta, n_images),
        vs_best="",
        records=group,
        train_epochs=_float(meta.get("train_epochs")),
        train_steps=_int(meta.get("train_steps")),
        optimizer=_text(meta.get("optimizer")),
        lr=_float(meta.get("lr")),
    )
    return row


def _fit_time(meta: pd.Series) -> float | None:
    """The row's fit cost: its own fit, plus the published fits it composes (a cascade fits nothing itself, yet
    certifies with one fit per stage)."""
    own, composed = _float(meta["fit_time_s"]), _float(meta.get("composed_fit_time_s"))
    return own if composed is None else (own or 0.0) + composed


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value):
    return None if value is None or pd.isna(value) else int(value)


def _float(value):
    return None if value is None or pd.isna(value) else float(value)


def compare(rows: list[dict], radii: Sequence[float]) -> None:
    """Fill each ranked row's McNemar p-values against the reference method and its standing against the best row
    of its base and sigma (in place)."""
    for key in {(r["base"], r["sigma"]) for r in rows}:
        ranked = [r for r in rows if (r["base"], r["sigma"]) == key and r["ranked"]]
        reference = next((r for r in ranked if r["method"] == REFERENCE), None)
        flag_budgets(ranked, reference)
        for row in ranked:
            for r in radii:
                row[f"p_vs_{REFERENCE}@{r:g}"] = _paired(row, reference, lambda g, r=r: certified(g, r), mcnemar_p)
        best = max(ranked, key=lambda r: (r["acr"], r["method"]), default=None)
        for row in ranked:
            if row is best:
                row["vs_best"] = "best"
                continue
            interval = _paired(row, best, certified_radius, paired_difference_interval)
            row["vs_best"] = "tied" if interval is not None and interval[0] <= 0.0 <= interval[1] else "below"


def _paired(row: dict, other: dict | None, outcome, test):
    """``test`` of the per-image ``outcome`` of two rows on the images both certified (None without the other)."""
    if other is None or other is row:
        return None
    a, b = (x["records"].set_index("idx") for x in (row, other))
    common = a.index.intersection(b.index)
    if len(common) == 0:
        return None
    return test(outcome(a.loc[common]), outcome(b.loc[common]))


def leaderboard_rows(results, suite: SuiteSnapshot) -> tuple[list[dict], list[float]]:
    """Every run of ``suite`` as a row (ranked ones first within a base and sigma, by ACR) and the radius grid."""
    df = frame(results, suite.name, snapshots={suite.name: suite})
    radii = sorted({float(r) for grid in df["radii"] for r in grid}) if len(df) else list(DEFAULT_RADII)
    rows = [run_row(group, radii) for _, group in df.groupby(["base", "method", "sigma", "run"], sort=True)]
    compare(rows, radii)
    rows.sort(key=lambda r: (r["base"], r["sigma"], not r["ranked"], -_sortable(r["acr"]), r["method"]))
    return rows, radii


def _sortable(value: float) -> float:
    return value if value is not None and not math.isnan(value) else -np.inf
