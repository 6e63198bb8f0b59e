"""Small CNN / ViT bases that the suite trains itself on clean data, through the shared loop and the fit store
(resumable per epoch, cached by config hash with clean test accuracy, parameter count and training time)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.bases.core import BaseClassifier, BaseSpec, BuildContext
from benchmark.certificates.device import Precision
from benchmark.config.hashing import config_hash, to_jsonable
from benchmark.config.train_config import TrainConfig
from benchmark.data.datasets import DatasetSpec
from benchmark.errors import BenchmarkError
from benchmark.files import now
from benchmark.train import autocast, fit, seeded_init


@dataclass(frozen=True)
class PretrainConfig:
    """A small base trained by the suite on the clean training split.

    Attributes:
        width: channels (CNN) or embedding width (ViT).
        depth: conv stages (CNN) or transformer blocks (ViT).
        patch_size: ViT patch side.
        heads: ViT attention heads (None: width // 16).
        mlp_ratio: ViT MLP width as a multiple of ``width``.
        label_smoothing: cross-entropy label smoothing.
        train: optimisation settings for the shared loop.
    """

    width: int = 32
    depth: int = 3
    patch_size: int = 2
    heads: int | None = None
    mlp_ratio: float = 2.0
    label_smoothing: float = 0.0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, optimizer="adam", lr=3e-3))


class Pretrained(BaseSpec):
    """A base whose weights come from training it here, on clean data (``train.epochs`` > 0)."""

    Config = PretrainConfig
    family: str

    def architecture(self, config, dataset: DatasetSpec) -> nn.Module:
        raise NotImplementedError

    def make_model(self, config, dataset: DatasetSpec) -> BaseClassifier:
        return BaseClassifier(self.architecture(config, dataset), dataset.mean, dataset.std, self.family)

    def fit_slot(self, config, dataset: DatasetSpec, seed: int) -> tuple[str, str]:
        """The (name, hash) of this base's training in the fit store (kind ``bases``)."""
        return self.stored_slot(config, dataset.name, seed)

    def stored_slot(self, config, dataset: str, seed: int) -> tuple[str, str]:
        key = {"base": self.name, "version": self.version, "config": config, "dataset": dataset, "seed": seed}
        return f"{self.name}-{dataset}", config_hash(key)

    def build(self, config, dataset: DatasetSpec, ctx: BuildContext) -> BaseClassifier:
        if ctx.store is None:
            raise BenchmarkError(f"{self.name} is trained by the suite: building it needs a fit store (a cache dir)")
        model = self.make_model(config, dataset)
        name, fhash = self.fit_slot(config, dataset, ctx.seed)
        stored = ctx.store.get_or_fit(
            name, fhash, lambda d: self.pretrain(config, dataset, ctx, d), ctx.device, kind="bases"
        )
        try:
            model.load_state_dict(stored.state)
        except RuntimeError as err:
            raise stored.damaged(f"does not fit {self.name} ({str(err).splitlines()[0][:120]})") from None
        return model.to(ctx.device).eval()

    def pretrain(self, config, dataset: DatasetSpec, ctx: BuildContext, directory: Path) -> tuple[dict, dict]:
        """Train this base on clean data (resumable from ``directory``); its weights and a report of accuracy and
        cost, for the store to save."""
        with seeded_init(ctx.seed, directory.name):  # the store's directory is named by the fit hash
            model = self.make_model(config, dataset).to(ctx.device)
        train_set = dataset.load("train", ctx.data_root, ctx.store.cache_dir, ctx.download)

        def loss_fn(batch, generator):
            x, y = batch
            return F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)

        result = fit(
            model,
            list(model.parameters()),
            loss_fn,
            train_set,
            config.train,
            device=ctx.device,
            bf16=ctx.precision == Precision.BF16,
            seed=ctx.seed,
            checkpoint=directory / "checkpoint.pt",
            augment=dataset.augment,
            desc=f"pretrain {self.name}",
        )
        test_set = dataset.load("test", ctx.data_root, ctx.store.cache_dir, ctx.download)
        info = {
            "base": self.name,
            "dataset": dataset.name,
            "config": to_jsonable(config),
            "seed": ctx.seed,
            "clean_accuracy": clean_accuracy(model, test_set, ctx.device, ctx.precision == Precision.BF16),
            "params": sum(p.numel() for p in model.parameters()),
            "fit": dataclasses.asdict(result),
            "finished": now(),
        }
        return model.state_dict(), info


@torch.no_grad()
def clean_accuracy(model: nn.Module, data, device: torch.device, bf16: bool, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on clean ``data``."""
    model.eval()
    correct = 0
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
    for x, y in loader:
        with autocast(device, bf16):
            correct += int((model(x.to(device)).argmax(1).cpu() == y).sum())
    return correct / len(data)


class SmallCNN(Pretrained):
    """A small VGG-style CNN (conv-BN-ReLU stages, each halving the resolution after the first)."""

    name = "small_cnn"
    family = "cnn"

    def architecture(self, config: PretrainConfig, dataset: DatasetSpec) -> nn.Module:
        layers: list[nn.Module] = []
        in_ch = dataset.image_shape[0]
        for i in range(config.depth):
            out_ch = config.width * 2 ** min(i, 2)
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]
            if 0 < i < config.depth - 1:
                layers.append(nn.MaxPool2d(2))
            in_ch = out_ch
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, dataset.num_classes)]
        return nn.Sequential(*layers)


class SmallViT(Pretrained):
    """A small timm VisionTransformer (pre-norm blocks, class token), sized by ``width``/``depth``/``patch_size``."""

    name = "small_vit"
    family = "vit"

    def architecture(self, config: PretrainConfig, dataset: DatasetSpec) -> nn.Module:
        from timm.models.vision_transformer import VisionTransformer

        channels, side, _ = dataset.image_shape
        return VisionTransformer(
            img_size=side,
            patch_size=config.patch_size,
            in_chans=channels,
            num_classes=dataset.num_classes,
            embed_dim=config.width,
            depth=config.depth,
            num_heads=config.heads or max(1, config.width // 16),
            mlp_ratio=config.mlp_ratio,
        )
