"""The white-box PEFT family's shared part: its settings, the base classifier's head, and a method base class that
freezes the base, trains the head and normalisation layers when asked, re-estimates or freezes the batch-norm
statistics, and trains with the Gaussian-augmentation loss.

The methods (LoRA, prompt, adapter), the paper and the sources of the defaults are in
:mod:`methods.peft_smoothing`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.bases import BaseClassifier
from benchmark.certificates.smoothing import add_noise
from benchmark.config.train_config import TrainConfig
from benchmark.method import Method

BN_STATS = ("reestimate", "frozen")


@dataclass(frozen=True)
class PEFTConfig:
    """Settings of the white-box PEFT family (each entry reads the fields of its own kind).

    Attributes:
        lora_rank: LoRA rank r (FT-CADIS: 4).
        lora_alpha: LoRA scaling numerator (FT-CADIS: 4; scale = alpha / r).
        vpt_tokens: prompt tokens per layer (VPT: 10 on most VTAB tasks... chosen per task there).
        vpt_deep: a prompt per transformer block (VPT-deep) rather than the first block only (VPT-shallow).
        pad_prompt: width in pixels of the CNN padding prompt (Bahng et al. 2022: 30 on 224 px).
        adapter_dim: bottleneck width of the adapters (Houlsby et al. 2019 use 8-256; 8 here).
        train_head: also train the classification head.
        train_norm: also train the affine scale and shift of every normalisation layer (batch norm in a CNN,
            layer norm in a ViT; BitFit-like, about 0.5 % of ResNet-20).
        bn_stats: "reestimate" (batch-norm running statistics follow the noisy training data) or "frozen".
        train: optimisation settings of the shared loop.
    """

    lora_rank: int = 4
    lora_alpha: float = 4.0
    vpt_tokens: int = 10
    vpt_deep: bool = True
    pad_prompt: int = 4
    adapter_dim: int = 8
    train_head: bool = True
    train_norm: bool = False
    bn_stats: str = "reestimate"
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=4, batch_size=128, optimizer="adamw", lr=2e-3, weight_decay=0.0)
    )

    def __post_init__(self):
        if self.bn_stats not in BN_STATS:
            raise ValueError(f"bn_stats must be one of {BN_STATS}, got {self.bn_stats!r}")
        if min(self.lora_rank, self.vpt_tokens, self.adapter_dim) < 1 or self.pad_prompt < 1:
            raise ValueError("lora_rank, vpt_tokens, adapter_dim and pad_prompt must be >= 1")

    @classmethod
    def tiny(cls):
        train = TrainConfig(epochs=1, batch_size=32, optimizer="adamw", lr=1e-3, max_steps_per_epoch=3)
        return cls(lora_rank=2, vpt_tokens=2, adapter_dim=2, pad_prompt=1, train=train)


def head_of(net: nn.Module) -> nn.Module:
    """The final classification layer of a base's network (timm ``head``, CIFAR ResNet ``linear``, or last)."""
    if hasattr(net, "get_classifier"):
        return net.get_classifier()
    if isinstance(getattr(net, "linear", None), nn.Linear):
        return net.linear
    return [m for m in net.modules() if isinstance(m, nn.Linear)][-1]


class _WhiteBoxPEFT(Method):
    """Shared machinery: freezing, head and batch-norm handling, Gaussian-augmentation loss."""

    version = 1
    Config = PEFTConfig
    family = "peft"

    def __init__(self, config: PEFTConfig, base: BaseClassifier, ctx):
        super().__init__(config, base, ctx)
        base.requires_grad_(False)
        # the noisy classifier: the base with the PEFT modules inside it or in front of it
        self.model = self.attach(base).to(ctx.device)
        if config.train_head:
            head_of(base.net).requires_grad_(True)
        if config.train_norm:
            for m in base.net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm | nn.LayerNorm | nn.GroupNorm):
                    m.requires_grad_(True)

    def attach(self, base: BaseClassifier) -> nn.Module:
        raise NotImplementedError

    def fit_module(self) -> nn.Module:
        return self.model

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def train_mode(self) -> None:
        # Dropout stays off (the base was never trained with it here); batch norm follows the option.
        self.model.eval()
        if self.config.bn_stats == "reestimate":
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train()

    def training_loss(self, batch, sigma, generator):
        x, y = batch
        return F.cross_entropy(self.model(add_noise(x, sigma, generator)), y)

    def noisy_classifier(self, sigma: float) -> nn.Module:
        return self.model.eval()

    def fit_state(self) -> dict[str, torch.Tensor]:
        state = super().fit_state()
        if self.config.bn_stats == "frozen":  # unchanged buffers need not be stored per sigma
            state = {k: v for k, v in state.items() if k in {n for n, _ in self._trainable_named()}}
        return state

    def _trainable_named(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def report(self, sigma: float) -> dict:
        notes = {"bn_stats": self.config.bn_stats if self._has_bn() else "none", "train_head": self.config.train_head}
        return {**notes, "train_norm": True} if self.config.train_norm else notes

    def _has_bn(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())
