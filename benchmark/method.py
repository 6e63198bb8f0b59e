"""The method interface: the seam that ``methods/`` and ``baselines/`` implement.

Cohen et al.'s ``Smooth(base_classifier, num_classes, sigma)`` needs only *some* classifier of noisy inputs;
methods differ in how that classifier is built or trained, rarely in how it is certified. A method is
instantiated once per (base, sigma) with its frozen ``Config`` and a private copy of the base, and provides:

* ``noisy_classifier(sigma)`` (required): an ``nn.Module`` mapping noisy images in [0, 1] to logits;
* training hooks (a method with nothing to train has none): ``trainable_parameters()`` and
  ``training_loss(batch, sigma, generator)``; the shared loop in :mod:`benchmark.train` does the rest with the
  settings in ``config.train``. ``fit_module()`` is what a fit changes (checkpointed, and its ``fit_state()`` is
  stored), ``train_mode()`` puts it in training mode, ``before_fit(sigma)`` starts it (e.g. from another method's
  fit, through ``ctx.fit``);
* ``report(sigma)``: the one channel for what a leaderboard shows beside the numbers (settings such as a LoRA rank).

A method is certified by the run's certificate (fixed-n CERTIFY or sequential), unless its ``Config`` names its
own (a class attribute ``certificate``; see :mod:`benchmark.certificates.certifier`): the cascade names
``"cascade"`` and its noise levels, and its ``noisy_classifier(s)`` is the stage at each of them.

A *fit* is the state a method's training produces; the harness keys it by the parts of the run configuration it
depends on (``fit_ignores`` names those it does not: a denoiser trained on images alone ignores the base) and keeps
it in the fit store. Methods never call the runner, the records writer or each other; a method that needs another
model (a surrogate classifier, a denoiser) gets it through :class:`MethodContext`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from benchmark.bases import BaseClassifier
from benchmark.certificates.device import Precision
from benchmark.data.datasets import DatasetSpec
from benchmark.train import FitResult, fit

# What a method's ``family`` may be (plots give each one hue).
FAMILIES = ("baseline", "peft", "denoiser", "adapter", "cascade", "other")


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


_WHITE_BOX = {"depth": 0}


@contextlib.contextmanager
def white_box():
    """The evaluator's access: inside, a :class:`QueryOnly` model passes gradients like any other. Black-box is a
    constraint on how a method is *fitted*; the attacks that evaluate it (``attack``, ``audit``) are white-box and
    differentiate through everything, the base included."""
    _WHITE_BOX["depth"] += 1
    try:
        yield
    finally:
        _WHITE_BOX["depth"] -= 1


class QueryOnly(nn.Module):
    """Wraps a classifier so that it can only be queried: no gradients through it (outside :func:`white_box`), every
    image counted."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.counter = {"queries": 0, "backward_calls": 0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.counter["queries"] += len(x)
        if _WHITE_BOX["depth"]:
            return self.model(x)
        with torch.no_grad():
            logits = self.model(x.detach())
        return _NoBackward.apply(x, logits, self.counter)


@dataclass
class MethodContext:
    """The harness services a method may use.

    Attributes:
        dataset: the dataset spec (class count, shapes, augmentation).
        device: where to build and train.
        seed: root seed of the run.
        build_base: builds another base classifier by registry name (e.g. a surrogate), frozen, in eval mode.
        fit: ``(method name, sigma, settings=None) -> Method``: another registered method on the same base, with its
            fit (from the store, or made now), under the suite's settings for it with ``settings`` applied over
            them; the harness records it as a start of the fit being made (or, for a method that trains nothing, as
            a fit it composes).
        query_only: black-box access to a model; the harness counts the queries a fit makes through it.
    """

    dataset: DatasetSpec
    device: torch.device
    seed: int
    build_base: Callable[[str], BaseClassifier]
    fit: Callable[..., Method] | None = None
    query_only: Callable[[nn.Module], QueryOnly] = QueryOnly
    # the methods ``fit`` returned, in order: what a method that trains nothing is built from (and charged for)
    composed: list = field(default_factory=list)

    def __post_init__(self):
        if self.fit is not None:  # every fit handed out is recorded, whoever built the context
            give = self.fit

            def fit(*args, **kwargs) -> Method:
                self.composed.append(give(*args, **kwargs))
                return self.composed[-1]

            self.fit = fit


class Method:
    """Base class of every smoothing strategy (see the module docstring for the contract)."""

    name: ClassVar[str]
    version: ClassVar[int] = 1
    Config: ClassVar[type]
    # Parts of the run a fit does not depend on, so one fit serves them all: "base" (a denoiser trained on images
    # alone), "sigma" (a diffusion model trained over every noise level), "precision" (a black-box fit whose SPSA
    # differences bf16 would round away runs in fp32 whatever the run's precision).
    fit_ignores: ClassVar[frozenset[str]] = frozenset()
    # What plots group it with (one hue per family): one of FAMILIES; "other" (the default) is as valid as the rest.
    family: ClassVar[str] = "other"
    # The README's Methods table, generated from these (``python -m benchmark leaderboard``): what is trained (all
    # else is frozen), and the source (paper, and how this implementation relates to it).
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""

    @classmethod
    def composes(cls, config) -> list[tuple[str, float, dict | None]]:
        """The other methods' fits this one asks ``ctx.fit`` for when it is built, as (name, sigma, settings): the
        fits a composition certifies with (a cascade's stages), or a fit's start (a calibration's); the dry run
        shows where each would come from. A method that trains nothing is charged the cost of what it composes."""
        return []

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

    # -- training hooks ---------------------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the shared loop optimises, frozen or not (``fit_method`` enables their gradients); empty:
        nothing is trained, and there is no fit."""
        return []

    def training_loss(self, batch: tuple[torch.Tensor, torch.Tensor], sigma: float, generator: torch.Generator):
        """Scalar loss on a clean batch ``(x in [0,1], y)``; the method draws its own noise from ``generator``."""
        raise NotImplementedError

    def fit_module(self) -> nn.Module:
        """The module a fit changes (checkpointed by the loop; its ``fit_state`` is stored)."""
        return self.base

    def train_mode(self) -> None:
        """Put the modules being trained in train mode (default: the whole fit module)."""
        self.fit_module().train()

    def before_fit(self, sigma: float) -> None:
        """Called once before a fit is made (not when it is loaded), e.g. to start from another method's fit."""

    def fit_state(self) -> dict[str, torch.Tensor]:
        """The tensors a fit produced: trainable parameters and every persistent buffer (batch-norm statistics)."""
        module = self.fit_module()
        trainable = {id(p) for p in self.trainable_parameters()}
        params = {k: p for k, p in module.named_parameters()}
        return {
            k: t.detach()
            for k, t in module.state_dict(keep_vars=True).items()
            if k not in params or id(params[k]) in trainable
        }

    def load_fit(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(state) - set(self.fit_module().state_dict())
        if missing:
            raise ValueError(f"saved state has unknown keys {sorted(missing)[:3]}")
        self.fit_module().load_state_dict(state, strict=False)

    def needs_fit(self) -> bool:
        return bool(self.trainable_parameters())

    # -- reporting and certification --------------------------------------------------------------------------
    def report(self, sigma: float) -> dict:
        """Settings and facts a leaderboard shows beside the numbers (e.g. whether batch-norm statistics adapted)."""
        return {}


def fit_method(
    method: Method,
    sigma: float,
    data,
    *,
    device: torch.device,
    precision: Precision = Precision.FP32,
    seed: int = 0,
    checkpoint=None,
    augment=None,
) -> FitResult:
    """Train ``method`` at ``sigma`` on ``data`` through the one training loop, with the method's hooks and its
    ``config.train``; a method whose fit ignores precision trains in fp32 whatever ``precision`` says. Bases arrive
    frozen: gradients are enabled here on exactly what ``trainable_parameters()`` returns, so a method need not."""
    params = method.trainable_parameters()
    for p in params:
        p.requires_grad_(True)
    return fit(
        method.fit_module(),
        params,
        lambda batch, gen: method.training_loss(batch, sigma, gen),
        data,
        method.config.train,
        device=device,
        bf16=precision == Precision.BF16 and "precision" not in method.fit_ignores,
        seed=seed,
        checkpoint=checkpoint,
        augment=augment,
        train_mode=method.train_mode,
        desc=f"fit {method.name} sigma={sigma:g}",
    )


def cost(method: Method) -> dict:
    """Trainable parameters, their share of the clean base's own parameters (added modules are not counted in the
    denominator, so the share may pass 100 % for a method larger than its base), and the bytes stored per sigma."""
    trainable = sum(p.numel() for p in method.trainable_parameters())
    stored = sum(t.numel() * t.element_size() for t in method.fit_state().values()) if trainable else 0
    seen: set[str] = set()
    parts = [] if method.needs_fit() else method.ctx.composed  # a fit's starts are not its cost; a composition's are
    for part in parts:  # stages sharing one fitted state (one DDPM for every sigma) count once
        state = part.fit_state() if part.needs_fit() else {}
        digest = hashlib.sha256()
        for k in sorted(state):
            raw = state[k].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
            digest.update(k.encode() + raw)
        key = digest.hexdigest()
        if state and key not in seen:
            seen.add(key)
            trainable += sum(p.numel() for p in part.trainable_parameters())
            stored += sum(t.numel() * t.element_size() for t in state.values())
    return {
        "trainable_params": trainable,
        "base_params": method.base_params,
        "trainable_pct": share_of_base(trainable, method.base_params),
        "stored_bytes": stored,
    }


def count_parameters(module: nn.Module) -> int:
    """Distinct parameters of ``module`` (shared tensors once)."""
    return sum(p.numel() for p in module.parameters())


def share_of_base(trainable: int, base_params: int) -> float:
    """``trainable`` as a percentage of the base's own parameter count (0 for a base without parameters)."""
    return 100.0 * trainable / base_params if base_params else 0.0
