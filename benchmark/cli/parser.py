"""Command line: ``python -m benchmark {run,tune,perf,attack,audit,list,pretrain,leaderboard,plot,preview-denoised,
publish-fits,recount,migrate,import-tsv,export-tsv,zoo,site}``: the top parser and :func:`main`. Each command's flags
are in ``benchmark.cli.args_<family>`` (run, evaluate, report, results), the flags several share in
:mod:`benchmark.cli.args`, and the function each command runs in :mod:`benchmark.cli.commands`
(:mod:`benchmark.cli.commands_attack` for attack and audit).

Bad input never shows a traceback: it prints one line naming the problem and the fix and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from benchmark.cli import args_evaluate, args_report, args_results, args_run
from benchmark.errors import BenchmarkError

# Subcommands in the order ``--help`` lists them.
SUBCOMMANDS = (
    args_run.add_run,
    args_evaluate.add_tune,
    args_evaluate.add_audit,
    args_evaluate.add_attack,
    args_evaluate.add_perf,
    args_evaluate.add_simulate,
    args_run.add_pretrain,
    args_run.add_list,
    args_report.add_leaderboard,
    args_report.add_plot,
    args_report.add_preview_denoised,
    args_report.add_site,
    args_results.add_publish_fits,
    args_results.add_recount,
    args_results.add_migrate,
    args_results.add_import_tsv,
    args_results.add_export_tsv,
    args_results.add_zoo,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints the whole usage block)
        # prog is "benchmark" for the top parser (which reports unknown arguments) and "benchmark run" for a command
        raise BenchmarkError(f"{message} (see '{' '.join(['python -m', *self.prog.split(), '--help'])}')")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="benchmark", description="smoothbench: certified robustness by randomized smoothing")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Treat SIGTERM (a scheduler's stop, `kill`) as Ctrl-C, so the run's ``finally`` blocks record its totals and
    status "partial"; without it Python dies at once and run.json keeps saying "running"."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        args.command_line = "python -m benchmark " + " ".join(argv)
        with sigterm_as_interrupt():
            args.func(args)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: records so far are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk, a permission taken away mid-run: what was written is kept
        where = f" ({err.filename})" if err.filename else ""
        print(f"error: {err.strerror or err}{where}: fix that, then rerun the same command to resume", file=sys.stderr)
        return 1
    return 0
