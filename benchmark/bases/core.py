"""The base-classifier interface: normalise-first wrapper, build context, spec and name lookup."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.certificates.device import Precision
from benchmark.data.datasets import DatasetSpec


class FitCache(Protocol):
    """What building a base needs of the fit store (:class:`benchmark.run.store.FitStore` is one): a cache folder
    and get-or-fit of a state by name and hash. Bases sit below the run, so they name the part they use."""

    cache_dir: Path

    def get_or_fit(self, name: str, fhash: str, fit_fn: Any, device: Any = "cpu", kind: str = "fits") -> Any: ...


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel: the first layer of every base, so noise lives in [0, 1] pixel space."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BaseClassifier(nn.Module):
    """``net(normalize(resize(x)))`` for images ``x`` in [0, 1].

    Attributes:
        net: the architecture proper (PEFT methods target its layers).
        family: "cnn" or "vit", so methods know which layers to adapt.
        input_size: side the net expects; other sizes are resized bicubically after the noise (as in Carlini et
            al. 2023, who upsample CIFAR-10 to 224 for a ViT-B/16).
    """

    def __init__(self, net: nn.Module, mean, std, family: str, input_size: int | None = None):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.family = family
        self.input_size = input_size

    def forward(self, x: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """``net`` in place of ``self.net`` (e.g. a prompted ViT's inner model without its prompts)."""
        if self.input_size is not None and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bicubic", antialias=True)
        return (self.net if net is None else net)(self.normalize(x))


@dataclass(frozen=True)
class BuildContext:
    """What building a base may need besides its config.

    Attributes:
        device: where the base lives.
        store: the fit store, where bases the suite trains itself are cached (None: such bases cannot be built).
        data_root: dataset location, for bases trained on it.
        download: let torchvision fetch a missing dataset.
        precision: the run's precision (a base the suite trains itself trains under its autocast).
        seed: root seed of training.
    """

    device: torch.device
    store: FitCache | None = None
    data_root: Path | None = None
    download: bool = False
    precision: Precision = Precision.FP32
    seed: int = 0


class BaseSpec:
    """Interface of a base-model entry: a frozen ``Config`` and ``build(config, dataset, ctx)``."""

    name: str
    version: int = 1

    @dataclass(frozen=True)
    class Config:
        pass

    def build(self, config, dataset: DatasetSpec, ctx: BuildContext) -> BaseClassifier:
        raise NotImplementedError

    def stored_slot(self, config, dataset: str, seed: int) -> tuple[str, str] | None:
        """The (name, hash) under which the fit store keeps this base's weights when the suite trains it (kind
        ``bases``), from a run's recorded base config, dataset name and seed; None for weights from elsewhere."""
        return None
