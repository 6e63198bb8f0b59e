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
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmark.config.snapshot import SuiteSnapshot
from benchmark.files import inside, safe_name
from benchmark.report.budget import BUDGET_COLUMNS, budget_cell
from benchmark.report.comparisons import pairs_markdown
from benchmark.report.frame import snapshot_of
from benchmark.report.labels import envelope_sources, run_label, subset_note, unfinished
from benchmark.report.metrics import envelope
from benchmark.report.table import REFERENCE, leaderboard_rows, radius_label
from benchmark.run.records import suites_in

CSV_COLUMNS = (
    "method", "base", "sigma", "n_images", "n", "alpha", "trainable_params", "trainable_pct", "fit_time_s",
    "certify_s_per_image", "samples_per_image", "acr", "acr_lo", "acr_hi",
)  # fmt: skip
EXTRA_COLUMNS = ("ranked", "unranked", "vs_best", "abstain_rate", "r_max", "stored_bytes", "queries", "notes",
                 "dataset", "config_hash", "status", "precision", "stage_sigmas", "stage_shares",
                 "composed_fit_time_s", *BUDGET_COLUMNS)  # fmt: skip
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
    return label(row, base_rows) + row.get("certificate_label", "") + unfinished(row["status"]) + subset_note(
        row["status"], row["n_images"], row["subset_size"])  # fmt: skip


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


def _fmt(value, kind: str = "") -> str:
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


def _with_interval(row: dict, key: str, kind: str) -> str:
    """A cell and its 95% interval, compactly: ``46.0 (39.0–53.1)``."""
    value, lo, hi = row.get(key), row.get(f"{key}_lo"), row.get(f"{key}_hi")
    if value is None or (isinstance(value, float) and math.isnan(value)) or lo is None or math.isnan(lo):
        return _fmt(value, kind)
    return f"{_fmt(value, kind)} ({_fmt(lo, kind)}–{_fmt(hi, kind)})"


def _notes(r: dict) -> str:
    shares = r.get("stage_shares") and f"certified per stage: {r['stage_shares']}"
    composed = r.get("composed_fit_time_s")
    composed = composed is not None and f"fit s counts the fits it composes ({composed:,.0f} s)"
    return "; ".join(x for x in (r["notes"], shares, composed) if x) or DASH


def _share(row: dict) -> str:
    return DASH if row["trainable_pct"] is None else f"{row['trainable_pct']:.2f}"


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
    header = ["vs best", "method", *(f"r={r:g}" for r in radii), "ACR", "abstain %", "images", "trainable %",
              "stored KB", "fit s", "training", "certify s/img", "queries", "notes"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["vs_best"], row_name(r, base_rows), *(_with_interval(r, radius_label(x), "pct") for x in radii),
                 _with_interval(r, "acr", ""), _fmt(r["abstain_rate"], "pct"), str(r["n_images"]), _share(r),
                 DASH if r["stored_bytes"] is None else f"{r['stored_bytes'] / 1024:,.1f}",
                 _fmt(r["fit_time_s"], "s"), budget_cell(r), _fmt(r["certify_s_per_image"], "s"),
                 _fmt(r["queries"], "int"),
                 _notes(r)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _other_table(rows: list[dict], radii: Sequence[float]) -> list[str]:
    header = ["method", "precision", "why not ranked", *(f"r={r:g}" for r in radii), "ACR", "images",
              "samples/img", "run"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["method"], r["precision"], r["unranked"], *(_fmt(r[radius_label(x)], "pct") for x in radii),
                 _fmt(r["acr"]), str(r["n_images"]), _fmt(r["samples_per_image"], "int"),
                 f"`{r['config_hash']}`"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(suite: str, rows: Sequence[dict], radii: Sequence[float], plots: Sequence[Path], out_dir: Path,
             command: str, pairs: Sequence[tuple[str, str]] = ()) -> str:  # fmt: skip
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
        "over images (Clopper-Pearson; ACR: bootstrap). One ranked row per method, sorted by ACR; \"tied\": the "
        "paired 95% interval of its ACR difference to the best row contains 0, so the two are not ranked against "
        f"each other. The CSV adds exact McNemar p-values against `{REFERENCE}` at each radius. All numbers are "
        "measured by this suite; published numbers are not mixed in. Training: the epochs, optimizer steps, "
        f"optimizer and learning rate of the row's own fit, in bold where the budget differs from `{REFERENCE}`'s at "
        "the same base and sigma (not like for like in training compute; — : no fit of its own).",
        "",
    ]  # fmt: skip
    for base in sorted({r["base"] for r in rows}):
        base_rows = [r for r in rows if r["base"] == base]
        ranked = [r for r in base_rows if r["ranked"]]
        lines += [f"## Base `{base}`", "", precision_note(ranked or base_rows), ""]
        for sigma in sorted({r["sigma"] for r in base_rows}):
            sig_rows = [r for r in base_rows if r["sigma"] == sigma]
            ref = sig_rows[0]
            lines += [f"### sigma = {sigma:g}", ""]
            ref = next((r for r in sig_rows if not r.get("stage_sigmas")), ref)
            lines += [f"R_max = sigma * Phi^-1(alpha^(1/n)) = {_fmt(ref['r_max'])} for n = {_fmt(ref['n'], 'int')}, "
                      f"alpha = {ref['alpha']}: no radius beyond it can be certified"
                      + (" at this sigma alone; a cascade (its sigmas in its name; listed at the smallest) reaches as "
                         "far as its largest sigma allows, and its notes say at which sigma its images were certified"
                         if any(r.get("stage_sigmas") for r in sig_rows) else "") + ".", ""]  # fmt: skip
            lines += [*_ranked_table([r for r in sig_rows if r["ranked"]], ranked, radii), ""]
            named = {r["method"]: row_name(r, ranked) for r in sig_rows if r["ranked"]}
            lines += pairs_markdown([r for r in sig_rows if r["ranked"]], radii, pairs, named.get)
            others = [r for r in sig_rows if not r["ranked"]]
            if others:
                lines += ["Other runs of these cells, not ranked:", "", *_other_table(others, radii), ""]
        lines += _envelope(ranked, radii)
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in plots]
        lines.append("")
    return "\n".join(lines)


def _envelope(ranked: list[dict], radii: Sequence[float]) -> list[str]:
    ranked = [r for r in ranked if not r.get("stage_sigmas")]  # a cascade is its own combination of sigmas
    sigmas = sorted({r["sigma"] for r in ranked})
    if len(sigmas) < 2:
        return []
    lines = [f"### Envelope over sigma ({', '.join(f'{s:g}' for s in sigmas)})", "",
             "Best certified accuracy over the sigmas at each radius, of ranked rows only; an envelope mixes models, "
             "so it is shown apart from the per-sigma rows.", ""]  # fmt: skip
    lines += [
        "| method | " + " | ".join(f"r={r:g}" for r in radii) + " | over sigma |",
        "|" + "---|" * (len(radii) + 2),
    ]
    for method in sorted({r["method"] for r in ranked}):
        members = [r for r in ranked if r["method"] == method]
        curves = [[r[radius_label(x)] for x in radii] for r in members]
        sources = envelope_sources((r["sigma"], r["status"], r["n_images"]) for r in members)
        lines.append(f"| {method} | " + " | ".join(_fmt(v, "pct") for v in envelope(curves)) + f" | {sources} |")
    return [*lines, ""]


def write_leaderboard(results: Path, out_dir: Path, suite: SuiteSnapshot, command: str,
                      with_plots: bool = True) -> list[Path]:  # fmt: skip
    """Write ``<out>/<suite>.md``, ``<out>/<suite>.csv`` and the plots; return the paths written."""
    from benchmark.report.plots import write_plots

    rows, radii = leaderboard_rows(results, suite)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = safe_name(suite.name, "suite")
    csv_path, md_path = inside(out_dir, out_dir / f"{name}.csv"), inside(out_dir, out_dir / f"{name}.md")
    write_csv(rows, radii, csv_path)
    plots = write_plots(rows, radii, out_dir, suite) if with_plots else []
    md_path.write_text(markdown(suite.name, rows, radii, plots, out_dir, command, suite.comparisons))
    return [md_path, csv_path, *plots]


def readme_suites(results: Path, snapshots: Mapping[str, SuiteSnapshot]) -> list[SuiteSnapshot]:
    """The suites the README summarises: those with runs under ``results`` whose snapshot says published."""
    return [snap for snap in (snapshot_of(snapshots, s) for s in suites_in(results)) if snap.published]


README_START, README_END = "<!-- leaderboard:start -->", "<!-- leaderboard:end -->"


def readme_block(results: Path, command: str, suites: Sequence[SuiteSnapshot]) -> str:
    """A compact per-sigma summary of every suite's ranked rows, for the README (between the leaderboard markers)."""
    lines = [README_START, "", f"Generated by `{command}`; the full tables are in `leaderboards/`.", ""]
    for snap in suites:
        suite = snap.name
        rows, _ = leaderboard_rows(results, snap)
        ranked = [r for r in rows if r["ranked"]]
        radii = [r for r in (0.0, 0.25, 0.5) if ranked and radius_label(r) in ranked[0]]
        if not ranked:
            continue
        sizes = ", ".join(f"{n:,}" for n in sorted({r["n"] for r in ranked if r["n"]}))
        lines += [f"**{suite}** ({data_names(rows)}; n = {sizes}; certified accuracy % with 95% intervals; one "
                  "ranked row per method, by ACR; other runs in the full tables)", ""]  # fmt: skip
        header = ["base", "sigma", "vs best", "method", *(f"r={r:g}" for r in radii), "ACR", "trainable %", "images"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in ranked:
            accuracies = [_with_interval(r, radius_label(x), "pct") for x in radii]
            cells = [r["base"], f"{r['sigma']:g}", r["vs_best"], row_name(r, ranked), *accuracies, _fmt(r["acr"]),
                     _share(r), str(r["n_images"])]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", precision_note(ranked), ""]
    lines.append(README_END)
    return "\n".join(lines)


def update_readme(readme: Path, block: str) -> bool:
    """Replace the text between the leaderboard markers of ``readme``; False when the markers are absent."""
    if not readme.is_file():
        return False
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(head + block + tail)
    return True


def write_attack_pages(results: Path, out: Path, suite: SuiteSnapshot, command: str) -> None:
    """``<suite>-audit.md`` and ``<suite>-attack.md`` from the suite's audit and attack results, where it has any."""
    from benchmark.report.attack_page import attack_markdown
    from benchmark.report.audit_page import audit_markdown

    for kind, text in (("audit", audit_markdown(results, suite.name, command)),
                       ("attack", attack_markdown(results, suite, command))):  # fmt: skip
        if text is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{suite.name}-{kind}.md").write_text(text)
            print(out / f"{suite.name}-{kind}.md")
