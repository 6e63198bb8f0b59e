"""HTML building blocks of the site: escaping, relative links, sortable tables and the page shell (nav bar and
footer). Pages are strings, written whole; nothing here touches the disk."""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

# Every page names its generator so a rebuild may remove its own stale pages, and nothing else, from --out.
GENERATOR = "smoothbench site"
STYLESHEET, SCRIPT = "site.css", "site.js"

Link = Callable[[str], str]  # a site path ("cifar10-cpu/perf.html#x") -> the href from the page being written


@dataclass(frozen=True)
class Cell:
    """One table cell: its HTML and the raw value a sortable column orders by (None: missing, sorted last)."""

    html: str
    sort: float | str | None = None


@dataclass(frozen=True)
class Column:
    """A table header; ``numeric`` columns sort by number, the others by text; a ``prose`` column (notes) is
    given room to keep its rows short."""

    title: str
    numeric: bool = False
    prose: bool = False


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def linker(page: str) -> Link:
    """Hrefs relative to ``page`` (a path inside the site), so every link resolves under ``file://`` wherever the
    folder is copied: ``linker("a/b.html")("index.html#x") == "../index.html#x"``."""
    here = posixpath.dirname(page) or "."

    def link(target: str) -> str:
        path, hash_, fragment = target.partition("#")
        href = posixpath.relpath(path, here) if path else ""
        return href + hash_ + fragment

    return link


def sort_key(value: object) -> str:
    """A ``data-sort`` attribute value: the shortest exact repr of a number (deterministic), "" for a missing one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(int(value))
    return repr(float(value)) if isinstance(value, int | float) else str(value)


def table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]], caption: str = "", sortable: bool = True) -> str:
    """A table; a sortable one carries each cell's raw value in ``data-sort`` and each header's kind in
    ``data-type``, which ``site.js`` reads when a header is clicked."""
    head = "".join(
        f'<th scope="col" data-type="{"num" if c.numeric else "text"}" aria-sort="none">{esc(c.title)}</th>'
        if sortable
        else f'<th scope="col">{esc(c.title)}</th>'
        for c in columns
    )
    body = []
    for row in rows:
        cells = "".join(
            "<td"
            + (' class="num"' if col.numeric else ' class="prose"' if col.prose else "")
            + (f' data-sort="{esc(sort_key(c.sort))}"' if sortable else "")
            + f">{c.html}</td>"
            for col, c in zip(columns, row, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    cls = ' class="sortable"' if sortable else ""
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    # in a box of its own that scrolls sideways, so a wide table never widens the page
    return (
        f'<div class="wide"><table{cls}>{cap}<thead><tr>{head}</tr></thead><tbody>\n'
        + "\n".join(body)
        + "\n</tbody></table></div>"
    )


@dataclass(frozen=True)
class NavItem:
    """One entry of the nav bar: a site path and its label, in a row named ``group`` ("" for the site-wide row)."""

    path: str
    label: str
    group: str = ""


def nav(items: Sequence[NavItem], current: str, link: Link) -> str:
    """The nav bar every page shares: one row per group, the current page marked for screen readers and CSS."""
    groups: dict[str, list[str]] = {}
    for item in items:
        mark = ' aria-current="page"' if item.path == current else ""
        groups.setdefault(item.group, []).append(f'<a href="{esc(link(item.path))}"{mark}>{esc(item.label)}</a>')
    rows = [
        f'<div class="nav-row">{f"<span>{esc(group)}:</span> " if group else ""}{" ".join(entries)}</div>'
        for group, entries in groups.items()
    ]
    return '<nav aria-label="site">' + "".join(rows) + "</nav>"


def page(title: str, body: str, path: str, items: Sequence[NavItem], footer: str) -> str:
    """A whole page at site path ``path``: head (local stylesheet and script, an empty icon so the browser asks
    for no favicon file), the nav bar, ``body`` and the footer."""
    link = linker(path)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta name="generator" content="{GENERATOR}">',
            f"<title>{esc(title)}</title>",
            '<link rel="icon" href="data:,">',
            f'<link rel="stylesheet" href="{esc(link(STYLESHEET))}">',
            f'<script src="{esc(link(SCRIPT))}" defer></script>',
            "</head>",
            "<body>",
            nav(items, path, link),
            "<main>",
            body,
            "</main>",
            f"<footer>{footer}</footer>",
            "</body>",
            "</html>",
            "",
        ]
    )
