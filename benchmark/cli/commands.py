"""One function per subcommand of ``python -m benchmark``: each turns parsed arguments into a call of the library
and prints what it did. The flags are in ``benchmark.cli.args_*``, the error handling in
:mod:`benchmark.cli.parser`."""

from __future__ import annotations

from pathlib import Path

from benchmark.config.registry import BASES, DATASETS, METHODS
from benchmark.config.run_config import build_run_config
from benchmark.config.suite import PROJECT_ROOT, methods_rows, snapshots, suite_names
from benchmark.errors import BenchmarkError
from benchmark.evaluate.denoised import denoised_previews
from benchmark.evaluate.perf import measure
from benchmark.evaluate.tuning import run_sigmas, tune_suite
from benchmark.files import check_writable, safe_name
from benchmark.report import previews
from benchmark.report.leaderboard import leaderboard_rows, write_attack_pages, write_leaderboard
from benchmark.report.perf_page import report
from benchmark.report.plots import write_plots
from benchmark.run.interop import export_tsv as write_tsv
from benchmark.run.interop import import_tsv as read_tsv
from benchmark.run.launch import (
    certify_suite,
    plan_lines,
    rank_device,
    rank_shard,
    ranks,
    refuse_certificate,
    require_methods,
)
from benchmark.run.maintenance import recount as recount_runs
from benchmark.run.migrate import migrate as migrate_runs
from benchmark.run.pretrain import pretrain_bases
from benchmark.run.provenance import check_clean
from benchmark.run.records import suites_in
from benchmark.run.store import FitStore


def overrides(args) -> dict:
    """The run settings given on the command line (None: not given, so the suite's value stands)."""
    keys = (
        "n0",
        "n",
        "alpha",
        "max_images",
        "skip",
        "start",
        "data_root",
        "download",
        "results",
        "cache_dir",
        "device",
        "precision",
        "seed",
        "batch_size",
        "certify",
        "engine",
    )
    values = {k: getattr(args, k, None) for k in keys}
    values["sigmas"] = getattr(args, "sigma", None)
    for key in ("methods", "bases"):
        text = getattr(args, key, None)
        values[key] = [v.strip() for v in text.split(",") if v.strip()] if text is not None else None
        if values[key] == []:
            raise BenchmarkError(f"--{key} is empty: name one or more, comma separated, or 'all'")
    if values.get("data_root"):
        values["data_root"] = str(Path(values["data_root"]).expanduser().resolve())
    return values


def out_dir(args, results: str | Path) -> Path:
    """``--out``, or the ``leaderboards`` folder beside the results read: tables of other results never land on
    the committed ``leaderboards/`` unless asked for."""
    return Path(args.out) if args.out else Path(results).parent / "leaderboards"


def existing_results(results: str | Path) -> Path:
    """``--results`` of a command that only reads or corrects what is there."""
    if not Path(results).is_dir():
        raise BenchmarkError(f"no results directory {results}: pass --results")
    return Path(results)


def write_leaderboards(results: Path, out: Path, suite: str | None, command: str, plots_only: bool = False) -> None:
    """Tables (and plots) of every suite under ``results``, or one; the README's summary when the committed
    leaderboards were regenerated from the committed results. The suite files and the registry are read here, once,
    into snapshots the reports are given (they read neither)."""
    if not results.is_dir():
        raise BenchmarkError(f"results directory {results} does not exist: run 'python -m benchmark run' first")
    suites = [suite] if suite else suites_in(results)
    if not suites:
        raise BenchmarkError(f"no runs found under {results}")
    snaps = snapshots(suites)
    for name in suites:
        if plots_only:
            paths = write_plots(*leaderboard_rows(results, snaps[name]), out, snaps[name])
        else:
            paths = write_leaderboard(results, out, snaps[name], command)
            write_attack_pages(results, out, snaps[name], command)
        for path in paths:
            print(path)
    if not plots_only and out.resolve() == (PROJECT_ROOT / "leaderboards").resolve():
        from benchmark.report.methods_table import refresh_readme

        committed = PROJECT_ROOT / "results"
        summarised = snapshots(suites_in(committed))
        if refresh_readme(PROJECT_ROOT / "README.md", committed, results, methods_rows(), summarised):
            print(PROJECT_ROOT / "README.md")


def run(args) -> None:
    """Fit and certify; under ``torchrun --nproc-per-node K`` each rank certifies every K-th image into its own
    records file (readers merge them), fits are made once through the store's lock, and rank 0 writes the tables
    once every rank is done."""
    values = overrides(args)
    if values["methods"]:
        if (
            "all" not in values["methods"]
        ):  # a method named here is refused a certificate asked for here it cannot take
            refuse_certificate(values["methods"], values["certify"])
        values["methods"] = METHODS.resolve(values["methods"])
    rank, world, local = ranks()
    if world > 1:
        args.shard = rank_shard(args.shard, rank, world)
        values["device"] = rank_device(values["device"] or build_run_config(args.suite, values).device, local)
    cfg = build_run_config(args.suite, values)
    require_methods(cfg)
    out = out_dir(args, cfg.results)
    if args.dry_run:
        print("\n".join(plan_lines(cfg, args.fresh, args.shard)))
        return
    if not args.no_leaderboard:  # found now, not after hours of certification
        check_writable(out, "--out", "leaderboard directory")
    certify_suite(cfg, args.fresh, not args.quiet, args.shard, args.allow_dirty, world)
    if rank != 0:
        return
    where = f"records under {Path(cfg.results) / safe_name(cfg.suite)}"
    if not args.no_leaderboard:
        command = f"python -m benchmark leaderboard --suite {cfg.suite} --results {cfg.results} --out {out}"
        write_leaderboards(Path(cfg.results), out, cfg.suite, command)
        where += f", tables in {out / safe_name(cfg.suite)}.md"
    print(f"done: {where}")


def tune(args) -> None:
    """Recipe searches of the suite on the validation split (see :mod:`benchmark.evaluate.tuning`)."""
    values = overrides(args)
    cfg = build_run_config(args.suite, values | {"sigmas": run_sigmas(values["sigmas"])})
    tune_suite(cfg, values["methods"], values["sigmas"], args.val_images, args.samples, args.allow_dirty)


def perf(args) -> None:
    """Certification speed of each path on one method, base and sigma (see :mod:`benchmark.evaluate.perf`), then
    ``perf.md`` from every measurement stored for the suite."""
    cfg = build_run_config(args.suite, overrides(args))
    out = out_dir(args, cfg.results)  # beside the results measured with, never the checkout's unless asked
    check_writable(out, "--out", "page directory")
    if not args.report_only:
        check_clean(cfg.suite, args.allow_dirty)
        paths = [p.strip() for p in args.paths.split(",") if p.strip()]
        measure(cfg, args.method, cfg.bases[0], cfg.sigmas[0], args.images, args.slow_images or args.images, paths)
    text = report(Path(cfg.results), cfg.suite, args.command_line)
    out.mkdir(parents=True, exist_ok=True)
    (out / "perf.md").write_text(text)
    print(text)


def pretrain(args) -> None:
    for line in pretrain_bases(build_run_config(args.suite, overrides(args) | {"methods": ["vanilla"]})):
        print(line)


def preview_denoised(args) -> None:
    """A PNG grid per denoiser of the suite: clean, noisy and denoised images at each sigma, as fitted for the rows
    (see :mod:`benchmark.evaluate.denoised`)."""
    if not args.suite:
        raise BenchmarkError("preview-denoised needs --suite NAME")
    for cfg, name, images, denoise, title in denoised_previews(
        args.suite, overrides(args) | {"results": None}, args.images
    ):
        path = Path(args.out or "leaderboards") / safe_name(cfg.suite) / f"denoised_{name}.png"
        print(previews.denoised_preview(images, denoise, cfg.sigmas, path, title, cfg.seed))


def list_entries(args) -> None:
    print("methods: " + ", ".join(METHODS.names()))
    print("bases:   " + ", ".join(BASES.names()) + ", timm:<any timm model>")
    print("datasets: " + ", ".join(DATASETS.names()))
    print("suites:  " + ", ".join(suite_names()))


def leaderboard(args) -> None:
    write_leaderboards(Path(args.results), out_dir(args, args.results), args.suite, args.command_line)


def plot(args) -> None:
    if args.denoised:  # the older spelling of preview-denoised
        preview_denoised(args)
        return
    write_leaderboards(Path(args.results), out_dir(args, args.results), args.suite, args.command_line, plots_only=True)


def publish_fits(args) -> None:
    results = existing_results(args.results)
    lines = FitStore(Path(args.cache_dir)).publish(results, args.suite, int(args.max_mb * 2**20))
    print("\n".join(lines) if lines else f"no fitted runs under {results}")


def recount(args) -> None:
    cfg = build_run_config(args.suite, overrides(args))
    existing_results(cfg.results)
    lines = recount_runs(cfg)
    print("\n".join(lines) if lines else f"nothing to correct in the {cfg.suite} run.json files")


def migrate(args) -> None:
    results = existing_results(args.results)
    lines = migrate_runs(results)
    print("\n".join(lines) if lines else f"every run under {results} is in today's schema")


def import_tsv(args) -> None:
    print(
        read_tsv(
            Path(args.file),
            method=args.method,
            sigma=args.sigma,
            suite=args.suite,
            results=Path(args.results),
            base=args.base,
            dataset=args.dataset,
            n0=args.n0,
            n=args.n,
            alpha=args.alpha,
            fresh=args.fresh,
        )
    )


def export_tsv(args) -> None:
    print(
        write_tsv(
            Path(args.results),
            suite=args.suite,
            method=args.method,
            sigma=args.sigma,
            out=Path(args.output),
            base=args.base,
        )
    )
