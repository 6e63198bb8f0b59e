"""The flags of the commands that draw from results: ``leaderboard``, ``plot``, ``preview-denoised`` and ``site``."""

from __future__ import annotations

import argparse

from benchmark.cli import commands, commands_site
from benchmark.cli.args import add_command, add_machine_args, add_output_args, add_results_command, add_sigma


def _add_tables(sub, name: str, text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=text)
    p.set_defaults(func=getattr(commands, name))
    p.add_argument("--suite", default=None, help="one suite (default: every suite found in the results)")
    add_output_args(p)
    return p


def _add_preview_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", default=None, help="which denoisers (default: all in the suite)")
    add_sigma(p)
    p.add_argument("--images", type=int, default=8, help="images per row")
    add_machine_args(p)  # --precision: that of a denoiser to fit when none is saved in either


def add_leaderboard(sub) -> None:
    _add_tables(sub, "leaderboard", "regenerate markdown + CSV (and plots) from results")


def add_plot(sub) -> None:
    plot = _add_tables(sub, "plot", "regenerate certified-accuracy-vs-radius PNGs from results")
    plot.add_argument("--denoised", action="store_true", help="the same as the preview-denoised command")
    _add_preview_args(plot)


def add_preview_denoised(sub) -> None:
    preview = add_command(
        sub,
        "preview-denoised",
        "a PNG grid of clean / noisy / denoised images per sigma for each "
        "denoiser method of the suite, as fitted for its rows (published or cached fits, fitted "
        "only where none is saved)",
        commands.preview_denoised,
    )
    preview.add_argument("--out", default="leaderboards", help="where to write the PNGs (default: leaderboards/)")
    _add_preview_args(preview)


def add_site(sub) -> None:
    text = (
        "a static HTML leaderboard (sortable tables, method pages with model cards and curves, the attack, audit, "
        "speed and certificate pages) that opens from file:// with no server and no external resource"
    )
    p = add_results_command(sub, "site", text, commands_site.site)
    p.add_argument("--out", default="site", help="where to write the site (default: site/)")
