"""The front page's leaderboard of one suite, as ``leaderboards/<suite>.md`` lays it out: per base its precision note,
per sigma R_max, the ranked rows (each cell with its 95% interval and the row's best / tied / below mark), the paired
comparisons the suite names and the other runs apart; per base the envelope over sigma. Cells are the markdown
leaderboard's own (:mod:`benchmark.report.cells`), so the two cannot disagree; each also carries its raw value for
sorting."""

from __future__ import annotations

from collections.abc import Sequence

from benchmark.report.budget import budget_cell
from benchmark.report.cells import DASH, data_names, fmt, notes_cell, precision_note, row_name, share_cell
from benchmark.report.cells import with_interval as interval_text
from benchmark.report.comparisons import pairs_markdown
from benchmark.report.labels import envelope_sources
from benchmark.report.metrics import envelope
from benchmark.report.table import radius_label
from benchmark.site.html import Cell, Column, Link, esc, table
from benchmark.site.markdown import inline, to_html
from benchmark.site.suite import MARKDOWN_PAGES, SuiteData

STANDING = {"best": 0, "tied": 1, "below": 2}


def mark(vs_best: str) -> Cell:
    """A ranked row's standing against the best row of its base and sigma, sorted best, tied, below."""
    return Cell(f'<span class="mark {esc(vs_best)}">{esc(vs_best)}</span>', STANDING.get(vs_best))


def with_interval(row: dict, key: str, kind: str) -> Cell:
    return Cell(esc(interval_text(row, key, kind)), row.get(key))


def method_cell(suite: SuiteData, row: dict, name: str, link: Link) -> Cell:
    return Cell(f'<a href="{esc(link(suite.method_path(row["method"])))}">{esc(name)}</a>', name)


def ranked_table(suite: SuiteData, rows: list[dict], ranked: list[dict], link: Link) -> str:
    radii = suite.radii
    columns = [
        Column("vs best"),
        Column("method"),
        *(Column(f"r={r:g}", True) for r in radii),
        Column("ACR", True),
        *(Column(t, True) for t in ("abstain %", "images", "trainable %", "stored KB", "fit s")),
        Column("training", True),
        Column("certify s/img", True),
        Column("queries", True),
        Column("notes", prose=True),
    ]
    cells = []
    for r in rows:
        stored = r["stored_bytes"]
        cells.append(
            [
                mark(r["vs_best"]),
                method_cell(suite, r, row_name(r, ranked), link),
                *(with_interval(r, radius_label(x), "pct") for x in radii),
                with_interval(r, "acr", ""),
                Cell(fmt(r["abstain_rate"], "pct"), r["abstain_rate"]),
                Cell(str(r["n_images"]), r["n_images"]),
                Cell(share_cell(r), r["trainable_pct"]),
                Cell(DASH if stored is None else f"{stored / 1024:,.1f}", stored),
                Cell(fmt(r["fit_time_s"], "s"), r["fit_time_s"]),
                Cell(inline(budget_cell(r)), r.get("train_steps")),  # sorted by optimizer steps
                Cell(fmt(r["certify_s_per_image"], "s"), r["certify_s_per_image"]),
                Cell(fmt(r["queries"], "int"), r["queries"]),
                Cell(inline(notes_cell(r)), notes_cell(r)),
            ]
        )
    return table(columns, cells, "ranked runs: click a header to sort")


def other_table(suite: SuiteData, rows: list[dict], link: Link) -> str:
    radii = suite.radii
    columns = [
        Column("method"),
        Column("precision"),
        Column("why not ranked"),
        *(Column(f"r={r:g}", True) for r in radii),
        Column("ACR", True),
        Column("images", True),
        Column("samples/img", True),
        Column("run"),
    ]
    cells = [
        [
            method_cell(suite, r, r["method"], link),
            Cell(esc(r["precision"]), r["precision"]),
            Cell(esc(r["unranked"]), r["unranked"]),
            *(Cell(fmt(r[radius_label(x)], "pct"), r[radius_label(x)]) for x in radii),
            Cell(fmt(r["acr"]), r["acr"]),
            Cell(str(r["n_images"]), r["n_images"]),
            Cell(fmt(r["samples_per_image"], "int"), r["samples_per_image"]),
            Cell(f"<code>{esc(r['config_hash'])}</code>", r["config_hash"]),
        ]
        for r in rows
    ]
    return table(columns, cells, "other runs of these cells, not ranked")


def r_max_note(sig_rows: list[dict]) -> str:
    """How far the cell's certificate can reach (a single-sigma row's R_max; a cascade's reaches further)."""
    ref = next((r for r in sig_rows if not r.get("stage_sigmas")), sig_rows[0])
    cascade = (
        " at this sigma alone; a cascade (its sigmas in its name) reaches as far as its largest sigma allows"
        if any(r.get("stage_sigmas") for r in sig_rows)
        else ""
    )
    return (
        f"R_max = sigma * Phi^-1(alpha^(1/n)) = {fmt(ref['r_max'])} for n = {fmt(ref['n'], 'int')}, "
        f"alpha = {ref['alpha']}: no radius beyond it can be certified{cascade}."
    )


def envelope_table(ranked: list[dict], radii: Sequence[float]) -> str:
    """Best certified accuracy over the sigmas at each radius, per method, of single-sigma ranked rows only."""
    singles = [r for r in ranked if not r.get("stage_sigmas")]  # a cascade is its own combination of sigmas
    sigmas = sorted({r["sigma"] for r in singles})
    if len(sigmas) < 2:
        return ""
    columns = [Column("method"), *(Column(f"r={r:g}", True) for r in radii), Column("over sigma")]
    cells = []
    for method in sorted({r["method"] for r in singles}):
        members = [r for r in singles if r["method"] == method]
        best = envelope([[r[radius_label(x)] for x in radii] for r in members])
        sources = envelope_sources((r["sigma"], r["status"], r["n_images"]) for r in members)
        cells.append([Cell(esc(method), method), *(Cell(fmt(v, "pct"), v) for v in best), Cell(esc(sources), sources)])
    return (
        f"<h4>Envelope over sigma ({', '.join(f'{s:g}' for s in sigmas)})</h4>\n"
        "<p>Best certified accuracy over the sigmas at each radius, of ranked rows only; an envelope mixes models, "
        "so it is shown apart from the per-sigma rows.</p>\n" + table(columns, cells, "envelope over sigma")
    )


def suite_section(suite: SuiteData, link: Link) -> str:
    """The front page's section of one suite: per base and sigma its ranked and other runs."""
    parts = [f'<h2 id="{suite.anchor}">Suite <code>{esc(suite.name)}</code></h2>']
    if not suite.rows:
        return "\n".join([*parts, "<p>No results yet.</p>"])
    parts.append(f"<p>Data: {esc(data_names(suite.rows))}. Pages: " + _suite_links(suite, link) + ".</p>")
    for base in sorted({r["base"] for r in suite.rows}):
        base_rows = [r for r in suite.rows if r["base"] == base]
        ranked = [r for r in base_rows if r["ranked"]]
        parts += [f'<h3 id="{suite.anchor}-{esc(base)}">Base <code>{esc(base)}</code></h3>']
        parts.append(f"<p>{inline(precision_note(ranked or base_rows))}</p>")
        for sigma in sorted({r["sigma"] for r in base_rows}):
            sig_rows = [r for r in base_rows if r["sigma"] == sigma]
            mine = [r for r in sig_rows if r["ranked"]]
            others = [r for r in sig_rows if not r["ranked"]]
            named = {r["method"]: row_name(r, ranked) for r in mine}
            parts += [
                f'<h4 id="{suite.anchor}-{esc(base)}-sigma-{sigma:g}">sigma = {sigma:g}</h4>',
                f"<p>{esc(r_max_note(sig_rows))}</p>",
                ranked_table(suite, mine, ranked, link),
                to_html("\n".join(pairs_markdown(mine, suite.radii, suite.snapshot.comparisons, named.get))),
            ]
            if others:
                parts += ["<p>Other runs of these cells, not ranked:</p>", other_table(suite, others, link)]
        parts.append(envelope_table(ranked, suite.radii))
    return "\n".join(p for p in parts if p)


def _suite_links(suite: SuiteData, link: Link) -> str:
    pages = [(suite.page_path(key), label) for key, label, _ in MARKDOWN_PAGES if key in suite.pages]
    pages += [(suite.method_path(m), m) for m in suite.methods]
    return ", ".join(f'<a href="{esc(link(path))}">{esc(label)}</a>' for path, label in pages)
