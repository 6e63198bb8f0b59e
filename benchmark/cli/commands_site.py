"""The subcommand that publishes: ``site``, the static HTML leaderboard of :mod:`benchmark.site`."""

from __future__ import annotations

from pathlib import Path

from benchmark.config.suite import snapshots
from benchmark.errors import BenchmarkError
from benchmark.files import check_writable
from benchmark.run.records import suites_in
from benchmark.site.build import build_site
from benchmark.site.suite import committed_cards


def site(args) -> None:
    """Build the site of every suite under ``--results`` (or ``--suite``) into ``--out`` and print its index."""
    results, out = Path(args.results), Path(args.out)
    if not results.is_dir():
        raise BenchmarkError(f"results directory {results} does not exist: pass --results DIR")
    found = suites_in(results)
    if not found:
        raise BenchmarkError(f"no runs found under {results}: run 'python -m benchmark run' first")
    if args.suite is not None and args.suite not in found:
        raise BenchmarkError(f"no runs of suite {args.suite!r} under {results} (it has: {', '.join(found)})")
    check_writable(out, "--out", "site directory")
    suites = [args.suite] if args.suite else found
    # the suite files and the registry are read here, once, into the snapshots the site is given
    print(build_site(results, out, snapshots(suites), committed_cards()))
