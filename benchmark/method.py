"""The method interface: the seam that ``methods/`` and ``baselines/`` implement.

Cohen et al.'s ``Smooth(base_classifier, num_classes, sigma)`` needs only *some* classifier of noisy inputs;
methods differ in how that classifier is built or trained, rarely in how it is certified. A method is
instantiated once per (base, sigma) with its frozen ``Config`` and a private copy of the base, and provides:

* ``noisy_classifier(sigma)`` (required): an ``nn.Module`` mapping noisy images in [0, 1] to logits;
* ``trainable_parameters()`` + ``training_loss(batch, sigma, generator)`` (optional): the shared loop in
  :mod:`benchmark.train` does the rest; ``train_config()`` gives its settings (default ``config.train``);
* ``state_to_save()`` / ``load_saved_state()``: what a fit produced, cached as safetensors by config hash.

Methods never call the runner, the results writer or each other; a method that needs another model (a surrogate
classifier, a denoiser) gets it through :class:`MethodContext`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from benchmark.data import DatasetSpec
from benchmark.models import BaseClassifier
from benchmark.train import TrainConfig


@dataclass
class MethodContext:
    """The harness services a method may use.

    Attributes:
        dataset: the dataset spec (class count, shapes, augmentation).
        device: where to build and train.
        bf16: whether forward passes run under bf16 autocast.
        seed: root seed of the run.
        cache_dir: cache root (methods may cache models independent of the base, e.g. denoisers, under it).
        train_data: returns the clean training split (loaded on first call).
        build_base: builds another base classifier by registry name (e.g. a surrogate), frozen, in eval mode.
        eval_data: returns the clean split being certified (for reports such as denoising error).
        fitted: ``(method name, sigma) -> Method``: another registered method on the same base, fitted or loaded
            from the fit cache (e.g. the MSE denoiser a Stab+MSE denoiser starts from).
    """

    dataset: DatasetSpec
    device: torch.device
    bf16: bool
    seed: int
    cache_dir: Path
    train_data: Callable[[], Dataset]
    build_base: Callable[[str], BaseClassifier]
    eval_data: Callable[[], Dataset] | None = None
    fitted: Callable[[str, float], Method] | None = None


class Method:
    """Base class of every smoothing strategy (see the module docstring for the contract)."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    Config: ClassVar[type]
    # False when the fit never looks at the base (a denoiser trained on images alone): it is then cached once
    # for every base instead of once per base.
    fit_uses_base: ClassVar[bool] = True
    # False when one fit serves every sigma (a diffusion model trained over all noise levels).
    fit_uses_sigma: ClassVar[bool] = True
    # False when the fit computes in fp32 whatever the run's precision (a black-box fit whose SPSA differences
    # bf16 would round away): the loop then runs without autocast and one fitted state serves both precisions.
    fit_uses_precision: ClassVar[bool] = True

    def __init__(self, config, base: BaseClassifier, ctx: MethodContext):
        self.config = config
        self.base = base
        self.ctx = ctx
        # Counted before a subclass adds modules into ``base`` (LoRA, adapters, VPT tokens), so that every method on
        # one base reports its share against the same number: the clean base's own parameters.
        self.base_params = count_parameters(base)

    # -- required ---------------------------------------------------------------------------------------------
    def noisy_classifier(self, sigma: float) -> nn.Module:
        """The classifier f of Cohen et al. that the smoothed classifier votes over: noisy [0,1] images -> logits."""
        raise NotImplementedError

    # -- optional training hooks ------------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the shared loop optimises (empty: nothing is trained)."""
        return []

    def training_loss(self, batch: tuple[torch.Tensor, torch.Tensor], sigma: float, generator: torch.Generator):
        """Scalar loss on a clean batch ``(x in [0,1], y)``; the method draws its own noise from ``generator``."""
        raise NotImplementedError

    def train_config(self) -> TrainConfig:
        return self.config.train

    def set_train_mode(self) -> None:
        """Put the modules being trained in train mode (default: the whole noisy classifier)."""
        self.fitted_module().train()

    def needs_fit(self) -> bool:
        return bool(self.trainable_parameters())

    def fitted_module(self) -> nn.Module:
        """The module whose state a fit changes (checkpointed by the loop, saved after it)."""
        return self.base

    def state_to_save(self) -> dict[str, torch.Tensor]:
        """The tensors a fit produced: trainable parameters and every persistent buffer (batch-norm statistics)."""
        module = self.fitted_module()
        trainable = {id(p) for p in self.trainable_parameters()}
        params = {k: p for k, p in module.named_parameters()}
        return {k: t.detach() for k, t in module.state_dict(keep_vars=True).items()
                if k not in params or id(params[k]) in trainable}  # fmt: skip

    def load_saved_state(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(state) - set(self.fitted_module().state_dict())
        if missing:
            raise ValueError(f"saved state has unknown keys {sorted(missing)[:3]}")
        self.fitted_module().load_state_dict(state, strict=False)

    def describe(self) -> dict:
        """Settings a leaderboard should show beside the numbers (e.g. whether batch-norm statistics adapted)."""
        return {}

    def before_fit(self, sigma: float) -> None:
        """Called once before a fit that is not cached (e.g. to initialise from another fitted method)."""

    def fit_report(self, sigma: float) -> dict:
        """Extra facts about a finished fit, stored with it (e.g. black-box query counts, denoising MSE)."""
        return {}

    def run_report(self, sigma: float) -> dict:
        """Measurements stored with each run at ``sigma`` (e.g. denoising MSE); shown in the leaderboard notes."""
        return {}

    # -- cost accounting --------------------------------------------------------------------------------------
    def cost(self) -> dict:
        """Trainable parameters, their share of the clean base's own parameters (added modules are not counted in
        the denominator, so the share may pass 100 % for a method larger than its base), and the bytes stored per
        sigma."""
        trainable = sum(p.numel() for p in self.trainable_parameters())
        stored = sum(t.numel() * t.element_size() for t in self.state_to_save().values()) if trainable else 0
        return {
            "trainable_params": trainable,
            "base_params": self.base_params,
            "trainable_pct": share_of_base(trainable, self.base_params),
            "stored_bytes": stored,
        }


def count_parameters(module: nn.Module) -> int:
    """Distinct parameters of ``module`` (shared tensors once)."""
    return sum(p.numel() for p in module.parameters())


def share_of_base(trainable: int, base_params: int) -> float:
    """``trainable`` as a percentage of the base's own parameter count (0 for a base without parameters)."""
    return 100.0 * trainable / base_params if base_params else 0.0


# --- Black-box access ---------------------------------------------------------------------------------------


class _NoBackward(torch.autograd.Function):
    """Identity on the logits in the forward pass; any backward pass through the base is an error."""

    @staticmethod
    def forward(ctx, x, logits, counter):
        ctx.counter = counter
        return logits.clone()

    @staticmethod
    def backward(ctx, grad):
        ctx.counter["backward_calls"] += 1
        raise RuntimeError("black-box base: back-propagation through the queried model is not allowed")


class QueryOnly(nn.Module):
    """Wraps a classifier so that it can only be queried: no gradients through it, every image counted."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.counter = {"queries": 0, "backward_calls": 0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.counter["queries"] += len(x)
        with torch.no_grad():
            logits = self.model(x.detach())
        return _NoBackward.apply(x, logits, self.counter)
