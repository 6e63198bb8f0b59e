"""The flags of ``run`` (fit and certify), ``pretrain`` (the suite's own bases) and ``list``."""

from __future__ import annotations

from benchmark.certificates.engines import ENGINES
from benchmark.certificates.registry import RUN_CERTIFICATES
from benchmark.cli import commands
from benchmark.cli.args import (
    add_allow_dirty,
    add_bases,
    add_batch_size,
    add_cache_dir,
    add_data_root,
    add_device,
    add_machine_args,
    add_precision,
    add_seed,
    add_sigma,
    shard,
)


def add_run(sub) -> None:
    run = sub.add_parser("run", help="fit and certify methods of a suite; resumes where it stopped")
    run.set_defaults(func=commands.run)
    run.add_argument("--suite", default="quick", help="suite name (benchmark/config/suites/*.toml) or a .toml path")
    run.add_argument("--methods", default=None, help="comma list of methods, or 'all' (default: the suite's)")
    add_bases(run, "comma list of base models (default: the suite's)")
    add_sigma(run, "noise levels, comma separated, e.g. 0.25,0.5")
    run.add_argument("--n0", type=int, default=None, help="selection samples")
    run.add_argument("--n", type=int, default=None, help="estimation samples")
    run.add_argument("--alpha", type=float, default=None, help="failure probability of each certificate")
    run.add_argument(
        "--max-images",
        type=int,
        default=None,
        help="certify at most this many test images (a seeded random sample of the subset, the same for every method)",
    )
    run.add_argument("--skip", type=int, default=None, help="certify every skip-th test image")
    run.add_argument("--start", type=int, default=None, help="first test index")
    add_data_root(run)
    run.add_argument("--download", action="store_true", default=None, help="let torchvision download the data")
    run.add_argument("--results", default=None, help="results directory (default: results/)")
    run.add_argument(
        "--out", default=None, help="leaderboard directory (default: the leaderboards/ folder beside --results)"
    )
    add_cache_dir(run, text="cache of fitted states and bases (default: .cache/)")
    add_device(run)
    add_precision(run)
    add_seed(run)
    add_batch_size(run)
    add_certificate_args(run)
    run.add_argument("--fresh", action="store_true", help="discard existing records of the selected runs")
    run.add_argument(
        "--shard",
        type=shard,
        default=None,
        metavar="K/N",
        help="certify every N-th image from position K (0 <= K < N) into its own records file; "
        "start K = 0..N-1 as N processes (or one per GPU) and they make the whole run",
    )
    run.add_argument("--no-leaderboard", action="store_true", help="do not regenerate the leaderboard afterwards")
    add_allow_dirty(run, "run a published suite with uncommitted code changes (run.json records it)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="only print what would run: per run the images done and left, where its fit comes from "
        "and the time left measured so far; nothing is fitted or written",
    )


def add_certificate_args(p) -> None:
    """Which certificate a run gives and how its forward pass runs (both in the record key)."""
    p.add_argument(
        "--certify",
        default=None,
        choices=RUN_CERTIFICATES,
        help="fixed: CERTIFY with n0 + n samples; the others: the same certificate decided sequentially, stopping "
        "once the suite's radius grid is decided (n is then the most they draw; see README)",
    )
    p.add_argument(
        "--engine",
        default=None,
        choices=ENGINES,
        help="how the noisy classifier runs: eager (default), fold_bn, freeze or compile (part of the record key; "
        "leaderboards/perf.md measures each)",
    )


def add_pretrain(sub) -> None:
    pre = sub.add_parser("pretrain", help="train (or load from cache) the suite's own base models on clean data")
    pre.set_defaults(func=commands.pretrain)
    pre.add_argument("--suite", default="quick")
    add_bases(pre, "comma list (default: the suite's bases that need pretraining)")
    add_machine_args(pre)


def add_list(sub) -> None:
    entries = sub.add_parser("list", help="list methods, base models, datasets and suites")
    entries.set_defaults(func=commands.list_entries)
