"""What a run will do, touching no file: one :class:`Cell` per base x method x sigma, resolved and hashed.

A cell's record key holds everything that can change a record (method, its version and resolved config, base and
its config, data subset, sigma, n0, n, alpha, seed, precision); its hash names the run directory, so records of
different configurations never mix. A method's settings resolve as its defaults < the suite's
``[method_settings.<method>]`` < ``[method_settings.<method>.by_base.<base>]``; a base's as its defaults < the
suite's ``[base_settings.<base>]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.bases import check_base, resolve_base_config
from benchmark.certificates.certifier import Certifier
from benchmark.certificates.device import Precision
from benchmark.certificates.registry import certifier_class, certifier_for, own_certificate
from benchmark.config.hashing import config_hash, record_key, to_jsonable
from benchmark.config.overrides import override_dataclass
from benchmark.config.registry import METHODS
from benchmark.config.run_config import RunConfig
from benchmark.data.datasets import subset_indices
from benchmark.errors import BenchmarkError
from benchmark.run.records import run_dir

# Certification settings: a fit never depends on them.
_NOT_IN_FIT = frozenset({"split", "start", "skip", "n0", "n", "alpha", "certify", "engine"})


@dataclass(frozen=True)
class Cell:
    """One (base, method, sigma) of a run.

    Attributes:
        base, method, sigma: the cell.
        precision: "bf16" or "fp32", as resolved on this machine.
        method_config, base_config: the resolved settings.
        key: the record key (see the module docstring); ``chash`` is its hash.
        indices: the images to certify, in certification order (the subset, or its first ``max_images``).
        subset_size: the images of the whole subset (``start``, ``skip``), whatever ``max_images`` is.
    """

    base: str
    method: str
    sigma: float
    precision: str
    method_config: Any = field(repr=False)
    base_config: Any = field(repr=False)
    key: dict = field(repr=False, compare=False)
    chash: str = ""
    indices: tuple[int, ...] = field(default=(), repr=False)
    subset_size: int = 0
    train_split: str = "train"  # what a fit trains on ("tune_train" for a candidate recipe of a search)

    @property
    def fit_key(self) -> dict:
        """The part of the key a fitted state depends on: never the certification settings, nor what the method's
        ``fit_ignores`` names (a denoiser trained on images alone serves every base)."""
        drop = set(_NOT_IN_FIT) | set(METHODS.get(self.method).fit_ignores)
        drop |= {k for k in self.key if k.startswith("certify_")}  # a certificate's own settings (key_items)
        if "base" in drop:
            drop.add("base_config")
        return {k: v for k, v in self.key.items() if k not in drop}

    @property
    def fit_hash(self) -> str:
        return config_hash(self.fit_key)

    @property
    def certifier(self) -> Certifier:
        """The certificate this cell's images get (the method's own, else the run's ``certify``)."""
        return certifier_for(self.method_config, self.key.get("certify", "fixed"), self.method)

    def directory(self, results: Path, suite: str) -> Path:
        return run_dir(results, suite, self.method, self.base, self.sigma, self.chash)


def method_config(cfg: RunConfig, name: str, base: str, sigma: float | None = None):
    """Method ``name``'s settings on ``base`` at ``sigma``: its defaults < ``[method_settings.<name>]`` < ``.by_base.
    <base>`` < ``.by_sigma."<sigma>"`` (a recipe chosen per noise level); the settings of other bases and sigmas,
    and so their hashes, stay as they were."""
    cls, where = METHODS.get(name), f"[method_settings.{name}]"
    settings = dict(cfg.method_settings.get(name, {}))
    by_base, by_sigma = settings.pop("by_base", {}), settings.pop("by_sigma", {})
    for table, example in ((by_base, "by_base.resnet20"), (by_sigma, 'by_sigma."0.5"')):
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            raise BenchmarkError(
                f"{where} {example.split('.')[0]} must hold one table each, e.g. {where[:-1]}.{example}]"
            )
    for other in by_base:
        check_base(other)
    for level in by_sigma:
        if level not in {f"{s:g}" for s in cfg.sigmas} and not _is_number(level):
            raise BenchmarkError(f'{where[:-1]}.by_sigma.{level}] names no noise level: write it as "0.5"')
    config = override_dataclass(cls.Config(), settings, where)
    if base in by_base:
        config = override_dataclass(config, by_base[base], f"{where[:-1]}.by_base.{base}]")
    if sigma is not None and f"{sigma:g}" in by_sigma:
        config = override_dataclass(config, by_sigma[f"{sigma:g}"], f'{where[:-1]}.by_sigma."{sigma:g}"]')
    return config


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def base_config(cfg: RunConfig, name: str):
    return resolve_base_config(name, cfg.base_settings.get(name))


def cell(
    cfg: RunConfig,
    method: str,
    base: str,
    sigma: float,
    precision: str,
    indices=(),
    subset_size=0,
    mconfig=None,
    train_split: str = "train",
) -> Cell:
    """The cell of ``method`` on ``base`` at ``sigma`` in ``precision`` under ``cfg`` (``mconfig``: other settings
    than the suite's, as a recipe search tries; ``train_split``: what its fit trains on)."""
    cls = METHODS.get(method)
    mconfig = method_config(cfg, method, base, sigma) if mconfig is None else mconfig
    return make_cell(
        cfg,
        (cls.name, cls.version, mconfig),
        (base, base_config(cfg, base)),
        sigma,
        precision,
        indices,
        subset_size,
        train_split,
    )


def make_cell(
    cfg: RunConfig,
    method: tuple[str, int, Any],
    base: tuple[str, Any],
    sigma: float,
    precision: str,
    indices=(),
    subset_size=0,
    train_split: str = "train",
) -> Cell:
    """The cell of ``method`` = (name, version, config) on ``base`` = (name, config): the one place a record key is
    written, for registered methods and for a user's own model alike."""
    (name, version, mconfig), (base_name, bconfig) = method, base
    key = {
        "method": name,
        "method_version": version,
        "method_config": to_jsonable(mconfig),
        "base": base_name,
        "base_config": to_jsonable(bconfig),
        "dataset": cfg.dataset,
        "split": cfg.split,
        "start": cfg.start,
        "skip": cfg.skip,
        "sigma": float(sigma),
        "n0": cfg.n0,
        "n": cfg.n,
        "alpha": cfg.alpha,
        "seed": cfg.seed,
        "precision": precision,
        "train_split": train_split,
        # a method that names its own certificate (a cascade) keeps it: the run-level one is not its
        "certify": "fixed" if own_certificate(mconfig) else cfg.certify,
        "engine": cfg.engine,
    }
    key |= certifier_class(key["certify"]).key_items()  # a certificate's settings that may change under its name
    key = record_key(key)  # late keys at their first value stay out, so older hashes hold
    return Cell(
        base_name,
        name,
        float(sigma),
        precision,
        mconfig,
        bconfig,
        key,
        config_hash(key),
        tuple(indices),
        subset_size,
        train_split,
    )


def check_names(cfg: RunConfig) -> list[str]:
    """The methods ``cfg`` names, resolved; a did-you-mean error for an unknown method or base."""
    methods = METHODS.resolve(cfg.methods)
    if not cfg.bases:
        raise BenchmarkError(f"suite {cfg.suite!r} names no base model")
    for name in cfg.bases:
        check_base(name)
    return methods


def images(cfg: RunConfig, num_images: int) -> tuple[list[int], int]:
    """The images a run of ``cfg`` certifies, in order (the subset, or its first ``max_images``), and the size of
    the whole subset."""
    subset = subset_indices(num_images, cfg.start, cfg.skip, None, cfg.seed)
    if not subset:
        raise BenchmarkError(f"no test images selected: --start {cfg.start} is past the {num_images} images")
    return subset[: cfg.max_images], len(subset)


def plan(cfg: RunConfig, num_images: int, precision: Precision) -> list[Cell]:
    """Every cell ``cfg`` selects, over an evaluation split of ``num_images`` images, in run order."""
    methods = check_names(cfg)
    indices, subset_size = images(cfg, num_images)
    cells = []
    for b in cfg.bases:
        for m in methods:
            # where the method's certificate stands: at each sigma, or (a cascade) once at the smallest of its set
            certifier = certifier_for(method_config(cfg, m, b), cfg.certify, m, check=False)
            for s in certifier.cell_sigmas(cfg.sigmas):
                cells.append(cell(cfg, m, b, s, precision, indices, subset_size))
    return cells
