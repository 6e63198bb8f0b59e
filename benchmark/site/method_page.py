"""One method's page of one suite: what it is (from its cards), its certified-accuracy curves with their 95% bands
(one per ranked base and sigma), every run of it (ranked or not, with the reason), its model cards and the paired
comparisons the suite names it in."""

from __future__ import annotations

from benchmark.report.cells import fmt, row_name
from benchmark.report.comparisons import pairs_markdown
from benchmark.report.table import radius_label
from benchmark.site.card import card_html
from benchmark.site.html import Cell, Column, Link, esc, table
from benchmark.site.markdown import inline, to_html
from benchmark.site.suite import SuiteData
from benchmark.site.svg import Curve, curves_svg
from benchmark.site.tables import mark, with_interval


def _curves(suite: SuiteData, method: str, ranked: list[dict]) -> str:
    curves = [
        Curve(
            f"{r['base']}, sigma {r['sigma']:g} [{r['precision']}]{r.get('certificate_label', '')}",
            [r[radius_label(x)] for x in suite.radii],
            [r[f"{radius_label(x)}_lo"] for x in suite.radii],
            [r[f"{radius_label(x)}_hi"] for x in suite.radii],
        )
        for r in ranked
    ]
    title = f"{method} on {suite.name}: certified accuracy vs radius, 95% Clopper-Pearson bands"
    return "\n".join(
        [
            "<h2>Certified accuracy vs radius</h2>",
            "<p>Ranked runs only, one curve per base and sigma; the band is each point's 95% Clopper-Pearson "
            "interval over the images. The lines join the measured radii of the grid (the markers; hover for the "
            "numbers) and are no measurement in between.</p>",
            f'<figure class="curves">{curves_svg(curves, suite.radii, title)}</figure>',
        ]
    )


def _runs(suite: SuiteData, rows: list[dict]) -> str:
    columns = [
        Column("base"),
        Column("sigma", True),
        Column("vs best"),
        Column("not ranked because"),
        Column("precision"),
        *(Column(f"r={r:g}", True) for r in suite.radii),
        Column("ACR", True),
        Column("images", True),
        Column("run"),
    ]
    cells = [
        [
            Cell(f"<code>{esc(r['base'])}</code>", r["base"]),
            Cell(f"{r['sigma']:g}", r["sigma"]),
            mark(r["vs_best"]) if r["ranked"] else Cell("—"),
            Cell(esc(r["unranked"] or "—"), r["unranked"]),
            Cell(esc(r["precision"]), r["precision"]),
            *(with_interval(r, radius_label(x), "pct") for x in suite.radii),
            with_interval(r, "acr", ""),
            Cell(str(r["n_images"]), r["n_images"]),
            Cell(f"<code>{esc(r['config_hash'])}</code>", r["config_hash"]),
        ]
        for r in rows
    ]
    return "<h2>Runs</h2>\n" + table(columns, cells, "every run of this method: ranked first, then the others")


def _comparisons(suite: SuiteData, method: str, rows: list[dict]) -> str:
    """The suite's pairs naming ``method``, at each base and sigma where it is ranked."""
    pairs = [p for p in suite.snapshot.comparisons if method in p]
    parts = []
    for base, sigma in sorted({(r["base"], r["sigma"]) for r in rows if r["ranked"]}):
        base_ranked = [r for r in suite.rows if r["base"] == base and r["ranked"]]
        cell = [r for r in base_ranked if r["sigma"] == sigma]
        named = {r["method"]: row_name(r, base_ranked) for r in cell}
        text = "\n".join(pairs_markdown(cell, suite.radii, pairs, named.get))
        if text:
            parts += [f"<h3><code>{esc(base)}</code>, sigma = {sigma:g}</h3>", to_html(text)]
    if not parts:
        return ""
    return "\n".join(["<h2>Paired comparisons</h2>", *parts])


def method_body(suite: SuiteData, method: str, link: Link) -> str:
    """The page's main content (``link`` makes hrefs relative to it)."""
    rows = [r for r in suite.rows if r["method"] == method]
    ranked = [r for r in rows if r["ranked"]]
    cards = [c for c in suite.cards if c.get("method") == method]
    parts = [f"<h1>Method <code>{esc(method)}</code> on <code>{esc(suite.name)}</code></h1>"]
    if cards:
        what, paper = cards[0].get("summary") or "—", cards[0].get("paper") or "—"
        parts.append(f"<p>What is trained: {inline(what)}. Source: {inline(paper)}.</p>")
    best = max((r["acr"] for r in ranked), default=None)
    parts.append(
        f"<p>{len(ranked)} ranked and {len(rows) - len(ranked)} other runs; best ACR {fmt(best)}. Its rows among the "
        f'others: <a href="{esc(link("index.html#" + suite.anchor))}">the {esc(suite.name)} leaderboard</a>.</p>'
    )
    if ranked:
        parts.append(_curves(suite, method, ranked))
    parts.append(_runs(suite, rows))
    if cards:
        parts += ["<h2>Model cards</h2>", *(card_html(c) for c in cards)]
    parts.append(_comparisons(suite, method, rows))
    return "\n".join(p for p in parts if p)
