"""The subcommands that attack: ``audit`` (certificates) and ``attack`` (empirical robustness)."""

from __future__ import annotations

from pathlib import Path

from benchmark.cli.commands import out_dir, overrides
from benchmark.config.run_config import build_run_config
from benchmark.config.suite import snapshot
from benchmark.evaluate.attack import attack_settings, attack_suite
from benchmark.evaluate.audit import audit_settings, audit_suite
from benchmark.files import check_writable
from benchmark.report.leaderboard import write_attack_pages
from benchmark.run.provenance import check_clean


def audit(args) -> None:
    """The certificate audit of :mod:`benchmark.evaluate.audit` over the ranked runs of the methods named."""
    values = overrides(args)
    # a run setting; the audit's own --max-images counts certified images
    cfg = build_run_config(args.suite, values | {"max_images": None})
    check_clean(cfg.suite, args.allow_dirty)
    check_writable(out_dir(args, cfg.results), "--out", "page directory")  # before any work, not after it
    settings = audit_settings(args.steps, args.samples, args.predict_n, args.predict_alpha)
    for line in audit_suite(cfg, values["methods"], args.max_images, settings):
        print(line)
    write_attack_pages(
        Path(cfg.results), out_dir(args, cfg.results), snapshot(cfg.suite), "python -m benchmark leaderboard"
    )


def attack(args) -> None:
    """Clean and PGD accuracy of each method named (see :mod:`benchmark.evaluate.attack`)."""
    values = overrides(args)
    # sigma 0 (no smoothing) is allowed here, so --sigma is checked by attack_suite, not validated as run's
    cfg = build_run_config(args.suite, values | {"sigmas": None})
    check_clean(cfg.suite, args.allow_dirty)
    check_writable(out_dir(args, cfg.results), "--out", "page directory")  # before any work, not after it
    settings = attack_settings(
        args.norm,
        args.eps,
        args.step,
        args.steps,
        args.restarts,
        args.eot,
        args.votes,
        args.non_adaptive,
        args.batch_images,
    )
    for line in attack_suite(cfg, values["methods"], args.sigma, settings):
        print(line)
    write_attack_pages(
        Path(cfg.results), out_dir(args, cfg.results), snapshot(cfg.suite), "python -m benchmark leaderboard"
    )
