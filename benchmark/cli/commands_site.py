"""The subcommand that publishes: ``site``, the static HTML leaderboard of :mod:`benchmark.site`."""

from __future__ import annotations

from pathlib import Path

from benchmark.config.suite import snapshots
from benchmark.report.cards import build_cards
from benchmark.site.build import build_site, suites_to_build


def site(args) -> None:
    """Build the site of every suite under ``--results`` (or ``--suite``), with its model cards, into ``--out`` and
    print its index; the suite files and the registry are read here, once, into the snapshots the site is given."""
    results, out = Path(args.results), Path(args.out)
    suites = suites_to_build(results, out, args.suite)
    print(build_site(results, out, snapshots(suites), build_cards))
