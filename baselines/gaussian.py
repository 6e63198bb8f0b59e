"""``gaussian``: Cohen, Rosenfeld & Kolter (ICML 2019), Gaussian noise augmentation.

The whole base classifier is fine-tuned with cross-entropy on ``x + N(0, sigma^2 I)`` at the sigma it is then
certified at (locuslab/smoothing ``code/train.py``: the same sigma for training and certification), starting from
the clean-pretrained weights. Every parameter and batch-norm statistic is trained; nothing is frozen.

Deviation from the paper: Cohen et al. train from scratch for 90 epochs (SGD, lr 0.1, step x0.1 every 30); here
the base is clean-pretrained and only fine-tuned (the setting of this suite), for a few epochs with a cosine
schedule, so the defaults are a fine-tuning recipe (SGD, momentum 0.9, lr 0.01, weight decay 1e-4 as in Cohen
et al.) rather than a from-scratch one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import nn

from benchmark.certificates.smoothing import add_noise
from benchmark.config.train_config import TrainConfig
from benchmark.method import Method


class Gaussian(Method):
    name = "gaussian"
    summary = "the whole base, fine-tuned on Gaussian-noised inputs"
    paper = "Cohen et al. 2019"
    version = 1
    family = "baseline"

    @dataclass(frozen=True)
    class Config:
        """Attributes: train: the fine-tuning recipe (weight decay 1e-4 and momentum 0.9 from Cohen et al.)."""

        train: TrainConfig = field(
            default_factory=lambda: TrainConfig(epochs=5, batch_size=128, optimizer="sgd", lr=0.01, weight_decay=1e-4)
        )

        @classmethod
        def tiny(cls):
            return cls(train=TrainConfig(epochs=1, batch_size=32, lr=0.01, max_steps_per_epoch=3))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.base.parameters())

    def training_loss(self, batch, sigma, generator):
        x, y = batch
        return F.cross_entropy(self.base(add_noise(x, sigma, generator)), y)

    def noisy_classifier(self, sigma: float) -> nn.Module:
        return self.base.eval()
