"""Leaderboards (markdown + CSV) as pure functions of ``results/``, in the manner of RobustBench's templates.

Nothing here is edited by hand: each file names the command that made it, missing cells print "—", and every
row is one (method, base, sigma) run, the most recent configuration of that cell.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from benchmark.config import DEFAULT_RADII
from benchmark.files import inside, safe_name
from benchmark.labels import envelope_sources, run_label, subset_note, unfinished
from benchmark.metrics import abstain_rate, acr, certified_accuracy, certify_s_per_image, envelope, r_max
from benchmark.records import Run, latest_runs, suites_in

CSV_COLUMNS = (
    "method", "base", "sigma", "n_images", "n", "alpha", "trainable_params", "trainable_pct", "fit_time_s",
    "certify_s_per_image", "acr",
)  # fmt: skip
EXTRA_COLUMNS = ("abstain_rate", "r_max", "stored_bytes", "queries", "notes", "dataset", "config_hash", "status",
                 "precision")  # fmt: skip
DASH = "—"


def radius_label(r: float) -> str:
    return f"acc@{r:g}"


def radius_grid(runs: Sequence[Run]) -> list[float]:
    radii = sorted({float(r) for run in runs for r in run.info.radii})
    return radii or list(DEFAULT_RADII)


def run_row(run: Run, radii: Sequence[float]) -> dict:
    """One leaderboard row: metrics (and the certification time) of the run's records, cost and provenance from its
    run.json."""
    info, records = run.info, run.records
    cost = info.cost
    notes = {**info.notes, **info.measurements}
    timings = info.timings
    row = {
        "method": info.method,
        "base": info.base,
        "sigma": float(info.sigma),
        "n_images": len(records),
        "n": info.n,
        "alpha": info.alpha,
        "trainable_params": cost.get("trainable_params"),
        "trainable_pct": cost.get("trainable_pct"),
        "fit_time_s": timings.get("fit_time_s"),
        "certify_s_per_image": certify_s_per_image(records),
        "acr": acr(records),
    }
    row.update(zip((radius_label(r) for r in radii), certified_accuracy(records, radii), strict=True))
    row.update(
        abstain_rate=abstain_rate(records),
        r_max=r_max(float(info.sigma), info.n, info.alpha),
        stored_bytes=cost.get("stored_bytes"),
        queries=info.fit.get("queries"),
        notes="; ".join(f"{k}={_short(v)}" for k, v in sorted(notes.items())) or None,
        dataset=info.dataset_label if info.dataset_label is not None else info.dataset,
        dataset_name=info.dataset,
        updated=info.updated,
        config_hash=info.config_hash,
        status=run.status,
        precision=run.precision,
        subset_size=info.subset_size,
    )
    return row


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
    """The name of ``row`` in the tables: its label among the rows of its base, and its status unless complete,
    so an unfinished row never reads as a final one."""
    base_rows = [r for r in rows if r["base"] == row["base"]]
    return (
        label(row, base_rows)
        + unfinished(row["status"])
        + subset_note(row["status"], row["n_images"], row["subset_size"])
    )


def data_names(rows: Sequence[dict]) -> str:
    """The data of ``rows``, one name per registered dataset: the label of its most recently updated run, since
    labels only grew more precise (early runs called the JPEG q75 copy plain "CIFAR-10"); each row's own label
    stays in the CSV."""
    newest: dict[str, dict] = {}
    for r in rows:
        key = r["dataset_name"]
        if key not in newest or r["updated"] > newest[key]["updated"]:
            newest[key] = r
    return ", ".join(sorted(str(r["dataset"]) for r in newest.values()))


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def leaderboard_rows(results: Path, suite: str) -> tuple[list[dict], list[float]]:
    runs = latest_runs(results, suite)
    radii = radius_grid(runs)
    rows = [run_row(run, radii) for run in runs]
    rows.sort(key=lambda r: (r["base"], r["sigma"], r["method"]))
    return rows, radii


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


def _share(row: dict) -> str:
    """A row's trainable parameters as a percentage of its base's own."""
    return DASH if row["trainable_pct"] is None else f"{row['trainable_pct']:.2f}"


def write_csv(rows: Sequence[dict], radii: Sequence[float], path: Path) -> None:
    columns = [*CSV_COLUMNS, *(radius_label(r) for r in radii), *EXTRA_COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})


def markdown(suite: str, rows: Sequence[dict], radii: Sequence[float], plots: Sequence[Path], out_dir: Path,
             command: str) -> str:  # fmt: skip
    """The leaderboard page of one suite."""
    lines = [f"# Leaderboard: `{suite}`", ""]
    lines += [f"Generated by `{command}` from the results files; do not edit by hand.", ""]
    if not rows:
        return "\n".join([*lines, "No results yet.", ""])
    lines += [
        f"Data: {data_names(rows)}. Certified accuracy (%) at l2 radius r (in [0,1] pixel units) of Cohen et al.'s "
        "CERTIFY; r = 0 is the smoothed clean accuracy; ACR = mean(correct * radius). All numbers are measured by "
        "this suite; published numbers are not mixed in.",
        "",
    ]
    acc_cols = [radius_label(r) for r in radii]
    header = ["method", *(f"r={r:g}" for r in radii), "ACR", "abstain %", "images", "trainable %", "stored KB",
              "fit s", "certify s/img", "queries", "notes"]  # fmt: skip
    for base in sorted({r["base"] for r in rows}):
        base_rows = [r for r in rows if r["base"] == base]
        lines += [f"## Base `{base}`", "", precision_note(base_rows), ""]
        for sigma in sorted({r["sigma"] for r in base_rows}):
            sig_rows = [r for r in base_rows if r["sigma"] == sigma]
            ref = sig_rows[0]
            lines += [f"### sigma = {sigma:g}", ""]
            lines += [f"n0/n/alpha as recorded per row; R_max = sigma * Phi^-1(alpha^(1/n)) = "
                      f"{_fmt(ref['r_max'])} for n = {_fmt(ref['n'], 'int')}, alpha = {ref['alpha']}: no radius "
                      "beyond it can be certified.", ""]  # fmt: skip
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for r in sorted(sig_rows, key=lambda r: -(r[acc_cols[0]] if not math.isnan(r[acc_cols[0]]) else -1)):
                cells = [row_name(r, base_rows), *(_fmt(r[c], "pct") for c in acc_cols), _fmt(r["acr"]),
                         _fmt(r["abstain_rate"], "pct"), str(r["n_images"]),
                         _share(r),
                         DASH if r["stored_bytes"] is None else f"{r['stored_bytes'] / 1024:,.1f}",
                         _fmt(r["fit_time_s"], "s"), _fmt(r["certify_s_per_image"], "s"),
                         _fmt(r["queries"], "int"), r["notes"] or DASH]  # fmt: skip
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        sigmas = sorted({r["sigma"] for r in base_rows})
        if len(sigmas) > 1:
            lines += [f"### Envelope over sigma ({', '.join(f'{s:g}' for s in sigmas)})", "",
                      "Best certified accuracy over the sigmas at each radius; an envelope mixes models, so it is "
                      "shown apart from the per-sigma rows. \"over sigma\" names the rows it is taken over; an "
                      "unfinished one counts only its images so far.", ""]  # fmt: skip
            lines += ["| method | " + " | ".join(f"r={r:g}" for r in radii) + " | over sigma |",
                      "|" + "---|" * (len(radii) + 2)]  # fmt: skip
            for name in sorted({label(r, base_rows) for r in base_rows}):
                members = [r for r in base_rows if label(r, base_rows) == name]
                curves = [[r[c] for c in acc_cols] for r in members]
                sources = envelope_sources((r["sigma"], r["status"], r["n_images"]) for r in members)
                lines.append(f"| {name} | " + " | ".join(_fmt(v, "pct") for v in envelope(curves)) + f" | {sources} |")
            lines.append("")
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(out_dir).as_posix()})" for p in plots]
        lines.append("")
    return "\n".join(lines)


def write_leaderboard(results: Path, out_dir: Path, suite: str, command: str, with_plots: bool = True) -> list[Path]:
    """Write ``<out>/<suite>.md``, ``<out>/<suite>.csv`` and the plots; return the paths written."""
    from benchmark.plots import write_plots

    rows, radii = leaderboard_rows(results, suite)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = safe_name(suite, "suite")
    csv_path, md_path = inside(out_dir, out_dir / f"{name}.csv"), inside(out_dir, out_dir / f"{name}.md")
    write_csv(rows, radii, csv_path)
    plots = write_plots(results, out_dir, suite) if with_plots else []
    md_path.write_text(markdown(suite, rows, radii, plots, out_dir, command))
    return [md_path, csv_path, *plots]


def readme_suites(results: Path) -> list[str]:
    """The suites the README summarises: those with runs under ``results`` whose suite file publishes them."""
    from benchmark.config import is_published

    return [s for s in suites_in(results) if is_published(s)]


README_START, README_END = "<!-- leaderboard:start -->", "<!-- leaderboard:end -->"


def readme_block(results: Path, command: str, suites: Sequence[str]) -> str:
    """A compact per-sigma summary of every suite, for the README (between the leaderboard markers)."""
    lines = [README_START, "", f"Generated by `{command}`; the full tables are in `leaderboards/`.", ""]
    for suite in suites:
        rows, _ = leaderboard_rows(results, suite)
        radii = [r for r in (0.0, 0.25, 0.5) if rows and radius_label(r) in rows[0]]
        if not rows:
            continue
        datasets = data_names(rows)
        sizes = ", ".join(f"{n:,}" for n in sorted({r["n"] for r in rows if r["n"]}))
        lines += [f"**{suite}** ({datasets}; n = {sizes}; certified accuracy %)", ""]
        # trainable % tells apart rows of one method that differ in more than precision (LoRA rank 4 and 3)
        header = ["base", "sigma", "method", *(f"r={r:g}" for r in radii), "ACR", "trainable %", "images"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in rows:
            accuracies = [_fmt(r[radius_label(x)], "pct") for x in radii]
            cells = [r["base"], f"{r['sigma']:g}", row_name(r, rows), *accuracies, _fmt(r["acr"]), _share(r),
                     str(r["n_images"])]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", precision_note(rows), ""]
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
