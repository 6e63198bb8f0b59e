"""Markdown to HTML for the subset :mod:`benchmark.report` writes: ATX headings, paragraphs, ``-`` lists, pipe tables,
fenced code, and inline code, bold and links. A converter of our own rather than a dependency, because the pages
are generated (their subset is known and tested) and the output must be byte-stable across library versions.

Images are dropped and relative links become plain text: their targets (PNG plots, other markdown files) lie
outside the site, which must stand on its own in ``--out``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from benchmark.site.html import esc

_CODE = re.compile(r"`([^`]+)`")
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_HEADING = re.compile(r"(#{1,6})\s+(.*)")
_RULE = re.compile(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?")
_EXTERNAL = ("http://", "https://", "mailto:", "#")


def inline(text: str) -> str:
    """One line's inline markup as HTML. Code spans are set aside first (as NUL-delimited tokens, which no page
    holds), so nothing inside backticks is read as markup while bold may still span a code span."""
    codes: list[str] = []

    def aside(match: re.Match) -> str:
        codes.append(f"<code>{esc(match[1])}</code>")
        return f"\0{len(codes) - 1}\0"

    text = esc(_IMAGE.sub("", _CODE.sub(aside, text)))
    text = _LINK.sub(lambda m: f'<a href="{m[2]}">{m[1]}</a>' if m[2].startswith(_EXTERNAL) else m[1], text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return re.sub("\0(\\d+)\0", lambda m: codes[int(m[1])], text)


def _cells(line: str) -> list[str]:
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]


def _table(lines: list[str]) -> str:
    """A pipe table: header, rule, rows (a table with no rule line is read as rows without a header)."""
    head, body = (lines[0], lines[2:]) if len(lines) > 1 and _RULE.fullmatch(lines[1].strip()) else (None, lines)
    out = ["<table>"]
    if head is not None:
        out.append(
            "<thead><tr>" + "".join(f'<th scope="col">{inline(c)}</th>' for c in _cells(head)) + "</tr></thead>"
        )
    rows = ["<tr>" + "".join(f"<td>{inline(c)}</td>" for c in _cells(line)) + "</tr>" for line in body]
    return "\n".join([*out, "<tbody>", *rows, "</tbody></table>"])


def _blocks(lines: list[str]) -> Iterator[tuple[str, list[str]]]:
    """The text's blocks as (kind, lines): heading, code, table, list or paragraph; blank lines separate them."""
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
            yield "code", lines[i + 1 : end]
            i = end + 1
        elif _HEADING.fullmatch(line):
            yield "heading", [line]
            i += 1
        else:
            kind = "table" if line.lstrip().startswith("|") else "list" if line.startswith("- ") else "paragraph"
            j = i + 1
            while j < len(lines) and lines[j].strip() and not lines[j].startswith(("```", "#")):
                if kind == "table" and not lines[j].lstrip().startswith("|"):
                    break
                j += 1
            yield kind, lines[i:j]
            i = j


def to_html(text: str) -> str:
    """The HTML of a markdown page (no document shell: :func:`benchmark.site.html.page` adds it)."""
    out = []
    for kind, lines in _blocks(text.splitlines()):
        if kind == "heading":
            hashes, title = _HEADING.fullmatch(lines[0]).groups()
            out.append(f"<h{len(hashes)}>{inline(title)}</h{len(hashes)}>")
        elif kind == "code":
            out.append("<pre><code>" + esc("\n".join(lines)) + "</code></pre>")
        elif kind == "table":
            out.append(_table(lines))
        elif kind == "list":
            items, current = [], []
            for line in lines:  # a line not starting "- " continues the item above it
                if line.startswith("- ") and current:
                    items.append(" ".join(current))
                    current = []
                current.append(line[2:] if line.startswith("- ") else line.strip())
            items.append(" ".join(current))
            out.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>")
        else:
            out.append("<p>" + inline(" ".join(line.strip() for line in lines)) + "</p>")
    return "\n".join(out)


def title_of(text: str, default: str) -> str:
    """The page's first heading as plain text (code marks removed), for the ``<title>``."""
    for line in text.splitlines():
        match = _HEADING.fullmatch(line)
        if match:
            return match[2].replace("`", "").strip()
    return default
