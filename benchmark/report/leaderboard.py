"""Leaderboards (markdown + CSV) as pure functions of ``results/``, in the manner of RobustBench's templates.

Nothing here is edited by hand: each file names the command that made it and missing cells print "—". Per base and
sigma, the ranked table holds one complete run per method (:func:`benchmark.report.frame.ranked_runs`), sorted by ACR,
each cell with its 95% interval and each row standing "best", "tied" (its paired ACR difference to the best row is
not distinguishable from 0 at 5%) or "below"; every other run (partial, other precision, superseded) is listed
apart, unranked. Envelopes over sigma take ranked rows only. The CSV holds every run with its intervals and McNemar
p-values against ``gaussian`` (see :mod:`benchmark.report.table`). How a suite ranks and which pairs it compares
come from the :class:`~benchmark.config.snapshot.SuiteSnapshot` passed in, never from the suite files.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from benchmark.config.snapshot import SuiteSnapshot
from benchmark.files import inside, safe_name
from benchmark.report.budget import BUDGET_COLUMNS, budget_cell
from benchmark.report.cells import (
    DASH,
    data_names,
    fmt,
    notes_cell,
    precision_note,
    row_name,
    share_cell,
    with_interval,
)
from benchmark.report.comparisons import pairs_markdown
from benchmark.report.labels import envelope_sources
from benchmark.report.metrics import envelope
from benchmark.report.table import REFERENCE, leaderboard_rows, radius_label

CSV_COLUMNS = (
    "method",
    "base",
    "sigma",
    "n_images",
    "n",
    "alpha",
    "trainable_params",
    "trainable_pct",
    "fit_time_s",
    "certify_s_per_image",
    "samples_per_image",
    "acr",
    "acr_lo",
    "acr_hi",
)
EXTRA_COLUMNS = (
    "ranked",
    "unranked",
    "vs_best",
    "abstain_rate",
    "r_max",
    "stored_bytes",
    "queries",
    "notes",
    "dataset",
    "config_hash",
    "status",
    "precision",
    "stage_sigmas",
    "stage_shares",
    "composed_fit_time_s",
    *BUDGET_COLUMNS,
)


def write_csv(rows: Sequence[dict], radii: Sequence[float], path: Path) -> None:
    per_radius = [f"{radius_label(r)}{s}" for r in radii for s in ("", "_lo", "_hi")]
    columns = [*CSV_COLUMNS, *per_radius, *(f"p_vs_{REFERENCE}@{r:g}" for r in radii), *EXTRA_COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_cell(row.get(k)) for k in columns})


def _csv_cell(value):
    """An empty cell for a missing number (None, or NaN from a column an imported log lacks): never "nan"."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _ranked_table(rows: list[dict], base_rows: list[dict], radii: Sequence[float]) -> list[str]:
    header = [
        "vs best",
        "method",
        *(f"r={r:g}" for r in radii),
        "ACR",
        "abstain %",
        "images",
        "trainable %",
        "stored KB",
        "fit s",
        "training",
        "certify s/img",
        "queries",
        "notes",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [
            r["vs_best"],
            row_name(r, base_rows),
            *(with_interval(r, radius_label(x), "pct") for x in radii),
            with_interval(r, "acr", ""),
            fmt(r["abstain_rate"], "pct"),
            str(r["n_images"]),
            share_cell(r),
            DASH if r["stored_bytes"] is None else f"{r['stored_bytes'] / 1024:,.1f}",
            fmt(r["fit_time_s"], "s"),
            budget_cell(r),
            fmt(r["certify_s_per_image"], "s"),
            fmt(r["queries"], "int"),
            notes_cell(r),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _other_table(rows: list[dict], radii: Sequence[float]) -> list[str]:
    header = [
        "method",
        "precision",
        "why not ranked",
        *(f"r={r:g}" for r in radii),
        "ACR",
        "images",
        "samples/img",
        "run",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [
            r["method"],
            r["precision"],
            r["unranked"],
            *(fmt(r[radius_label(x)], "pct") for x in radii),
            fmt(r["acr"]),
            str(r["n_images"]),
            fmt(r["samples_per_image"], "int"),
            f"`{r['config_hash']}`",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(
    suite: str,
    rows: Sequence[dict],
    radii: Sequence[float],
    plots: Sequence[Path],
    out_dir: Path,
    command: str,
    pairs: Sequence[tuple[str, str]] = (),
) -> str:
    """The leaderboard page of one suite."""
    lines = [
        f"# Leaderboard: `{suite}`",
        "",
        f"Generated by `{command}` from the results files; do not edit by hand.",
        "",
    ]
    if not rows:
        return "\n".join([*lines, "No results yet.", ""])
    lines += [
        f"Data: {data_names(rows)}. Certified accuracy (%) at l2 radius r (in [0,1] pixel units) of Cohen et al.'s "
        "CERTIFY; r = 0 is the smoothed clean accuracy; ACR = mean(correct * radius). In brackets: the 95% interval "
        'over images (Clopper-Pearson; ACR: bootstrap). One ranked row per method, sorted by ACR; "tied": the '
        "paired 95% interval of its ACR difference to the best row contains 0, so the two are not ranked against "
        f"each other. The CSV adds exact McNemar p-values against `{REFERENCE}` at each radius. All numbers are "
        "measured by this suite; published numbers are not mixed in. Training: the epochs, optimizer steps, "
        f"optimizer and learning rate of the row's own fit, in bold where the budget differs from `{REFERENCE}`'s at "
        "the same base and sigma (not like for like in training compute; — : no fit of its own).",
        "",
    ]
    for base in sorted({r["base"] for r in rows}):
        base_rows = [r for r in rows if r["base"] == base]
        ranked = [r for r in base_rows if r["ranked"]]
        lines += [f"## Base `{base}`", "", precision_note(ranked or base_rows), ""]
        for sigma in sorted({r["sigma"] for r in base_rows}):
            lines += _sigma_section(sigma, [r for r in base_rows if r["sigma"] == sigma], ranked, radii, pairs)
        lines += _envelope(ranked, radii)
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in plots]
        lines.append("")
    return "\n".join(lines)


def _sigma_section(
    sigma: float, sig_rows: list[dict], ranked: list[dict], radii: Sequence[float], pairs: Sequence[tuple[str, str]]
) -> list[str]:
    """The part of one sigma: R_max, the ranked table, the paired comparisons the suite names and the other runs."""
    lines = []
    ref = sig_rows[0]
    lines += [f"### sigma = {sigma:g}", ""]
    ref = next((r for r in sig_rows if not r.get("stage_sigmas")), ref)
    lines += [
        f"R_max = sigma * Phi^-1(alpha^(1/n)) = {fmt(ref['r_max'])} for n = {fmt(ref['n'], 'int')}, "
        f"alpha = {ref['alpha']}: no radius beyond it can be certified"
        + (
            " at this sigma alone; a cascade (its sigmas in its name; listed at the smallest) reaches as "
            "far as its largest sigma allows, and its notes say at which sigma its images were certified"
            if any(r.get("stage_sigmas") for r in sig_rows)
            else ""
        )
        + ".",
        "",
    ]
    lines += [*_ranked_table([r for r in sig_rows if r["ranked"]], ranked, radii), ""]
    named = {r["method"]: row_name(r, ranked) for r in sig_rows if r["ranked"]}
    lines += pairs_markdown([r for r in sig_rows if r["ranked"]], radii, pairs, named.get)
    others = [r for r in sig_rows if not r["ranked"]]
    if others:
        lines += ["Other runs of these cells, not ranked:", "", *_other_table(others, radii), ""]
    return lines


def _envelope(ranked: list[dict], radii: Sequence[float]) -> list[str]:
    ranked = [r for r in ranked if not r.get("stage_sigmas")]  # a cascade is its own combination of sigmas
    sigmas = sorted({r["sigma"] for r in ranked})
    if len(sigmas) < 2:
        return []
    lines = [
        f"### Envelope over sigma ({', '.join(f'{s:g}' for s in sigmas)})",
        "",
        "Best certified accuracy over the sigmas at each radius, of ranked rows only; an envelope mixes models, "
        "so it is shown apart from the per-sigma rows.",
        "",
    ]
    lines += [
        "| method | " + " | ".join(f"r={r:g}" for r in radii) + " | over sigma |",
        "|" + "---|" * (len(radii) + 2),
    ]
    for method in sorted({r["method"] for r in ranked}):
        members = [r for r in ranked if r["method"] == method]
        curves = [[r[radius_label(x)] for x in radii] for r in members]
        sources = envelope_sources((r["sigma"], r["status"], r["n_images"]) for r in members)
        lines.append(f"| {method} | " + " | ".join(fmt(v, "pct") for v in envelope(curves)) + f" | {sources} |")
    return [*lines, ""]


def write_leaderboard(
    results: Path, out_dir: Path, suite: SuiteSnapshot, command: str, with_plots: bool = True
) -> list[Path]:
    """Write ``<out>/<suite>.md``, ``<out>/<suite>.csv``, the plots and the model cards (``<out>/cards/<suite>/``);
    return the paths written."""
    from benchmark.report.cards import write_cards
    from benchmark.report.plots import write_plots

    rows, radii = leaderboard_rows(results, suite)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = safe_name(suite.name, "suite")
    csv_path, md_path = inside(out_dir, out_dir / f"{name}.csv"), inside(out_dir, out_dir / f"{name}.md")
    write_csv(rows, radii, csv_path)
    plots = write_plots(rows, radii, out_dir, suite) if with_plots else []
    md_path.write_text(markdown(suite.name, rows, radii, plots, out_dir, command, suite.comparisons))
    return [md_path, csv_path, *plots, write_cards(results, out_dir, suite, command, (rows, radii))]


def write_attack_pages(results: Path, out: Path, suite: SuiteSnapshot, command: str) -> None:
    """``<suite>-audit.md`` and ``<suite>-attack.md`` from the suite's audit and attack results, where it has any."""
    from benchmark.report.attack_page import attack_markdown
    from benchmark.report.audit_page import audit_markdown

    for kind, text in (
        ("audit", audit_markdown(results, suite.name, command)),
        ("attack", attack_markdown(results, suite, command)),
    ):
        if text is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{suite.name}-{kind}.md").write_text(text)
            print(out / f"{suite.name}-{kind}.md")
