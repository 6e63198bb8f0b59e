"""The one training loop: optimizer, schedule, optional bf16 autocast, per-epoch checkpoint and resume.

Every method that trains something (full fine-tuning, PEFT modules, denoisers, the suite's own base models)
goes through :func:`fit` with its own loss hook; nothing else in the project steps an optimizer. Data order,
augmentation and noise of epoch ``e`` come from generators seeded by ``(seed, e)``, so a run resumed from its
checkpoint ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from benchmark.config.train_config import TrainConfig
from benchmark.data.datasets import UInt8Images
from benchmark.errors import BenchmarkError
from benchmark.files import write_atomic

LossFn = Callable[[tuple[torch.Tensor, torch.Tensor], torch.Generator], torch.Tensor]


@dataclass
class FitResult:
    """What a fit cost and how it ended."""

    time_s: float
    steps: int
    epochs: int
    final_loss: float
    resumed_from_epoch: int
    loss_history: list[float] = field(default_factory=list)  # mean training loss of every epoch


def epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([int(seed), 7919, int(epoch)]).generate_state(1, dtype=np.uint64)[0] >> 1)


@contextlib.contextmanager
def seeded_init(seed: int, key: str) -> Iterator[None]:
    """Draw every module initialisation in the block (LoRA, adapters, prompts, denoisers, a base trained here) from
    torch's global generator seeded by ``(seed, key)`` (``key``: the fit's hex hash), and leave that generator as
    it was: the same configuration on the same machine then starts, and so ends, at the same state."""
    mixed = np.random.SeedSequence([int(seed), 104729, int(key, 16)]).generate_state(1, dtype=np.uint64)[0] >> 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(mixed))
        yield


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on ``device`` when asked for (a no-op context otherwise)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


def _make_optimizer(params: Sequence[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _lr_factor(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    epoch_f = step / steps_per_epoch
    if cfg.warmup_epochs > 0 and epoch_f < cfg.warmup_epochs:
        return (step + 1) / (cfg.warmup_epochs * steps_per_epoch)
    if cfg.schedule == "cosine":
        total = cfg.epochs * steps_per_epoch
        warm = cfg.warmup_epochs * steps_per_epoch
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1.0, total - warm)))
    if cfg.schedule == "step":
        return cfg.gamma ** int(epoch_f // cfg.step_epochs)
    return 1.0


def _batches(data: Dataset, cfg: TrainConfig, perm: torch.Tensor):
    """Yield (x, y) batches in the order ``perm``; in-memory datasets are gathered directly, others loaded."""
    if isinstance(data, UInt8Images):
        for i in range(0, len(perm), cfg.batch_size):
            yield data.batch(perm[i : i + cfg.batch_size])
    elif hasattr(data, "tensors"):
        x_all, y_all = data.tensors
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            yield x_all[idx], y_all[idx]
    else:
        workers = min(4, os.cpu_count() or 1)
        yield from DataLoader(data, batch_size=cfg.batch_size, sampler=perm.tolist(), num_workers=workers)


@dataclass
class _Progress:
    """What a checkpoint carries over an interruption: epochs done, their time, the last and every epoch's loss."""

    epoch: int = 0
    time_s: float = 0.0
    loss: float = float("nan")
    history: list[float] = field(default_factory=list)


def _resume(checkpoint: Path | None, module: nn.Module, optimizer: torch.optim.Optimizer, device) -> _Progress:
    """Load ``checkpoint`` (when it exists) into ``module`` and ``optimizer`` and return its progress."""
    if checkpoint is None or not checkpoint.is_file():
        return _Progress()
    try:
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        progress = _Progress(int(state["epoch"]), float(state["time_s"]), float(state["loss"]))
    except Exception as err:  # noqa: BLE001 - unpickling, a missing key or a shape mismatch: one line for all
        raise BenchmarkError(
            f"training checkpoint {checkpoint} is unreadable or not this fit's ({type(err).__name__}): delete it "
            "to start that fit over"
        ) from None
    progress.history = [float(v) for v in state.get("loss_history", [progress.loss])]  # older: the last only
    return progress


def _save_checkpoint(checkpoint: Path, module: nn.Module, optimizer: torch.optim.Optimizer, progress: _Progress):
    state = {
        "module": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": progress.epoch,
        "time_s": progress.time_s,
        "loss": progress.loss,
        "loss_history": torch.tensor(progress.history, dtype=torch.float64),
    }
    write_atomic(checkpoint, lambda tmp: torch.save(state, tmp))


def _schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, start_epoch: int):
    """The LR schedule, replayed to the first step of ``start_epoch`` (a pure function of the step: exact resume)."""
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(cfg, s, steps_per_epoch))
    with warnings.catch_warnings():  # replaying the schedule before any optimizer step is intended here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(start_epoch * steps_per_epoch):
            scheduler.step()
    return scheduler


@dataclass
class _Stepper:
    """One optimisation step (augment, forward under autocast, backward, clip, update): the batch's loss and size."""

    params: list[nn.Parameter]
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    cfg: TrainConfig
    device: torch.device
    bf16: bool
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> tuple[float, int]:
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.cfg.augment and self.augment is not None:
            x = self.augment(x, gen)
        with autocast(self.device, self.bf16):
            loss = self.loss_fn((x, y), gen)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach()), len(x)


def _train_epoch(step: _Stepper, data: Dataset, epoch: int, seed: int, steps_per_epoch: int, desc: str):
    """One epoch, its data order and noise seeded by ``(seed, epoch)``: its mean training loss and steps taken."""
    cpu_gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    gen = torch.Generator(device=step.device).manual_seed(epoch_seed(seed, epoch))
    perm = torch.randperm(len(data), generator=cpu_gen)[: steps_per_epoch * step.cfg.batch_size]
    running, count, steps = 0.0, 0, 0
    bar = tqdm(total=steps_per_epoch, desc=desc, leave=False, unit="step", disable=None)
    for x, y in _batches(data, step.cfg, perm):
        loss, n = step(x, y, gen)
        steps += 1
        running += loss * n
        count += n
        bar.update(1)
        bar.set_postfix(loss=f"{running / count:.4f}")
    bar.close()
    return running / max(count, 1), steps


def fit(
    module: nn.Module,
    params: Sequence[nn.Parameter],
    loss_fn: LossFn,
    data: Dataset,
    cfg: TrainConfig,
    *,
    device: torch.device,
    bf16: bool = False,
    seed: int = 0,
    checkpoint: Path | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    train_mode: Callable[[], None] | None = None,
    desc: str = "fit",
) -> FitResult:
    """Minimise ``loss_fn`` over ``params`` for ``cfg.epochs`` epochs of ``data``.

    Args:
        module: everything whose state must survive an interruption (its ``state_dict`` is checkpointed).
        params: the parameters to optimise; all others should have ``requires_grad=False``.
        loss_fn: ``(batch on device, generator) -> scalar loss``; the method's hook (noise, objective).
        data: training set of ``(image in [0,1], label)``.
        cfg: optimisation settings.
        device: where to train.
        bf16: run forward passes under bf16 autocast.
        seed: root seed; epoch ``e`` uses generators seeded by ``(seed, e)``.
        checkpoint: file for per-epoch checkpoints; an existing one is resumed from.
        augment: batch augmentation ``(x, generator) -> x`` (applied when ``cfg.augment``).
        train_mode: puts the right submodules in train mode (default ``module.train()``).
        desc: progress-bar label.

    Returns:
        A :class:`FitResult`; ``module`` is left in eval mode with the trained weights.
    """
    params = _trainable(params, data, desc)
    optimizer = _make_optimizer(params, cfg)
    n_batches = math.ceil(len(data) / cfg.batch_size)
    steps_per_epoch = min(n_batches, cfg.max_steps_per_epoch or n_batches)
    progress = _resume(checkpoint, module, optimizer, device)
    start_epoch, steps = progress.epoch, progress.epoch * steps_per_epoch
    scheduler = _schedule(optimizer, cfg, steps_per_epoch, start_epoch)
    step = _Stepper(params, loss_fn, optimizer, scheduler, cfg, device, bf16, augment)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        (train_mode or module.train)()
        label = f"{desc} epoch {epoch + 1}/{cfg.epochs}"
        progress.loss, taken = _train_epoch(step, data, epoch, seed, steps_per_epoch, label)
        steps += taken
        progress.history.append(progress.loss)
        progress.epoch, progress.time_s = epoch + 1, progress.time_s + (time.perf_counter() - t0)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, module, optimizer, progress)
    module.eval()
    return FitResult(progress.time_s, steps, cfg.epochs, progress.loss, start_epoch, progress.history)


def _trainable(params: Sequence[nn.Parameter], data: Dataset, desc: str) -> list[nn.Parameter]:
    """The parameters to step, refusing the splits that are reported or chosen on, and an empty set."""
    if getattr(data, "split", None) in ("test", "val"):  # what is reported, or what recipes are chosen on
        raise BenchmarkError(f"{desc}: fitting on the {data.split} split is refused; fit on train (or tune_train)")
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError(f"{desc}: nothing to train (no parameter requires grad)")
    return params
