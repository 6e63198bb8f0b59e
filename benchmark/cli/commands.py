"""One function per subcommand of ``python -m benchmark``: each turns parsed arguments into calls of the library
and prints what it did. The parser and the error handling are in :mod:`benchmark.cli.parser`."""

from __future__ import annotations

from pathlib import Path

from benchmark.cli.distributed import process_group, ranks
from benchmark.config.run_config import build_run_config
from benchmark.config.suite import PROJECT_ROOT, suite_names
from benchmark.errors import BenchmarkError


def overrides(args) -> dict:
    """The run settings given on the command line (None: not given, so the suite's value stands)."""
    keys = ("n0", "n", "alpha", "max_images", "skip", "start", "data_root", "download", "results", "cache_dir",
            "device", "precision", "seed", "batch_size", "certify")  # fmt: skip
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


def write_leaderboards(results: Path, out: Path, suite: str | None, command: str, plots_only: bool = False) -> None:
    """Tables (and plots) of every suite under ``results``, or one; the README's summary when the committed
    leaderboards were regenerated from the committed results. The suite files and the registry are read here, once,
    into snapshots the reports are given (they read neither)."""
    from benchmark.config.suite import methods_rows, snapshots
    from benchmark.report.leaderboard import leaderboard_rows, write_attack_pages, write_leaderboard
    from benchmark.report.plots import write_plots
    from benchmark.run.records import suites_in

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


def check_clean(suite: str, allow_dirty: bool) -> None:
    """Results of a published suite come from committed code: refuse a checkout with uncommitted code changes
    unless ``--allow-dirty`` (which run.json records)."""
    from benchmark.config.suite import is_published
    from benchmark.run.provenance import git_state

    if not allow_dirty and is_published(suite) and git_state()["dirty"]:
        raise BenchmarkError(f"the checkout has uncommitted code changes and suite {suite!r} publishes its results: "
                             "commit them first, or pass --allow-dirty (run.json records it)")  # fmt: skip


def run(args) -> None:
    """Fit and certify; under ``torchrun --nproc-per-node K`` each rank certifies every K-th image into its own
    records file (readers merge them), fits are made once through the store's lock, and rank 0 writes the tables
    once every rank is done."""
    from benchmark.config.registry import METHODS

    values = overrides(args)
    if values["methods"]:
        values["methods"] = METHODS.resolve(values["methods"])
    rank, world, local = ranks()
    if world > 1:
        if args.shard:
            raise BenchmarkError("--shard and torchrun both split the images: use one of them")
        args.shard = (rank, world)
        device = values["device"] or build_run_config(args.suite, values).device
        if device == "cuda":  # one GPU per rank
            values["device"] = f"cuda:{local}"
    cfg = build_run_config(args.suite, values)
    if not cfg.methods:
        raise BenchmarkError(f"suite {cfg.suite!r} names no methods: pass --methods all or a comma list")
    out = out_dir(args, cfg.results)
    if args.dry_run:
        from benchmark.run.maintenance import dry_run
        from benchmark.run.runner import check_shard

        check_shard(args.shard, args.fresh)
        print("\n".join(dry_run(cfg, fresh=args.fresh, shard=args.shard)))
        return
    from benchmark.files import check_writable, safe_name
    from benchmark.run.runner import Runner

    if not args.no_leaderboard:  # found now, not after hours of certification
        check_writable(out, "--out", "leaderboard directory")
    check_clean(cfg.suite, args.allow_dirty)
    with process_group(world, cfg.device) as group:
        Runner(cfg, fresh=args.fresh, progress=not args.quiet, shard=args.shard, allow_dirty=args.allow_dirty).run()
        if group is not None:
            group.barrier()  # the tables wait for every rank's records
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
    from benchmark.config.registry import METHODS
    from benchmark.evaluate.tuning import search
    from benchmark.files import check_writable

    values = overrides(args)
    sigmas = values["sigmas"]
    if sigmas is not None and any(s < 0 for s in sigmas):
        raise BenchmarkError("--sigma must be >= 0 (0: a method trained without noise, scored by robust accuracy)")
    positive = [s for s in sigmas or [] if s > 0]
    values["sigmas"] = positive or None  # sigma 0 is tune's own level (no smoothing), not one a run certifies at
    cfg = build_run_config(args.suite, values)
    methods = METHODS.resolve(values["methods"] or list(cfg.tuning) or ["none"])
    check_clean(cfg.suite, args.allow_dirty)
    check_writable(Path(cfg.results))
    for method in methods:
        for base in cfg.bases:
            for sigma in sigmas or cfg.sigmas:
                search(cfg, method, base, sigma, args.val_images, args.samples)


def perf(args) -> None:
    """Certification speed of each path on one method, base and sigma (see :mod:`benchmark.evaluate.perf`)."""
    from benchmark.evaluate.perf import measure
    from benchmark.report.perf_page import report

    values = overrides(args)
    cfg = build_run_config(args.suite, values)
    check_clean(cfg.suite, args.allow_dirty)
    method, base, sigma = args.method, (values["bases"] or cfg.bases)[0], (values["sigmas"] or cfg.sigmas)[0]
    result = measure(cfg, method, base, sigma, args.images, args.slow_images or args.images)
    text = report(result, cfg, method, base, sigma, args.command_line)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "perf.md").write_text(text)
    print(text)


def pretrain(args) -> None:
    from benchmark.bases import base_spec
    from benchmark.bases.pretrained import Pretrained
    from benchmark.files import read_json
    from benchmark.run.plan import base_config
    from benchmark.run.session import Session
    from benchmark.run.store import INFO

    cfg = build_run_config(args.suite, overrides(args) | {"methods": ["vanilla"]})
    session = Session(cfg)
    # bases the suite trains itself; a timm base only when it is set to fine-tune on clean data first
    names = [b for b in cfg.bases
             if isinstance(base_spec(b), Pretrained) and base_config(cfg, b).train.epochs > 0]  # fmt: skip
    if not names:
        raise BenchmarkError(f"suite {cfg.suite!r} has no base that the suite trains itself (e.g. small_cnn)")
    for name in names:
        session.build_base(name)
        slot = base_spec(name).fit_slot(base_config(cfg, name), session.dataset, cfg.seed)
        info_path = session.store.cache_path(*slot, kind="bases") / INFO
        info = read_json(info_path) or {}
        print(f"{name}: clean accuracy {info['clean_accuracy']:.4f}, fit {info['fit']['time_s']:.1f} s, "
              f"{info['params']:,} parameters -> {info_path.parent}")  # fmt: skip


def preview_denoised(args) -> None:
    """A PNG grid per denoiser of the suite: clean, noisy and denoised images at each sigma, as fitted for the rows
    (published or cached fits of either precision; fitted only where neither has one)."""
    import torch

    from benchmark.config.registry import METHODS
    from benchmark.data.datasets import subset_indices
    from benchmark.files import safe_name
    from benchmark.report.previews import denoised_preview
    from benchmark.run.measure import is_denoiser
    from benchmark.run.session import Session

    if not args.suite:
        raise BenchmarkError("preview-denoised needs --suite NAME")
    values = overrides(args) | {"results": None}
    cfg = build_run_config(args.suite, values)
    names = [m for m in METHODS.resolve(values["methods"] or cfg.methods) if is_denoiser(METHODS.get(m))]
    if not names:
        raise BenchmarkError(f"no denoiser among the methods of suite {cfg.suite!r}: name one with --methods")
    session = Session(cfg)
    # The preview denoises in fp32 whatever the fit's precision, so a denoiser fitted under the other precision
    # (say bf16 on another machine, then published) is shown rather than fitted again here.
    other = Session(build_run_config(args.suite, values | {"precision": "fp32" if session.precision == "bf16" else "bf16"}))
    data = session.eval_data()
    picked = subset_indices(len(data), cfg.start, cfg.skip, args.images, cfg.seed)
    images = torch.stack([data[i][0] for i in picked]).to(session.device)
    base = cfg.bases[0]
    for name in names:
        methods, sources = {}, []
        for sigma in cfg.sigmas:
            for s in (session, other):
                if (method := s.stored(s.cell(name, base, sigma))) is not None:
                    break
            else:
                s, method = session, session.fit(session.cell(name, base, sigma))[0]
            methods[sigma] = method
            sources.append(f"{sigma:g}: {s.precision}")
        path = Path(args.out or "leaderboards") / safe_name(cfg.suite) / f"denoised_{name}.png"
        title = f"{cfg.suite}: what {base} sees through {name}"
        if methods[cfg.sigmas[0]].needs_fit():
            title += f" (fits by sigma, {'; '.join(sources)})"
        denoise = lambda z, s, methods=methods: methods[s].denoise(z, s)  # noqa: E731
        print(denoised_preview(images, denoise, cfg.sigmas, path, title, cfg.seed))


def list_entries(args) -> None:
    from benchmark.config.registry import BASES, DATASETS, METHODS

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
    from benchmark.run.store import FitStore

    results = Path(args.results)
    if not results.is_dir():
        raise BenchmarkError(f"no results directory {results}: pass --results")
    lines = FitStore(Path(args.cache_dir)).publish(results, args.suite, int(args.max_mb * 2**20))
    print("\n".join(lines) if lines else f"no fitted runs under {results}")


def recount(args) -> None:
    from benchmark.run.maintenance import recount as recount_runs

    cfg = build_run_config(args.suite, overrides(args))
    if not Path(cfg.results).is_dir():
        raise BenchmarkError(f"no results directory {cfg.results}: pass --results")
    lines = recount_runs(cfg)
    print("\n".join(lines) if lines else f"nothing to correct in the {cfg.suite} run.json files")


def migrate(args) -> None:
    from benchmark.run.migrate import migrate as migrate_runs

    results = Path(args.results)
    if not results.is_dir():
        raise BenchmarkError(f"no results directory {results}: pass --results")
    lines = migrate_runs(results)
    print("\n".join(lines) if lines else f"every run under {results} is in today's schema")


def import_tsv(args) -> None:
    from benchmark.run.interop import import_tsv as read_tsv

    print(read_tsv(
        Path(args.file), method=args.method, sigma=args.sigma, suite=args.suite, results=Path(args.results),
        base=args.base, dataset=args.dataset, n0=args.n0, n=args.n, alpha=args.alpha, fresh=args.fresh,
    ))  # fmt: skip


def export_tsv(args) -> None:
    from benchmark.run.interop import export_tsv as write_tsv

    print(write_tsv(Path(args.results), suite=args.suite, method=args.method, sigma=args.sigma,
                    out=Path(args.output), base=args.base))  # fmt: skip
