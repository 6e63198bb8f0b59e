"""The subcommands that attack: ``audit`` (certificates) and ``attack`` (empirical robustness)."""

from __future__ import annotations

from pathlib import Path

from benchmark.cli.commands import build_run_config, check_clean, out_dir, overrides
from benchmark.config.suite import snapshot
from benchmark.errors import BenchmarkError
from benchmark.report.leaderboard import write_attack_pages


def audit(args) -> None:
    """The certificate audit of :mod:`benchmark.evaluate.audit` over the ranked runs of the methods named."""
    from benchmark.config.registry import METHODS
    from benchmark.evaluate.audit import AuditSettings, run_audit

    values = overrides(args)
    values["max_images"] = None  # a run setting; the audit's own --max-images counts certified images
    cfg = build_run_config(args.suite, values)
    check_clean(cfg.suite, args.allow_dirty)
    try:
        settings = AuditSettings(args.steps, args.samples, args.predict_n, args.predict_alpha)
    except ValueError as err:
        raise BenchmarkError(str(err)) from None
    for method in METHODS.resolve(values["methods"]):
        for base in cfg.bases:
            for sigma in cfg.sigmas:
                directory, stats = run_audit(cfg, method, base, sigma, args.max_images, settings)
                print(f"{method} {base} sigma={sigma:g}: {stats['flipped']} of {stats['attacked']} certified images "
                      f"flipped inside their radius (a sound certificate allows {stats['allowed']:.2f} in "
                      f"expectation); mean vote share {stats['mean_p_before']:.3f} -> {stats['mean_p_after']:.3f} "
                      f"-> {directory}")  # fmt: skip
    out = out_dir(args, cfg.results)
    write_attack_pages(Path(cfg.results), out, snapshot(cfg.suite), "python -m benchmark leaderboard")


def attack(args) -> None:
    """Clean and PGD accuracy of each method named (see :mod:`benchmark.evaluate.attack`)."""
    from benchmark.config.registry import METHODS
    from benchmark.evaluate.attack import AttackSettings, run_attack

    values = overrides(args)
    values["sigmas"] = None  # sigma 0 (no smoothing) is allowed here, so --sigma is read below, not validated as run's
    cfg = build_run_config(args.suite, values)
    check_clean(cfg.suite, args.allow_dirty)
    step = args.step
    if step is None:  # ADAPT's 2/255 for 8/255 in linf; Madry et al.'s 2.5 eps / steps in l2
        step = args.eps / 4 if args.norm == "linf" else 2.5 * args.eps / max(1, args.steps)
    try:
        settings = AttackSettings(args.norm, args.eps, step, args.steps, args.restarts, args.eot, args.votes,
                                  args.non_adaptive, args.batch_images)  # fmt: skip
    except ValueError as err:
        raise BenchmarkError(str(err)) from None
    if any(s < 0 for s in args.sigma):
        raise BenchmarkError("--sigma must be >= 0 (0: the classifier without smoothing)")
    for method in METHODS.resolve(values["methods"]):
        for base in cfg.bases:
            for sigma in args.sigma:
                directory, c = run_attack(cfg, method, base, sigma, settings)
                print(f"{method} {base} sigma={sigma:g} {settings.label()}: clean {c['clean']}/{c['images']}, "
                      f"robust {c['robust']}/{c['images']} -> {directory}")  # fmt: skip
    out = out_dir(args, cfg.results)
    write_attack_pages(Path(cfg.results), out, snapshot(cfg.suite), "python -m benchmark leaderboard")
