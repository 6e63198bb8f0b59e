"""Lazy registries: ``name -> "module:Class"``, resolved only when an entry is used.

Modelled on timm's ``_registry.py`` and lm-evaluation-harness' ``api/registry.py``: importing the registry costs
nothing (no torch model code is imported until a name is resolved), duplicates are refused, and an unknown name
gets a did-you-mean hint.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable

from benchmark.errors import BenchmarkError


class Registry:
    """A named table of lazily imported classes.

    Args:
        kind: what the entries are ("method", "dataset", ...), used in messages.
        entries: ``name -> "package.module:Attribute"``.
    """

    def __init__(self, kind: str, entries: dict[str, str] | None = None):
        self.kind = kind
        self._entries: dict[str, str] = {}
        for name, target in (entries or {}).items():
            self.register(name, target)

    def register(self, name: str, target: str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice ({self._entries[name]} and {target})")
        if ":" not in target:
            raise ValueError(f"registry target must look like 'module:Class', got {target!r}")
        self._entries[name] = target

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a test that registered a method at run time undoes it)."""
        self.check(name)
        del self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def in_order(self) -> list[str]:
        """The names in the order they were registered (the README's Methods table lists them so)."""
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def target(self, name: str) -> str:
        self.check(name)
        return self._entries[name]

    def check(self, name: str) -> None:
        """Raise a :class:`BenchmarkError` with a did-you-mean hint if ``name`` is unknown."""
        if name in self._entries:
            return
        close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise BenchmarkError(
            f"unknown {self.kind} {name!r}: {hint}run 'python -m benchmark list' to see all {len(self._entries)}"
        )

    def get(self, name: str):
        """Import and return the object registered under ``name``."""
        module_name, attr = self.target(name).split(":")
        return getattr(importlib.import_module(module_name), attr)

    def resolve(self, spec: str | Iterable[str]) -> list[str]:
        """Expand ``"all"`` or a comma list (or an iterable of names) into checked names, keeping order."""
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        names: list[str] = []
        for item in (i.strip() for i in items):
            if not item:
                continue
            for name in self.names() if item == "all" else [item]:
                self.check(name)
                if name not in names:
                    names.append(name)
        if not names:
            raise BenchmarkError(f"no {self.kind} given: name one or more, or 'all'")
        return names


# Adding a method is one file plus one line here (the README's "Adding a method"): the contract tests, the quick
# suite (``methods = ["all"]``) and the README's Methods table (in this order) pick the line up.
METHODS = Registry(
    "method",
    {
        "vanilla": "baselines.vanilla:Vanilla",
        "gaussian": "baselines.gaussian:Gaussian",
        "peft_lora": "methods.peft_smoothing:PEFTLoRA",
        "peft_prompt": "methods.peft_smoothing:PEFTPrompt",
        "peft_adapter": "methods.peft_smoothing:PEFTAdapter",
        "peft_blackbox": "methods.peft_blackbox:PEFTBlackBox",
        "dncnn": "baselines.denoised_smoothing:DnCNNDenoiser",
        "dncnn_stab": "baselines.denoised_smoothing:DnCNNStab",
        "dncnn_surrogate": "baselines.denoised_smoothing:DnCNNSurrogate",
        "diffusion": "baselines.diffusion:DiffusionDenoised",
        "caf": "methods.caf:CAF",
        "caf_ensemble": "methods.caf:CAFEnsemble",
        "multiscale": "baselines.multiscale:Multiscale",
        "multiscale_gaussian": "baselines.multiscale:MultiscaleGaussian",
        "multiscale_calibrated": "baselines.multiscale:MultiscaleCalibrated",
        "adapt": "methods.adapt:Adapt",
        "prompt_at": "methods.adapt:PromptAT",
    },
)

DATASETS = Registry(
    "dataset",
    {
        "digits": "benchmark.data.datasets:Digits",
        "cifar10": "benchmark.data.datasets:CIFAR10",
        "imagenet": "benchmark.data.datasets:ImageNet",
    },
)

# Base classifiers. Besides these names, "timm:<model name>" builds any timm model (see benchmark.bases).
BASES = Registry(
    "base model",
    {
        "resnet20": "benchmark.bases.published:ResNet20",
        "resnet56": "benchmark.bases.published:ResNet56",
        "vit_tiny_p4": "benchmark.bases.published:ViTTinyP4",
        "small_cnn": "benchmark.bases.pretrained:SmallCNN",
        "small_vit": "benchmark.bases.pretrained:SmallViT",
    },
)
