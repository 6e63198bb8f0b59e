"""``vanilla``: the clean-pretrained base classifier smoothed as it is, with nothing adapted to noise.

The lower reference of the field: Salman et al. (2020), Table 1, "no denoiser" rows (CIFAR-10 ResNet-110: 7% at
r = 0.25). Nothing is trained or frozen beyond the base itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from benchmark.method import Method


class Vanilla(Method):
    name = "vanilla"
    summary = "nothing: the clean base smoothed as is"
    paper = 'Salman et al. 2020, "no denoiser" rows'
    family = "baseline"  # version: the interface's default, 1

    @dataclass(frozen=True)
    class Config:
        @classmethod
        def tiny(cls):
            return cls()

    def noisy_classifier(self, sigma: float) -> nn.Module:
        return self.base.eval()
