"""The README's Methods table, generated from the registry: one row per registered method, in registration order,
from its class's ``summary`` (what is trained; everything else is frozen) and ``paper`` (the source). The rows are
read from the registry by :func:`benchmark.config.suite.methods_rows` and passed in: no report imports a method class.

``python -m benchmark leaderboard`` rewrites it between the methods markers whenever it writes the committed
leaderboards, beside the leaderboard summary; a test checks the committed README matches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmark.config.snapshot import SuiteSnapshot
from benchmark.report.readme import readme_block, readme_suites, update_readme

METHODS_START, METHODS_END = "<!-- methods:start -->", "<!-- methods:end -->"


def methods_block(rows: Sequence[tuple[str, str, str]]) -> str:
    """The markdown table between the methods markers, of ``(name, summary, paper)`` rows."""
    lines = [METHODS_START, "", "| name | what is trained (frozen: everything else) | source |", "|---|---|---|"]
    for name, summary, paper in rows:
        lines.append(f"| `{name}` | {_cell(summary)} | {_cell(paper)} |")
    return "\n".join([*lines, "", METHODS_END])


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def update_methods_table(readme: Path, rows: Sequence[tuple[str, str, str]]) -> bool:
    """Rewrite the table between the methods markers of ``readme``; False when the file or the markers are absent."""
    return update_readme(readme, methods_block(rows), METHODS_START, METHODS_END)


def refresh_readme(
    readme: Path,
    committed: Path,
    results: Path,
    methods: Sequence[tuple[str, str, str]],
    snapshots: Mapping[str, SuiteSnapshot],
) -> bool:
    """The README's generated blocks: the Methods table of ``methods`` rows, and the leaderboard summary when
    ``results`` are the ``committed`` results (``snapshots``: one per suite found there); whether any was written."""

    changed = update_methods_table(readme, methods)
    if results.resolve() == committed.resolve():
        block = readme_block(committed, "python -m benchmark leaderboard", readme_suites(committed, snapshots))
        changed = update_readme(readme, block) or changed
    return changed
