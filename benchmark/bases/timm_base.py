"""Any timm model by name (``timm:<model>``), with timm's own weights and normalisation; fine-tuned on clean data
first (through the fit store, like the suite's own bases) when its head does not match the dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from benchmark.bases.core import BaseClassifier, BuildContext
from benchmark.bases.pretrained import Pretrained
from benchmark.config.train_config import TrainConfig
from benchmark.data.datasets import DatasetSpec
from benchmark.errors import BenchmarkError


@dataclass(frozen=True)
class TimmConfig:
    """A timm model by name.

    Attributes:
        pretrained: load timm's published weights (needs the hub or a filled Hugging Face cache).
        input_size: side the model expects (None: timm's default for the model); inputs are resized after the noise.
        model_kwargs: extra ``timm.create_model`` arguments (e.g. ``img_size``, ``depth`` for a small random ViT).
        label_smoothing: used when fine-tuning on clean data.
        train: clean fine-tuning of the whole model before any method (epochs = 0: none), for a pretrained model
            whose head does not match the dataset (e.g. an ImageNet-21k ViT-B/16 on CIFAR-10); cached like a
            pretrained base.
    """

    pretrained: bool = True
    input_size: int | None = None
    model_kwargs: dict = field(default_factory=dict)
    label_smoothing: float = 0.0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=0, optimizer="sgd", lr=0.01))


class TimmBase(Pretrained):
    """Any timm model by name, with its own normalisation; the head is replaced when the class count differs."""

    Config = TimmConfig

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.name = f"timm:{model_name}"

    def _net(self, config: TimmConfig, dataset: DatasetSpec) -> nn.Module:
        import timm

        try:
            return timm.create_model(
                self.model_name,
                pretrained=config.pretrained,
                num_classes=dataset.num_classes,
                in_chans=dataset.image_shape[0],
                **config.model_kwargs,
            )
        except RuntimeError as err:
            raise BenchmarkError(f"timm could not build {self.model_name!r}: {err}") from None
        except Exception as err:  # noqa: BLE001 - hub / network failures
            raise BenchmarkError(
                f"timm could not fetch weights for {self.model_name!r} ({type(err).__name__}): put them in the "
                f"Hugging Face cache or set pretrained = false"
            ) from None

    def wrap(self, net: nn.Module, config: TimmConfig, dataset: DatasetSpec) -> BaseClassifier:
        import timm

        data_cfg = timm.data.resolve_data_config({}, model=net)
        family = "vit" if hasattr(net, "blocks") and hasattr(net, "patch_embed") else "cnn"
        # a ViT built with another img_size expects that size, whatever its pretrained_cfg says
        vit_size = getattr(getattr(net, "patch_embed", None), "img_size", None)
        size = config.input_size or (vit_size[-1] if vit_size else data_cfg["input_size"][-1])
        mean, std = data_cfg["mean"], data_cfg["std"]
        if len(mean) != dataset.image_shape[0]:  # e.g. a grey-scale dataset: timm's RGB statistics do not apply
            mean, std = dataset.mean, dataset.std
        return BaseClassifier(net, mean, std, family, size)

    def build(self, config, dataset: DatasetSpec, ctx: BuildContext) -> BaseClassifier:
        if config.train.epochs == 0:
            return self.wrap(self._net(config, dataset), config, dataset).to(ctx.device).eval()
        return super().build(config, dataset, ctx)

    def make_model(self, config, dataset: DatasetSpec) -> BaseClassifier:
        return self.wrap(self._net(config, dataset), config, dataset)
