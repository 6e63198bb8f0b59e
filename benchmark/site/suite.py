"""What the site shows of one suite, read once through :mod:`benchmark.report`: the leaderboard rows and radius grid,
the model cards, and the markdown of the attack, audit, speed and certificate-design pages it has results for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmark.config.snapshot import SuiteSnapshot
from benchmark.files import read_json, safe_name
from benchmark.report.attack_page import attack_markdown
from benchmark.report.audit_page import audit_markdown
from benchmark.report.perf_page import report as perf_markdown
from benchmark.report.simulate_page import simulation_page
from benchmark.report.table import leaderboard_rows

# (results, snapshot, command) -> one model card per ranked row (the schema of benchmark.report.cards)
CardSource = Callable[[Path, SuiteSnapshot, str], list[dict]]
# The suite's pages rendered from markdown, in nav order: key (its file name), nav label, the module that writes it
MARKDOWN_PAGES = (
    ("attack", "attack", "benchmark.report.attack_page"),
    ("audit", "audit", "benchmark.report.audit_page"),
    ("perf", "speed", "benchmark.report.perf_page"),
    ("certificates", "certificate designs", "benchmark.report.simulate_page"),
)


@dataclass(frozen=True)
class SuiteData:
    """One suite as the site shows it, and where its pages live in the site (under its own folder, so two suites
    never collide)."""

    snapshot: SuiteSnapshot
    rows: list[dict]
    radii: list[float]
    cards: list[dict]
    pages: dict[str, str]  # key of MARKDOWN_PAGES -> the page's markdown, for those the suite has results for

    @property
    def name(self) -> str:
        return self.snapshot.name

    @property
    def methods(self) -> list[str]:
        return sorted({r["method"] for r in self.rows})

    def method_path(self, method: str) -> str:
        return f"{safe_name(self.name, 'suite')}/methods/{safe_name(method, 'method')}.html"

    def page_path(self, key: str) -> str:
        return f"{safe_name(self.name, 'suite')}/{key}.html"

    @property
    def anchor(self) -> str:
        """The id of the suite's section on the front page."""
        return f"suite-{safe_name(self.name, 'suite')}"


def gather(results: Path, snapshot: SuiteSnapshot, command: str, cards: CardSource | None) -> SuiteData:
    """Everything the site shows of ``snapshot``'s suite under ``results``; ``command`` is what the pages name as
    having made them."""
    rows, radii = leaderboard_rows(results, snapshot)
    suite = snapshot.name
    designs = read_json(results / suite / "simulate" / "designs.json", "the simulation")
    texts = {
        "attack": attack_markdown(results, snapshot, command),
        "audit": audit_markdown(results, suite, command),
        # perf's page has a header even with no measurement: shown only for a suite that has some
        "perf": perf_markdown(results, suite, command) if (results / suite / "perf").is_dir() else None,
        "certificates": simulation_page(designs, command) if designs is not None else None,
    }
    made = cards(results, snapshot, command) if cards is not None else []
    return SuiteData(snapshot, rows, radii, made, {k: t for k, t in texts.items() if t is not None})
