"""What several subcommands share: the types of their values, and each flag declared in more than one command,
declared once here (name, default and help), so the commands cannot drift apart."""

from __future__ import annotations

import argparse

from benchmark.config.run_config import PRECISIONS

# The cache's help as most commands word it; run's own wording predates the others and is kept as it is printed.
CACHE_HELP = "cache of fits and bases (default: .cache/)"


def floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def shard(text: str) -> tuple[int, int]:
    """Parse K/N; the Runner checks the range, so library callers get the same error."""
    k, _, n = text.partition("/")
    try:
        return int(k), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N, e.g. 0/2, got {text!r}") from None


def fraction(text: str) -> float:
    """A number, or a fraction such as 8/255."""
    try:
        top, _, bottom = text.partition("/")
        return float(top) / float(bottom) if bottom else float(top)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 8/255, got {text!r}") from None


def add_precision(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", default=None, choices=PRECISIONS, help="autocast precision")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N")


def add_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=None, help="root seed")


def add_data_root(p: argparse.ArgumentParser, text: str | None = "dataset folder") -> None:
    p.add_argument("--data-root", default=None, help=text)


def add_cache_dir(p: argparse.ArgumentParser, default: str | None = None, text: str = CACHE_HELP) -> None:
    p.add_argument("--cache-dir", default=default, help=text)


def add_batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=None, help="noisy samples per forward pass")


def add_allow_dirty(p: argparse.ArgumentParser, text: str = "with uncommitted code changes (recorded)") -> None:
    p.add_argument("--allow-dirty", action="store_true", help=text)


def add_bases(p: argparse.ArgumentParser, text: str | None = None) -> None:
    p.add_argument("--bases", default=None, help=text)


def add_sigma(p: argparse.ArgumentParser, text: str | None = None, default: list[float] | None = None) -> None:
    p.add_argument("--sigma", type=floats, default=default, help=text)


def add_machine_args(p: argparse.ArgumentParser) -> None:
    """Where data, cache and compute are: the same flags (and meaning) as ``run``'s."""
    add_data_root(p)
    add_cache_dir(p)
    add_device(p)
    add_precision(p)
    add_seed(p)


def add_measure_args(p: argparse.ArgumentParser) -> None:
    """What a command that fits or certifies outside ``run`` (tune, perf, attack, audit) shares with it."""
    p.add_argument("--results", default=None, help="results directory; published fits are looked up there")
    add_batch_size(p)
    add_allow_dirty(p)
    add_machine_args(p)


def add_output_args(p: argparse.ArgumentParser) -> None:
    """The results read and the folder written by the commands that make tables (leaderboard, plot, import-tsv)."""
    p.add_argument("--results", default="results", help="results directory to read (default: results/)")
    p.add_argument(
        "--out", default=None, help="where to write tables and plots (default: leaderboards/ beside --results)"
    )


def add_store_args(p: argparse.ArgumentParser) -> None:
    """The results and the cache of fits, for the commands that maintain them (publish-fits, recount)."""
    p.add_argument("--results", default="results", help="results directory (default: results/)")
    add_cache_dir(p, default=".cache")


def add_command(sub, name: str, text: str, func) -> argparse.ArgumentParser:
    """A subcommand of one suite (``--suite`` required), run by ``func``."""
    p = sub.add_parser(name, help=text)
    p.set_defaults(func=func)
    p.add_argument("--suite", required=True)
    return p


def add_results_command(sub, name: str, text: str, func) -> argparse.ArgumentParser:
    """A subcommand that reads a results tree (``--results``), of every suite found there or one (``--suite``)."""
    p = sub.add_parser(name, help=text)
    p.set_defaults(func=func)
    p.add_argument("--suite", default=None, help="one suite (default: every suite found in the results)")
    p.add_argument("--results", default="results", help="the results tree read (default: results/)")
    return p
