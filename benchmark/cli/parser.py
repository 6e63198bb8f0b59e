"""Command line: ``python -m benchmark {run,tune,perf,attack,audit,list,pretrain,leaderboard,plot,preview-denoised,
publish-fits,recount,import-tsv,export-tsv}``: the parser, and one function per subcommand in
:mod:`benchmark.cli.commands` (:mod:`benchmark.cli.commands_attack` for attack and audit).

Bad input never shows a traceback: it prints one line naming the problem and the fix and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from benchmark.cli import commands, commands_attack
from benchmark.errors import BenchmarkError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints the whole usage block)
        # prog is "benchmark" for the top parser (which reports unknown arguments) and "benchmark run" for a command
        raise BenchmarkError(f"{message} (see '{' '.join(['python -m', *self.prog.split(), '--help'])}')")


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _shard(text: str) -> tuple[int, int]:
    """Parse K/N; the Runner checks the range, so library callers get the same error."""
    k, _, n = text.partition("/")
    try:
        return int(k), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N, e.g. 0/2, got {text!r}") from None


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="results directory to read (default: results/)")
    p.add_argument(
        "--out", default=None, help="where to write tables and plots (default: leaderboards/ beside --results)"
    )


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="results directory (default: results/)")
    p.add_argument("--cache-dir", default=".cache", help="cache of fits and bases (default: .cache/)")


def _add_machine_args(p: argparse.ArgumentParser) -> None:
    """Where data, cache and compute are: the same flags (and meaning) as ``run``'s."""
    p.add_argument("--data-root", default=None, help="dataset folder")
    p.add_argument("--cache-dir", default=None, help="cache of fits and bases (default: .cache/)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16", "auto"], help="autocast precision")
    p.add_argument("--seed", type=int, default=None, help="root seed")


def _add_measure_args(p: argparse.ArgumentParser) -> None:
    """What a command that fits or certifies outside ``run`` (tune, perf) shares with it."""
    p.add_argument("--results", default=None, help="results directory; published fits are looked up there")
    p.add_argument("--batch-size", type=int, default=None, help="noisy samples per forward pass")
    p.add_argument("--allow-dirty", action="store_true", help="with uncommitted code changes (recorded)")
    _add_machine_args(p)


def _fraction(text: str) -> float:
    """A number, or a fraction such as 8/255."""
    try:
        top, _, bottom = text.partition("/")
        return float(top) / float(bottom) if bottom else float(top)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 8/255, got {text!r}") from None


def _command(sub, name: str, text: str, module=commands) -> argparse.ArgumentParser:
    """A subcommand of one suite (``--suite`` required), run by ``<module>.<name>`` (dashes as underscores)."""
    p = sub.add_parser(name, help=text)
    p.set_defaults(func=getattr(module, name.replace("-", "_")))
    p.add_argument("--suite", required=True)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="benchmark", description="smoothbench: certified robustness by randomized smoothing")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="fit and certify methods of a suite; resumes where it stopped")
    run.set_defaults(func=commands.run)
    run.add_argument("--suite", default="quick", help="suite name (benchmark/config/suites/*.toml) or a .toml path")
    run.add_argument("--methods", default=None, help="comma list of methods, or 'all' (default: the suite's)")
    run.add_argument("--bases", default=None, help="comma list of base models (default: the suite's)")
    run.add_argument("--sigma", type=_floats, default=None, help="noise levels, comma separated, e.g. 0.25,0.5")
    run.add_argument("--n0", type=int, default=None, help="selection samples")
    run.add_argument("--n", type=int, default=None, help="estimation samples")
    run.add_argument("--alpha", type=float, default=None, help="failure probability of each certificate")
    run.add_argument("--max-images", type=int, default=None,
                     help="certify at most this many test images (a seeded random sample of the subset, the same "
                          "for every method)")  # fmt: skip
    run.add_argument("--skip", type=int, default=None, help="certify every skip-th test image")
    run.add_argument("--start", type=int, default=None, help="first test index")
    run.add_argument("--data-root", default=None, help="dataset folder")
    run.add_argument("--download", action="store_true", default=None, help="let torchvision download the data")
    run.add_argument("--results", default=None, help="results directory (default: results/)")
    run.add_argument("--out", default=None,
                     help="leaderboard directory (default: the leaderboards/ folder beside --results)")  # fmt: skip
    run.add_argument("--cache-dir", default=None, help="cache of fitted states and bases (default: .cache/)")
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    run.add_argument("--precision", default=None, choices=["fp32", "bf16", "auto"], help="autocast precision")
    run.add_argument("--seed", type=int, default=None, help="root seed")
    run.add_argument("--batch-size", type=int, default=None, help="noisy samples per forward pass")
    run.add_argument("--certify", default=None, choices=["fixed", "sequential"],
                     help="fixed: CERTIFY with n0 + n samples; sequential: the same certificate, stopping once the "
                          "suite's radius grid is decided (n is then the most it draws)")  # fmt: skip
    run.add_argument("--fresh", action="store_true", help="discard existing records of the selected runs")
    run.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                     help="certify every N-th image from position K (0 <= K < N) into its own records file; "
                          "start K = 0..N-1 as N processes (or one per GPU) and they make the whole run")  # fmt: skip
    run.add_argument("--no-leaderboard", action="store_true", help="do not regenerate the leaderboard afterwards")
    run.add_argument(
        "--allow-dirty",
        action="store_true",
        help="run a published suite with uncommitted code changes (run.json records it)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--dry-run", action="store_true",
                     help="only print what would run: per run the images done and left, where its fit comes from "
                          "and the time left measured so far; nothing is fitted or written")  # fmt: skip

    tune = _command(sub, "tune", "choose recipes on the validation split: fit the suite's candidates on train "
                    "without val, score them on val, write the search to results/<suite>/tuning/")  # fmt: skip
    tune.add_argument("--methods", default=None, help="comma list (default: every method the suite has a search for)")
    tune.add_argument("--bases", default=None)
    tune.add_argument("--sigma", type=_floats, default=None,
                      help="noise levels (default: the suite's); 0 scores robust accuracy under PGD instead")
    tune.add_argument("--val-images", type=int, default=1000, help="validation images scored (default: 1,000)")
    tune.add_argument("--samples", type=int, default=100, help="noisy samples per scored image (default: 100)")
    _add_measure_args(tune)

    audit = _command(sub, "audit", "attack each certified image of ranked runs inside its radius (SmoothAdv) and "
                     "re-decide it with PREDICT; writes results/<suite>/audit/ and <out>/<suite>-audit.md",
                     commands_attack)  # fmt: skip
    audit.add_argument("--methods", required=True, help="comma list of methods whose ranked runs are audited")
    audit.add_argument("--bases", default=None)
    audit.add_argument("--sigma", type=_floats, default=None)
    audit.add_argument("--max-images", type=int, default=None, help="the first K certified images by index")
    audit.add_argument("--steps", type=int, default=20, help="PGD steps (default: 20)")
    audit.add_argument("--samples", type=int, default=16, help="noise draws per PGD step (default: 16)")
    audit.add_argument("--predict-n", type=int, default=1000, help="PREDICT's samples at the attacked point")
    audit.add_argument("--predict-alpha", type=float, default=0.001, help="PREDICT's level (default: 0.001)")
    audit.add_argument("--out", default=None, help="where <suite>-audit.md goes (default: beside --results)")
    _add_measure_args(audit)

    attack = _command(sub, "attack", "clean and PGD accuracy of methods' classifiers (adaptive by default); writes "
                      "results/<suite>/attack/ and <out>/<suite>-attack.md", commands_attack)  # fmt: skip
    attack.add_argument("--methods", required=True, help="comma list of methods")
    attack.add_argument("--bases", default=None)
    attack.add_argument("--sigma", type=_floats, default=[0.0],
                        help="0 (default): the classifier fitted without noise, attacked as is; > 0: the smoothed "
                             "classifier (EOT attack, majority vote)")  # fmt: skip
    attack.add_argument("--max-images", type=int, default=None, help="the first K images of the subset's order")
    attack.add_argument("--norm", default="linf", choices=["linf", "l2"])
    attack.add_argument("--eps", type=_fraction, default=8 / 255, help="radius in [0,1] units, e.g. 8/255 or 0.5")
    attack.add_argument("--step", type=_fraction, default=None, help="step size (default: eps/4 for linf)")
    attack.add_argument("--steps", type=int, default=10, help="PGD steps (default: 10, ADAPT's PGD-10)")
    attack.add_argument("--restarts", type=int, default=1)
    attack.add_argument("--eot", type=int, default=8, help="noise draws per step at sigma > 0")
    attack.add_argument("--votes", type=int, default=100, help="noisy samples per prediction at sigma > 0")
    attack.add_argument("--non-adaptive", action="store_true", help="craft the attack on the method's model "
                        "without its prompts (the clean base for a method without prompts)")
    attack.add_argument("--batch-images", type=int, default=32, help="images attacked together (recorded)")
    attack.add_argument("--out", default=None, help="where <suite>-attack.md goes (default: beside --results)")
    _add_measure_args(attack)

    perf = _command(sub, "perf", "certification speed of the reference loop, the public certify, the bare forward "
                    "pass and sequential CERTIFY on one method; writes <out>/perf.md")  # fmt: skip
    perf.add_argument("--method", default="gaussian")
    perf.add_argument("--bases", default=None, help="the base (default: the suite's first)")
    perf.add_argument("--sigma", type=_floats, default=None, help="the sigma (default: the suite's first)")
    perf.add_argument("--images", type=int, default=50, help="images of the subset, for the fast paths")
    perf.add_argument("--slow-images", type=int, default=None, help="images for the fp32 paths (default: --images)")
    perf.add_argument("--n0", type=int, default=None)
    perf.add_argument("--n", type=int, default=None)
    perf.add_argument("--out", default="leaderboards", help="where perf.md goes (default: leaderboards/)")
    _add_measure_args(perf)

    pre = sub.add_parser("pretrain", help="train (or load from cache) the suite's own base models on clean data")
    pre.set_defaults(func=commands.pretrain)
    pre.add_argument("--suite", default="quick")
    pre.add_argument("--bases", default=None, help="comma list (default: the suite's bases that need pretraining)")
    _add_machine_args(pre)

    sub.add_parser("list", help="list methods, base models, datasets and suites").set_defaults(
        func=commands.list_entries
    )

    for name, text in (("leaderboard", "regenerate markdown + CSV (and plots) from results"),
                       ("plot", "regenerate certified-accuracy-vs-radius PNGs from results")):  # fmt: skip
        p = sub.add_parser(name, help=text)
        p.set_defaults(func=getattr(commands, name))
        p.add_argument("--suite", default=None, help="one suite (default: every suite found in the results)")
        _add_output_args(p)
    preview = _command(sub, "preview-denoised", "a PNG grid of clean / noisy / denoised images per sigma for each "
                       "denoiser method of the suite, as fitted for its rows (published or cached fits, fitted only "
                       "where none is saved)")  # fmt: skip
    preview.add_argument("--out", default="leaderboards", help="where to write the PNGs (default: leaderboards/)")
    plot = sub.choices["plot"]
    plot.add_argument("--denoised", action="store_true", help="the same as the preview-denoised command")
    for p in (preview, plot):
        p.add_argument("--methods", default=None, help="which denoisers (default: all in the suite)")
        p.add_argument("--sigma", type=_floats, default=None)
        p.add_argument("--images", type=int, default=8, help="images per row")
        _add_machine_args(p)  # --precision: that of a denoiser to fit when none is saved in either

    pub = sub.add_parser(
        "publish-fits",
        help="copy the fitted states behind a suite's results (from the cache), and the fits they and unfinished "
        "fits start from, to <results>/checkpoints/, so a run resumed elsewhere certifies the same state",
    )
    pub.set_defaults(func=commands.publish_fits)
    pub.add_argument("--suite", default=None, help="one suite (default: every suite found in the results)")
    _add_store_args(pub)
    pub.add_argument("--max-mb", type=float, default=20.0, help="larger states stay local (default: 20)")

    rec = sub.add_parser(
        "recount",
        help="correct older run.json files: the trainable share recounted against the base's own parameters (LoRA, "
        "adapters and VPT once counted their modules as part of the base) and the data named from what the recorded "
        "data root holds (the JPEG copy was once called CIFAR-10); changes nothing else",
    )
    rec.set_defaults(func=commands.recount)
    rec.add_argument("--suite", required=True, help="the suite whose runs to recount (its bases are built)")
    _add_store_args(rec)
    rec.add_argument("--data-root", default=None)

    mig = sub.add_parser("migrate", help="rewrite results written by older versions to today's schema (values unchanged)")
    mig.set_defaults(func=commands.migrate)
    mig.add_argument("--results", default="results", help="results directory (default: results/)")

    imp = sub.add_parser("import-tsv", help="import a locuslab/smoothing certification log as records")
    imp.set_defaults(func=commands.import_tsv)
    imp.add_argument("file")
    imp.add_argument("--method", required=True)
    imp.add_argument("--sigma", type=float, required=True)
    imp.add_argument("--suite", required=True)
    imp.add_argument("--base", default="imported")
    imp.add_argument("--dataset", default=None)
    imp.add_argument("--n0", type=int, default=None)
    imp.add_argument("--n", type=int, default=None)
    imp.add_argument("--alpha", type=float, default=None)
    imp.add_argument("--fresh", action="store_true")
    _add_output_args(imp)

    exp = sub.add_parser("export-tsv", help="write one run's records as a locuslab/smoothing TSV")
    exp.set_defaults(func=commands.export_tsv)
    exp.add_argument("--suite", required=True)
    exp.add_argument("--method", required=True)
    exp.add_argument("--sigma", type=float, required=True)
    exp.add_argument("--base", default=None)
    exp.add_argument("--results", default="results")
    exp.add_argument("--output", required=True, help="TSV file to write")
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
