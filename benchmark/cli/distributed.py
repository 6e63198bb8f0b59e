"""A run started by torchrun: this process' rank, and the process group the ranks meet in at the end."""

from __future__ import annotations

import contextlib
import os


def ranks() -> tuple[int, int, int]:
    """(rank, world size, local rank) of a process started by torchrun (from its environment), else (0, 1, 0)."""
    return tuple(int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)))


@contextlib.contextmanager
def process_group(world: int, device: str):
    """torch.distributed's default group for a torchrun start (gloo on CPU, nccl on GPU), else None. Ranks meet only
    at the end, so the timeout is a day: a rank may finish hours before another."""
    if world <= 1:
        yield None
        return
    import datetime

    import torch.distributed as dist

    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=datetime.timedelta(days=1))
    try:
        yield dist
    finally:
        dist.destroy_process_group()
