"""Run configuration: suite TOML + CLI overrides -> a validated, frozen :class:`RunConfig` (hashing: ``hashing.py``).

Precedence is dataclass defaults < suite TOML < CLI. The hash of everything that can change a record (method
and its config, base, data subset, sigma, n0, n, alpha, seed, precision) is part of each result path, so records
of different configurations are never mixed. Things that cannot change a record (batch size, device, paths,
``max_images``) stay out of the hash: a run can be extended to more images or resumed on another batch size.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.config.overrides import check_types
from benchmark.config.suite import PROJECT_ROOT, _published, load_suite, parse_pairs
from benchmark.errors import BenchmarkError
from benchmark.files import safe_name

PRECISIONS = ("fp32", "bf16", "auto")
ENGINES = ("eager", "fold_bn", "freeze", "compile")  # how the noisy classifier runs (certificates.engines)
CERTIFY_MODES = ("fixed", "sequential", "adaptive")  # the run-level certificates (certificates.registry)
# The radius grid of the tables when a suite names none (and of an imported log, which records none).
DEFAULT_RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class RunConfig:
    """Everything a ``run`` needs, resolved from defaults, the suite file and the command line.

    Attributes:
        suite: suite name; results go to ``results/<suite>/...``.
        dataset: dataset registry key.
        split: which split is certified.
        bases: base-model registry keys.
        methods: method registry keys.
        sigmas: noise levels in [0, 1] pixel units.
        n0: selection samples (Cohen et al.: 100).
        n: estimation samples (Cohen et al.: 100,000; Salman et al. 2020: 10,000).
        alpha: failure probability of each certificate (Cohen et al.: 0.001).
        skip: certify test images ``start, start + skip, ...`` (Cohen et al. use skip 20 on CIFAR-10).
        start: first test index.
        max_images: certify only the first this many images of the subset's shuffled order (a random sample of
            it, the same for every method; None: the whole strided split).
        seed: root seed; image ``idx`` draws its noise from a generator seeded by ``(seed, idx)``.
        batch_size: noisy samples per forward pass in certification (never changes a result).
        device: torch device string.
        precision: "fp32", "bf16" (autocast) or "auto" (bf16 where the device supports it).
        radii: radius grid of the tables (and the levels sequential CERTIFY decides).
        engine: how the noisy classifier's forward pass runs (:mod:`benchmark.certificates.engines`): "eager" (the
            default), "fold_bn", "freeze" or "compile"; part of the record key (outputs differ in rounding).
        certify: "fixed" (CERTIFY with n0 + n samples) or "sequential" (the same certificate at looks fixed in
            advance, stopping once the radius grid is decided; ``n`` is then the most it draws).
        data_root: dataset location (None: the dataset's default).
        download: allow torchvision to download a dataset that is missing (never in tests or CI).
        results: results directory.
        cache_dir: where fitted states, pretrained bases and decoded data are cached.
        method_settings: per-method overrides of the method's ``Config`` (suite ``[method_settings.<name>]``
            tables, with ``[method_settings.<name>.by_base.<base>]`` for one base); a suite's ``method_defaults =
            "quick"`` gives a method it has no table for its own ``Config.quick()``.
        base_settings: per-base overrides (suite ``[base_settings.<name>]`` tables), e.g. pretraining budgets.
        tuning: per-method recipe searches (suite ``[tuning.<name>]``: ``candidates``, a list of settings tables
            each applied over the method's settings), run by ``python -m benchmark tune``.
    """

    suite: str
    dataset: str
    bases: tuple[str, ...]
    methods: tuple[str, ...]
    sigmas: tuple[float, ...]
    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    split: str = "test"
    skip: int = 1
    start: int = 0
    max_images: int | None = None
    seed: int = 0
    batch_size: int = 1000
    device: str = "cpu"
    precision: str = "auto"
    radii: tuple[float, ...] = DEFAULT_RADII
    certify: str = "fixed"
    engine: str = "eager"
    data_root: str | None = None
    download: bool = False
    results: str = "results"
    cache_dir: str = ".cache"
    method_settings: dict[str, dict] = field(default_factory=dict, hash=False)
    base_settings: dict[str, dict] = field(default_factory=dict, hash=False)
    tuning: dict[str, dict] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if not self.sigmas:
            raise ValueError("at least one sigma is needed")
        for sigma in self.sigmas:
            if not (isinstance(sigma, int | float) and math.isfinite(sigma) and sigma > 0):
                raise ValueError(f"sigma must be > 0, got {sigma!r}")
        if int(self.n0) != self.n0 or self.n0 < 1:
            raise ValueError(f"n0 must be an integer >= 1, got {self.n0!r}")
        if int(self.n) != self.n or self.n < 1:
            raise ValueError(f"n must be an integer >= 1, got {self.n!r}")
        if not (0.0 < self.alpha < 1.0):
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {self.alpha!r}")
        if self.skip < 1:
            raise ValueError(f"skip must be >= 1, got {self.skip!r}")
        if self.start < 0:
            raise ValueError(f"start must be >= 0, got {self.start!r}")
        if self.n0 > self.n:
            raise ValueError(f"n0 ({self.n0} selection samples) must not exceed n ({self.n} estimation samples)")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer from 0 to 2**63 - 1, got {self.seed!r}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max-images must be >= 1, got {self.max_images!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch-size must be >= 1, got {self.batch_size!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.certify not in CERTIFY_MODES:
            raise ValueError(f"certify must be one of {', '.join(CERTIFY_MODES)}, got {self.certify!r}")
        if any(r < 0 for r in self.radii) or list(self.radii) != sorted(self.radii):
            raise ValueError(f"radii must be non-negative and increasing, got {self.radii!r}")


# TOML keys of a suite file that map to RunConfig fields; [method_settings.*] and [base_settings.*] are handled apart.
_TABLES = ("method_settings", "base_settings", "tuning")
_SUITE_KEYS = {f.name for f in dataclasses.fields(RunConfig)} - {"suite", *_TABLES}


# Keys of a suite file that are not RunConfig fields: read by the suite's readers (reports, ranking) or below.
_NOT_SETTINGS = (
    "name",
    "description",
    "published",
    "preferred_precision",
    "comparisons",
    "attack_comparisons",
    "methods",
    "bases",
    "method_defaults",
    *_TABLES,
)


def _suite_values(name: str, table: dict[str, Any]) -> dict[str, Any]:
    """The RunConfig values a suite file sets (paths made absolute), with a did-you-mean error for an unknown key."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in _NOT_SETTINGS:
            continue
        if key not in _SUITE_KEYS:
            close = difflib.get_close_matches(key, _SUITE_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise BenchmarkError(f"unknown key {key!r} in suite {name!r}{hint}")
        values[key] = tuple(value) if isinstance(value, list) else value
    # Paths in a suite file are relative to the project root, so a suite runs the same from any directory.
    if values.get("data_root") and not Path(values["data_root"]).expanduser().is_absolute():
        values["data_root"] = str(PROJECT_ROOT / values["data_root"])
    for key in ("methods", "bases"):
        if key in table:
            values[key] = table[key]
    check_types(RunConfig, values, f"suite {name!r}")
    return {k: tuple(v) if k in ("methods", "bases") else v for k, v in values.items()}


def build_run_config(suite: str, overrides: dict[str, Any]) -> RunConfig:
    """Resolve defaults < suite file < ``overrides`` (CLI values; None means 'not given')."""
    name, table = load_suite(suite)
    safe_name(name, "suite name")  # it names folders under results/ and leaderboards/
    _published(name, table)  # validated here so a bad value fails the run, not a later README refresh
    for key in ("comparisons", "attack_comparisons"):
        parse_pairs(table.get(key, []), name, key)  # likewise, rather than a later leaderboard
    values = _suite_values(name, table)
    # Per-entry settings live in [method_settings.<name>] and [base_settings.<name>] tables.
    method_settings = dict(table.get("method_settings", {}))
    if "method_defaults" in table:
        method_settings = {**own_settings(table["method_defaults"], name, set(method_settings)), **method_settings}
    base_settings = dict(table.get("base_settings", {}))
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in _SUITE_KEYS:
            raise ValueError(f"unknown override {key!r}")
        values[key] = tuple(value) if isinstance(value, list) else value
    values.setdefault("methods", ())
    values.setdefault("bases", ())
    for key in ("methods", "bases", "sigmas"):  # a name or noise level given twice is one cell, done once
        if key in values:
            values[key] = tuple(dict.fromkeys(values[key]))
    try:
        tuning = dict(table.get("tuning", {}))
        return RunConfig(
            suite=name, method_settings=method_settings, base_settings=base_settings, tuning=tuning, **values
        )
    except (TypeError, ValueError) as err:
        raise BenchmarkError(f"invalid configuration for suite {name!r}: {err}") from None


def own_settings(kind: Any, suite: str, given: set[str]) -> dict[str, dict]:
    """A suite's ``method_defaults = "<kind>"``: every registered method it gives no ``[method_settings]`` table
    runs with its own ``Config.<kind>()`` (e.g. ``quick``), as the fields that differ from its defaults (a method
    whose Config has no such classmethod keeps its defaults). So a new method needs no suite edit."""
    if not (isinstance(kind, str) and kind.isidentifier()):
        raise BenchmarkError(
            f'suite {suite!r}: method_defaults must name a Config classmethod, e.g. "quick"; got {kind!r}'
        )
    from benchmark.config.registry import METHODS

    settings: dict[str, dict] = {}
    for method in (m for m in METHODS.names() if m not in given):
        config_cls = METHODS.get(method).Config
        if not callable(getattr(config_cls, kind, None)):
            continue
        own, plain = getattr(config_cls, kind)(), config_cls()
        if type(own) is not config_cls:
            raise BenchmarkError(f"{method}: Config.{kind}() must return a {config_cls.__qualname__}")
        settings[method] = {
            f.name: getattr(own, f.name)
            for f in dataclasses.fields(own)
            if getattr(own, f.name) != getattr(plain, f.name)
        }
    return settings
