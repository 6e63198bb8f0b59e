"""Bases with published clean weights: the CIFAR ResNet-20/56 of He et al. (2016, option A shortcuts) with
Y. Idelbayev's weights, and the small CIFAR ViT of ../shared/models. Files are found in ``weights_dir`` or torch.hub's
cache, downloaded through torch.hub only where a URL is published, and always checked against their full SHA-256."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.bases.core import BaseClassifier, BaseSpec, BuildContext
from benchmark.bases.weights import find_weights, load_state_file
from benchmark.data.datasets import IMAGENET_MEAN, IMAGENET_STD, DatasetSpec
from benchmark.errors import BenchmarkError

# --- CIFAR ResNets (He et al. 2016, Sec. 4.2; option A identity shortcuts) --------------------------------------


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # Option A: subsample by 2 and zero-pad the new channels, so the shortcut has no parameters.
        self.pad = (planes - in_planes) // 2 if stride != 1 or in_planes != planes else 0
        self.stride = stride

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: 3 stages of ``n`` basic blocks with 16/32/64 channels."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for stage, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
            layers = []
            for i in range(blocks_per_stage):
                layers.append(_BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@dataclass(frozen=True)
class PublishedWeightsConfig:
    """Attributes: weights_dir: a folder holding the weight file (checked by SHA-256); None: torch.hub's cache."""

    weights_dir: str | None = None


class _Published(BaseSpec):
    """A CIFAR-10 base built from one published weight file."""

    Config = PublishedWeightsConfig
    family: str
    filename: str
    sha256: str
    url: str | None = None
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def architecture(self) -> nn.Module:
        raise NotImplementedError

    def build(self, config, dataset: DatasetSpec, ctx: BuildContext) -> BaseClassifier:
        if dataset.name != "cifar10":
            raise BenchmarkError(f"{self.name} is a CIFAR-10 model; it cannot serve dataset {dataset.name!r}")
        path = find_weights(self.filename, self.sha256, self.url, config.weights_dir)
        net = self.architecture()
        net.load_state_dict({k.removeprefix("module."): v for k, v in load_state_file(path).items()})
        return BaseClassifier(net, self.mean, self.std, family=self.family).to(ctx.device).eval()


class _PublishedCifarResNet(_Published):
    family = "cnn"
    blocks: int
    # Idelbayev's models were trained with ImageNet statistics (../shared/models/README.md).
    mean, std = IMAGENET_MEAN, IMAGENET_STD

    def architecture(self) -> nn.Module:
        return CifarResNet(self.blocks)


class ResNet20(_PublishedCifarResNet):
    name = "resnet20"
    blocks = 3
    filename = "resnet20-12fca82f.th"
    sha256 = "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"
    url = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet20-12fca82f.th"


class ResNet56(_PublishedCifarResNet):
    name = "resnet56"
    blocks = 9
    filename = "resnet56-4bfd9763.th"
    sha256 = "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367"
    url = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet56-4bfd9763.th"


class ViTTinyP4(_Published):
    """The small CIFAR-10 ViT of ../shared/models (6 blocks, width 192, patch 4; 77.9% clean on the JPEG copy)."""

    name = "vit_tiny_p4"
    family = "vit"
    filename = "vit_tiny_p4-729c4b63.safetensors"
    sha256 = "729c4b63ded3e2a3d25bddbf11767722b02f7b4f4e6759675957d77e5a6ed054"
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    def architecture(self, num_classes: int = 10) -> nn.Module:
        import timm

        return timm.create_model(
            "vit_tiny_patch16_224",
            pretrained=False,
            img_size=32,
            patch_size=4,
            embed_dim=192,
            depth=6,
            num_heads=3,
            mlp_ratio=2.0,
            num_classes=num_classes,
        )
