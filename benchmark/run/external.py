"""A user's own model certified as a run: the runner's own loop, records and run.json, marked external.

The model is a noisy classifier like a method's (images in [0, 1] plus noise -> logits, its normalisation inside).
It enters the run through a :class:`Session` that plans one cell for it and hands the runner an
:class:`ExternalMethod` in place of a fit; everything after (claims, noise per image, the certificate, records,
resume, run.json) is the path every registered method takes. The cell's key names the model by its class, the
SHA-256 of its class's source (where Python can read it), the SHA-256 of its parameters and buffers, and the
caller's ``version`` tag, so a changed model never extends another's records; what none of these sees (a plain
Python attribute, code outside the class) is what ``version`` is for.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import re
from dataclasses import dataclass

import torch
from torch import nn

from benchmark.bases import check_base
from benchmark.config.registry import METHODS
from benchmark.config.run_config import RunConfig
from benchmark.errors import BenchmarkError
from benchmark.method import Method, MethodContext
from benchmark.run.plan import Cell, images, make_cell
from benchmark.run.session import Session


@dataclass(frozen=True)
class ExternalConfig:
    """What identifies a user's model in its record key: the class it is and the SHA-256 of its tensors."""

    module: str
    source_sha256: str | None
    state_sha256: str
    parameters: int
    version: str = ""


def source_digest(model: nn.Module) -> str | None:
    """SHA-256 of the source of the model's class (None where Python cannot read it, e.g. a class typed in a REPL)."""
    try:
        return hashlib.sha256(inspect.getsource(type(model)).encode()).hexdigest()
    except (OSError, TypeError):
        return None


def model_digest(model: nn.Module) -> str:
    """SHA-256 over the model's parameters and buffers, by name (the same tensors give the same digest)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        digest.update(name.encode() + str(tuple(tensor.shape)).encode() + raw)
    return digest.hexdigest()


class ExternalMethod(Method):
    """A user's noisy classifier as the runner sees a method: nothing to fit, the model itself at every sigma."""

    name = "external"
    Config = ExternalConfig

    def noisy_classifier(self, sigma: float) -> nn.Module:
        return self.base

    def report(self, sigma: float) -> dict:
        return {"external": self.config.module}


# folders a suite's results hold beside the methods' (an external model's name must not be one)
RESERVED = frozenset({"attack", "audit", "checkpoints", "perf", "simulate", "tuning"})


def check_external(cfg: RunConfig, name: str, base: str, sigma: float) -> None:
    """A one-line error for a name that could be mistaken for (or stored with) another row's, or for a base or
    noise level outside the suite, where the row would stand alone in a table of its own."""
    registered = {m.lower() for m in METHODS.names()}
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.lower() in registered | RESERVED:
        raise BenchmarkError(
            f"{name!r} cannot name your model: use letters, digits, _ . - and no registered method or "
            f"{', '.join(sorted(RESERVED))}"
        )
    check_base(base)
    if float(sigma) not in {float(s) for s in cfg.sigmas}:
        raise BenchmarkError(
            f"sigma {sigma:g} is not one of {cfg.suite}'s noise levels ({', '.join(f'{s:g}' for s in cfg.sigmas)})"
        )


class ExternalSession(Session):
    """A session whose one cell is a user's model ``model`` named ``name``, listed with ``base``'s rows at
    ``sigma`` (the model is copied: the caller's stays as it was)."""

    def __init__(self, cfg: RunConfig, model: nn.Module, name: str, base: str, sigma: float, version: str = ""):
        super().__init__(cfg)
        check_external(cfg, name, base, sigma)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.name, self.base, self.sigma = name, base, float(sigma)
        self.config = ExternalConfig(
            f"{type(model).__module__}.{type(model).__qualname__}",
            source_digest(model),
            model_digest(model),
            sum(p.numel() for p in model.parameters()),
            version,
        )

    def plan(self) -> list[Cell]:
        indices, subset_size = images(self.cfg, len(self.eval_data()))
        base = (self.base, {"external": self.config.module})
        return [
            make_cell(self.cfg, (self.name, 1, self.config), base, self.sigma, self.precision, indices, subset_size)
        ]

    def build_base(self, name: str):
        return self.model.to(self.device)

    def must_train(self, cells: list[Cell]) -> bool:
        return False

    def fit(self, target: Cell) -> tuple[Method, dict]:
        ctx = MethodContext(self.dataset, self.device, self.cfg.seed, self.build_base)
        method = ExternalMethod(self.config, self.build_base(self.base), ctx)
        return method, {"fit_time_s": 0.0, "cached": False, "external": vars(self.config).copy()}
