"""Command line: ``python -m benchmark {run,list,pretrain,leaderboard,plot,import-tsv,export-tsv}``.

Bad input never shows a traceback: it prints one line naming the problem and the fix and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from benchmark.config import PROJECT_ROOT
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
    p.add_argument("--out", default="leaderboards", help="where to write tables and plots (default: leaderboards/)")


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results", help="results directory (default: results/)")
    p.add_argument("--cache-dir", default=".cache", help="cache of fits and bases (default: .cache/)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="benchmark", description="smoothbench: certified robustness by randomized smoothing")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="fit and certify methods of a suite; resumes where it stopped")
    run.add_argument("--suite", default="quick", help="suite name (benchmark/suites/*.toml) or a .toml path")
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
    run.add_argument("--out", default="leaderboards", help="leaderboard directory (default: leaderboards/)")
    run.add_argument("--cache-dir", default=None, help="cache of fitted states and bases (default: .cache/)")
    run.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    run.add_argument("--precision", default=None, choices=["fp32", "bf16", "auto"], help="autocast precision")
    run.add_argument("--seed", type=int, default=None, help="root seed")
    run.add_argument("--batch-size", type=int, default=None, help="noisy samples per forward pass")
    run.add_argument("--fresh", action="store_true", help="discard existing records of the selected runs")
    run.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                     help="certify every N-th image from position K (0 <= K < N) into its own records file; "
                          "start K = 0..N-1 as N processes (or one per GPU) and they make the whole run")  # fmt: skip
    run.add_argument("--no-leaderboard", action="store_true", help="do not regenerate the leaderboard afterwards")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--dry-run", action="store_true",
                     help="only print what would run: per run the images done and left, where its fit comes from "
                          "and the time left measured so far; nothing is fitted or written")  # fmt: skip

    pre = sub.add_parser("pretrain", help="train (or load from cache) the suite's own base models on clean data")
    pre.add_argument("--suite", default="quick")
    pre.add_argument("--bases", default=None, help="comma list (default: the suite's bases that need pretraining)")
    pre.add_argument("--data-root", default=None)
    pre.add_argument("--cache-dir", default=None)
    pre.add_argument("--device", default=None)
    pre.add_argument("--seed", type=int, default=None)

    sub.add_parser("list", help="list methods, base models, datasets and suites")

    for name, text in (("leaderboard", "regenerate markdown + CSV (and plots) from results"),
                       ("plot", "regenerate certified-accuracy-vs-radius PNGs from results")):  # fmt: skip
        p = sub.add_parser(name, help=text)
        p.add_argument("--suite", default=None, help="one suite (default: every suite found in the results)")
        _add_output_args(p)
    plot = sub.choices["plot"]
    plot.add_argument("--denoised", action="store_true",
                      help="instead: a PNG grid of clean / noisy / denoised images per sigma for each denoiser "
                           "method of the suite (fits or loads the denoisers)")  # fmt: skip
    plot.add_argument("--methods", default=None, help="with --denoised: which denoisers (default: all in the suite)")
    plot.add_argument("--sigma", type=_floats, default=None)
    plot.add_argument("--data-root", default=None)
    plot.add_argument("--cache-dir", default=None)
    plot.add_argument("--device", default=None)
    plot.add_argument(
        "--precision",
        default=None,
        choices=["fp32", "bf16", "auto"],
        help="with --denoised: the precision of a denoiser to fit when none is saved in either",
    )
    plot.add_argument("--images", type=int, default=8, help="with --denoised: images per row")

    pub = sub.add_parser(
        "publish-fits",
        help="copy the fitted states behind a suite's results (from the cache), and the fits they and unfinished "
        "fits start from, to <results>/checkpoints/, so a run resumed elsewhere certifies the same state",
    )
    pub.add_argument("--suite", default=None, help="one suite (default: every suite found in the results)")
    _add_store_args(pub)
    pub.add_argument("--max-mb", type=float, default=20.0, help="larger states stay local (default: 20)")

    rec = sub.add_parser(
        "recount",
        help="correct older run.json files: the trainable share recounted against the base's own parameters (LoRA, "
        "adapters and VPT once counted their modules as part of the base) and the data named from what the recorded "
        "data root holds (the JPEG copy was once called CIFAR-10); changes nothing else",
    )
    rec.add_argument("--suite", required=True, help="the suite whose runs to recount (its bases are built)")
    _add_store_args(rec)
    rec.add_argument("--data-root", default=None)

    imp = sub.add_parser("import-tsv", help="import a locuslab/smoothing certification log as records")
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
    exp.add_argument("--suite", required=True)
    exp.add_argument("--method", required=True)
    exp.add_argument("--sigma", type=float, required=True)
    exp.add_argument("--base", default=None)
    exp.add_argument("--results", default="results")
    exp.add_argument("--output", required=True, help="TSV file to write")
    return parser


def _leaderboards(results: Path, out: Path, suite: str | None, command: str, plots_only: bool = False) -> None:
    from benchmark.leaderboard import suites_in, write_leaderboard
    from benchmark.plots import write_plots

    if not results.is_dir():
        raise BenchmarkError(f"results directory {results} does not exist: run 'python -m benchmark run' first")
    suites = [suite] if suite else suites_in(results)
    if not suites:
        raise BenchmarkError(f"no runs found under {results}")
    for name in suites:
        paths = write_plots(results, out, name) if plots_only else write_leaderboard(results, out, name, command)
        for path in paths:
            print(path)
    # The README shows the committed leaderboards: refresh it only when the committed ones were regenerated.
    if not plots_only and out.resolve() == (PROJECT_ROOT / "leaderboards").resolve():
        from benchmark.leaderboard import readme_block, readme_suites, update_readme

        committed = PROJECT_ROOT / "results"
        if results.resolve() == committed.resolve():
            block = readme_block(committed, "python -m benchmark leaderboard", readme_suites(committed))
            if update_readme(PROJECT_ROOT / "README.md", block):
                print(PROJECT_ROOT / "README.md")


def _overrides(args) -> dict:
    keys = ("n0", "n", "alpha", "max_images", "skip", "start", "data_root", "download", "results", "cache_dir",
            "device", "precision", "seed", "batch_size")  # fmt: skip
    values = {k: getattr(args, k, None) for k in keys}
    values["sigmas"] = getattr(args, "sigma", None)
    for key in ("methods", "bases"):
        text = getattr(args, key, None)
        values[key] = [v.strip() for v in text.split(",") if v.strip()] if text else None
    if values.get("data_root"):
        values["data_root"] = str(Path(values["data_root"]).expanduser().resolve())
    return values


def cmd_run(args) -> None:
    from benchmark.config import build_run_config
    from benchmark.registry import METHODS
    from benchmark.runner import Runner

    overrides = _overrides(args)
    if overrides["methods"]:
        overrides["methods"] = METHODS.resolve(overrides["methods"])
    cfg = build_run_config(args.suite, overrides)
    if not cfg.methods:
        raise BenchmarkError(f"suite {cfg.suite!r} names no methods: pass --methods all or a comma list")
    runner = Runner(cfg, fresh=args.fresh, progress=not args.quiet, shard=args.shard)
    if args.dry_run:
        print("\n".join(runner.dry_run()))
        return
    runner.run()
    if not args.no_leaderboard:
        command = f"python -m benchmark leaderboard --suite {cfg.suite} --results {cfg.results} --out {args.out}"
        _leaderboards(Path(cfg.results), Path(args.out), cfg.suite, command)


def cmd_pretrain(args) -> None:
    import json

    from benchmark.config import build_run_config
    from benchmark.models import _Pretrained, base_spec
    from benchmark.runner import Runner

    overrides = _overrides(args) | {"methods": ["vanilla"]}
    cfg = build_run_config(args.suite, overrides)
    runner = Runner(cfg, progress=True)
    # bases the suite trains itself; a timm base only when it is set to fine-tune on clean data first
    names = [b for b in cfg.bases
             if isinstance(base_spec(b), _Pretrained) and runner.base_config(b).train.epochs > 0]  # fmt: skip
    if not names:
        raise BenchmarkError(f"suite {cfg.suite!r} has no base that the suite trains itself (e.g. small_cnn)")
    for name in names:
        spec = base_spec(name)
        runner.build_base(name)
        info_path = spec.cache_dir(runner.base_config(name), runner.dataset, runner.build_context()) / "run.json"
        info = json.loads(info_path.read_text())
        print(f"{name}: clean accuracy {info['clean_accuracy']:.4f}, fit {info['fit']['time_s']:.1f} s, "
              f"{info['params']:,} parameters -> {info_path.parent}")  # fmt: skip


def cmd_denoised(args) -> None:
    import torch

    from benchmark.config import build_run_config
    from benchmark.data import subset_indices
    from benchmark.plots import write_denoised_preview
    from benchmark.registry import METHODS
    from benchmark.results import safe_name
    from benchmark.runner import Runner

    if not args.suite:
        raise BenchmarkError("plot --denoised needs --suite NAME")
    overrides = _overrides(args) | {"results": None}
    cfg = build_run_config(args.suite, overrides)
    names = [m for m in (overrides["methods"] or cfg.methods) if hasattr(METHODS.get(m), "denoise")]
    if not names:
        raise BenchmarkError(f"no denoiser among the methods of suite {cfg.suite!r}: name one with --methods")
    runner = Runner(cfg)
    # The preview denoises in fp32 whatever the fit's precision, so a denoiser fitted under the other precision
    # (say bf16 on another machine, then published) is shown rather than fitted again here.
    other = Runner(build_run_config(args.suite, overrides | {"precision": "fp32" if runner.bf16 else "bf16"}))
    data = runner.eval_data()
    picked = subset_indices(len(data), cfg.start, cfg.skip, args.images, cfg.seed)
    images = torch.stack([data[i][0] for i in picked])
    images = images.to(runner.device)
    base = cfg.bases[0]
    for name in names:
        fitted, sources = {}, []
        for sigma in cfg.sigmas:
            for r in (runner, other):
                if (method := r.saved_fit(name, base, sigma)) is not None:
                    break
            else:
                r, method = runner, runner.fitted(name, base, sigma)[0]
            fitted[sigma] = method
            sources.append(f"{sigma:g}: {'bf16' if r.bf16 else 'fp32'}")
        path = Path(args.out) / safe_name(cfg.suite) / f"denoised_{name}.png"
        title = f"{cfg.suite}: what {base} sees through {name}"
        if fitted[cfg.sigmas[0]].needs_fit():
            title += f" (fits by sigma, {'; '.join(sources)})"
        denoise = lambda z, s, fitted=fitted: fitted[s].denoise(z, s)  # noqa: E731
        print(write_denoised_preview(images, denoise, cfg.sigmas, path, title, cfg.seed))


def cmd_list(args) -> None:
    from benchmark.config import suite_names
    from benchmark.registry import BASES, DATASETS, METHODS

    print("methods: " + ", ".join(METHODS.names()))
    print("bases:   " + ", ".join(BASES.names()) + ", timm:<any timm model>")
    print("datasets: " + ", ".join(DATASETS.names()))
    print("suites:  " + ", ".join(suite_names()))


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
        command = "python -m benchmark " + " ".join(argv)
        if args.command == "run":
            with sigterm_as_interrupt():
                cmd_run(args)
        elif args.command == "pretrain":
            cmd_pretrain(args)
        elif args.command == "list":
            cmd_list(args)
        elif args.command == "plot" and args.denoised:
            cmd_denoised(args)
        elif args.command in ("leaderboard", "plot"):
            _leaderboards(Path(args.results), Path(args.out), args.suite, command, args.command == "plot")
        elif args.command == "publish-fits":
            from benchmark.runner import publish_fits

            results = Path(args.results)
            if not results.is_dir():
                raise BenchmarkError(f"no results directory {results}: pass --results")
            lines = publish_fits(results, Path(args.cache_dir), args.suite, int(args.max_mb * 2**20))
            print("\n".join(lines) if lines else f"no fitted runs under {results}")
        elif args.command == "recount":
            from benchmark.config import build_run_config
            from benchmark.runner import Runner

            cfg = build_run_config(args.suite, _overrides(args))
            if not Path(cfg.results).is_dir():
                raise BenchmarkError(f"no results directory {cfg.results}: pass --results")
            lines = Runner(cfg, progress=False).recount()
            print("\n".join(lines) if lines else f"nothing to correct in the {cfg.suite} run.json files")
        elif args.command == "import-tsv":
            from benchmark.interop import import_tsv

            directory = import_tsv(
                Path(args.file), method=args.method, sigma=args.sigma, suite=args.suite, results=Path(args.results),
                base=args.base, dataset=args.dataset, n0=args.n0, n=args.n, alpha=args.alpha, fresh=args.fresh,
            )  # fmt: skip
            print(directory)
        elif args.command == "export-tsv":
            from benchmark.interop import export_tsv

            print(export_tsv(Path(args.results), suite=args.suite, method=args.method, sigma=args.sigma,
                             out=Path(args.output), base=args.base))  # fmt: skip
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: records so far are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
