"""Bases by name: the registry's entries and ``timm:<model>`` for any timm model, with their resolved settings."""

from __future__ import annotations

from benchmark.bases.core import BaseSpec
from benchmark.bases.timm_base import TimmBase
from benchmark.config.overrides import override_dataclass
from benchmark.config.registry import BASES


def base_spec(name: str) -> BaseSpec:
    """The spec of a base by registry key, or ``timm:<model>`` for any timm model."""
    if name.startswith("timm:"):
        return TimmBase(name.removeprefix("timm:"))
    return BASES.get(name)()


def check_base(name: str) -> None:
    """A did-you-mean error for an unknown base (any ``timm:<model>`` name is accepted here)."""
    if not name.startswith("timm:"):
        BASES.check(name)


def resolve_base_config(name: str, settings: dict | None):
    """Base ``name``'s settings: its defaults, then the suite's ``[base_settings.<name>]``."""
    return override_dataclass(base_spec(name).Config(), settings or {}, f"[base_settings.{name}]")
