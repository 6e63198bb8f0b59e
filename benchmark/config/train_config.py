"""The settings of the one training loop (:func:`benchmark.train.fit`): a method's or base's ``train`` config."""

from __future__ import annotations

from dataclasses import dataclass

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "step", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of the shared loop.

    Attributes:
        epochs: passes over the training set.
        batch_size: images per step.
        optimizer: "sgd" (with momentum), "adam" or "adamw".
        lr: peak learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        weight_decay: L2 / decoupled weight decay.
        schedule: "cosine" (to 0), "step" (x ``gamma`` every ``step_epochs``) or "constant".
        step_epochs: step schedule period.
        gamma: step schedule factor.
        warmup_epochs: linear warm-up length (fractions allowed).
        grad_clip: clip the gradient norm to this (None: no clipping).
        max_steps_per_epoch: cap on steps per epoch (None: the whole training set), for CPU-scale budgets.
        augment: apply the dataset's training augmentation (crops and flips on CIFAR).
    """

    epochs: int = 1
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"
    step_epochs: int = 30
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    grad_clip: float | None = None
    max_steps_per_epoch: int | None = None
    augment: bool = True

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("train: epochs must be >= 0, batch_size >= 1 and lr > 0")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"train.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
