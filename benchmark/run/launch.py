"""Starting ``run``: the checks made before hours of certification, and a start by torchrun (this process' rank,
its share of the images and its GPU, and the process group the ranks meet in at the end)."""

from __future__ import annotations

import contextlib
import datetime
import os

import torch.distributed as dist

from benchmark.certificates.registry import certifier_for
from benchmark.config.registry import METHODS
from benchmark.config.run_config import RunConfig
from benchmark.errors import BenchmarkError
from benchmark.run.maintenance import dry_run
from benchmark.run.provenance import check_clean
from benchmark.run.runner import Runner, check_shard


def ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) of a process started by torchrun (from its environment), else (0, 1, 0)."""
    return tuple(int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))


def rank_shard(shard: tuple[int, int] | None, rank: int, world: int) -> tuple[int, int]:
    """Under torchrun each rank certifies every ``world``-th image into its own records file."""
    if shard:
        raise BenchmarkError("--shard and torchrun both split the images: use one of them")
    return rank, world


def rank_device(device: str, local: int) -> str:
    """One GPU per rank: plain ``cuda`` becomes this rank's ``cuda:<local rank>``."""
    return f"cuda:{local}" if device == "cuda" else device


def refuse_certificate(methods: list[str], certify: str | None) -> None:
    """A run-level certificate asked for on the command line is refused for a method named there that certifies with
    its own (a cascade); with ``--methods all`` or a suite's own ``certify``, such a method simply keeps its own."""
    if certify is not None:
        for name in methods:
            if name in METHODS:
                certifier_for(METHODS.get(name).Config(), certify, name)


def require_methods(cfg: RunConfig) -> None:
    if not cfg.methods:
        raise BenchmarkError(f"suite {cfg.suite!r} names no methods: pass --methods all or a comma list")


def plan_lines(cfg: RunConfig, fresh: bool, shard: tuple[int, int] | None) -> list[str]:
    """``run --dry-run``: the shard checked as a run checks it, then :func:`benchmark.run.maintenance.dry_run`."""
    check_shard(shard, fresh)
    return dry_run(cfg, fresh=fresh, shard=shard)


@contextlib.contextmanager
def process_group(world: int, device: str):
    """torch.distributed's default group for a torchrun start (gloo on CPU, nccl on GPU), else None. Ranks meet only
    at the end, so the timeout is a day: a rank may finish hours before another."""
    if world <= 1:
        yield None
        return
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=datetime.timedelta(days=1))
    try:
        yield dist
    finally:
        dist.destroy_process_group()


def certify_suite(
    cfg: RunConfig, fresh: bool, progress: bool, shard: tuple[int, int] | None, allow_dirty: bool, world: int
) -> None:
    """Fit and certify ``cfg``'s runs (refused for a published suite on uncommitted code unless ``allow_dirty``);
    under torchrun every rank returns once all are done, so the tables that follow read every rank's records."""
    check_clean(cfg.suite, allow_dirty)
    with process_group(world, cfg.device) as group:
        Runner(cfg, fresh=fresh, progress=progress, shard=shard, allow_dirty=allow_dirty).run()
        if group is not None:
            group.barrier()
