"""One process's view of a run configuration: device and precision, data, bases, and methods with their fits.

The runner and the maintenance commands get everything they need from a :class:`Session`; methods get the part
they may use through their :class:`~benchmark.method.MethodContext`. A method's fit comes from the fit store
(published, then cached), or is made here through the one training loop and saved there.
"""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn
from torch.utils.data import Dataset

from benchmark.bases import BaseClassifier, BuildContext, base_spec, check_base
from benchmark.certificates.device import Precision, resolve_device, resolve_precision
from benchmark.config.overrides import override_dataclass
from benchmark.config.registry import DATASETS, METHODS
from benchmark.config.run_config import RunConfig
from benchmark.data.datasets import DatasetSpec
from benchmark.data.splits import fingerprint, load_split
from benchmark.files import write_json_atomic
from benchmark.method import Method, MethodContext, QueryOnly, fit_method
from benchmark.run.plan import Cell, base_config, cell, check_names, method_config, plan
from benchmark.run.store import CHECKPOINT, INPUTS, Fit, FitStore
from benchmark.train import seeded_init


class Session:
    """Args: cfg: the resolved run configuration."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        # the one place the run's precision setting ("auto") becomes this device's precision
        self.precision: Precision = resolve_precision(cfg.precision, self.device)
        self.results = Path(cfg.results).expanduser()
        self.cache_dir = Path(cfg.cache_dir).expanduser()
        self.data_root = Path(cfg.data_root).expanduser() if cfg.data_root else None
        self.dataset: DatasetSpec = DATASETS.get(cfg.dataset)()
        self.store = FitStore(self.cache_dir, self.results)
        self._data: dict[str, Dataset] = {}
        self._fingerprint: str | None = None
        self._bases: dict[str, BaseClassifier] = {}

    # -- data and bases ---------------------------------------------------------------------------------------
    def data(self, split: str) -> Dataset:
        """A split of the dataset, loaded once (loading the evaluation split also sets ``dataset.label``)."""
        if split not in self._data:
            self._data[split] = load_split(self.dataset, split, self.data_root, self.cache_dir, self.cfg.download)
        return self._data[split]

    def eval_data(self) -> Dataset:
        return self.data(self.cfg.split)

    def data_fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.eval_data())
        return self._fingerprint

    def plan(self) -> list[Cell]:
        check_names(self.cfg)  # before reading the data: a misspelt name fails at once
        return plan(self.cfg, len(self.eval_data()), self.precision)

    def cell(self, method: str, base: str, sigma: float, settings: dict | None = None) -> Cell:
        """The cell of ``method`` under the suite's settings, with ``settings`` applied over them (a cascade's own
        settings for the method it composes)."""
        mconfig = None
        if settings:
            where = f"the settings a cascade gives {method}"
            mconfig = override_dataclass(method_config(self.cfg, method, base, sigma), settings, where)
        return cell(self.cfg, method, base, sigma, self.precision, mconfig=mconfig)

    def build_context(self) -> BuildContext:
        return BuildContext(self.device, self.store, self.data_root, self.cfg.download, self.precision, self.cfg.seed)

    def build_base(self, name: str) -> BaseClassifier:
        """Base ``name``, built once per process, frozen; methods get deep copies."""
        if name not in self._bases:
            check_base(name)
            model = base_spec(name).build(base_config(self.cfg, name), self.dataset, self.build_context())
            self._bases[name] = model.requires_grad_(False)
        return self._bases[name]

    def must_train(self, cells: list[Cell]) -> bool:
        """Whether a fit of ``cells`` is to be made here (neither published nor cached), so the training data is read
        before the first record is written."""
        return any(
            self.store.where(c.method, c.fit_hash) not in ("published", "cached")
            and METHODS.get(c.method).trainable_parameters is not Method.trainable_parameters
            for c in cells
        )

    # -- methods and their fits -------------------------------------------------------------------------------
    def _instance(self, target: Cell) -> tuple[Method, dict[str, dict], list[QueryOnly]]:
        """A fresh method for ``target``, with the starts it asks ``ctx.fit`` for and the query-only wrappers it
        asks ``ctx.query_only`` for (both filled as the method uses them)."""
        starts: dict[str, dict] = {}
        queried: list[QueryOnly] = []

        def fit_start(name: str, sigma: float, settings: dict | None = None) -> Method:
            method, info = self.fit(self.cell(name, target.base, sigma, settings))
            if info.get("fit_hash"):
                # keyed by name for a start at the target's own sigma (a Stab fine-tune's MSE denoiser); a cascade's
                # stages at other sigmas get their own keys, and every entry names its method for publish-fits
                key = name if sigma == target.sigma else f"{name}@{sigma:g}"
                starts[key] = {"fit_hash": info["fit_hash"], "state_sha256": info["state_sha256"]}
                if key != name:
                    starts[key]["method"] = name
            return method

        def query_only(model: nn.Module) -> QueryOnly:
            queried.append(QueryOnly(model))
            return queried[-1]

        ctx = MethodContext(self.dataset, self.device, self.cfg.seed, self.build_base, fit_start, query_only)
        base = copy.deepcopy(self.build_base(target.base))
        with seeded_init(self.cfg.seed, target.fit_hash):  # the modules a method adds start the same every time
            method = METHODS.get(target.method)(target.method_config, base, ctx)
        return method, starts, queried

    def fit(self, target: Cell) -> tuple[Method, dict]:
        """The method of ``target`` with its fit (from the store, or made now and saved), and the fit's provenance."""
        method, starts, queried = self._instance(target)
        if not method.needs_fit():  # a cascade trains nothing itself: its record names the fits it composes
            return method, {"fit_time_s": 0.0, "cached": False, **({"composes": starts} if starts else {})}

        def make(directory: Path) -> tuple[dict, dict]:
            method.before_fit(target.sigma)
            if starts:  # written before the loop, so `publish-fits` can commit the start of an unfinished fit
                write_json_atomic(directory / INPUTS, starts)
            result = fit_method(
                method,
                target.sigma,
                self.data(target.train_split),
                device=self.device,
                precision=self.precision,
                seed=self.cfg.seed,
                checkpoint=directory / CHECKPOINT,
                augment=self.dataset.augment,
            )
            info = {
                "fit_time_s": result.time_s,
                "steps": result.steps,
                "epochs": result.epochs,
                "final_loss": result.final_loss,
                "loss_history": result.loss_history,
                "resumed_from_epoch": result.resumed_from_epoch,
                "fit_key": target.fit_key,
            }
            if queried:  # black-box access: what the fit cost in queries, and proof it never differentiated
                info["queries"] = sum(q.counter["queries"] for q in queried)
                info["backward_calls_through_base"] = sum(q.counter["backward_calls"] for q in queried)
            if starts:
                info["init_fits"] = starts
            return method.fit_state(), info

        stored = self.store.get_or_fit(target.method, target.fit_hash, make, self.device)
        if stored.info["cached"]:
            load_into(method, stored)
        return method, stored.info

    def stored(self, target: Cell) -> Method | None:
        """The method of ``target`` with its stored fit (or needing none); None rather than fitting."""
        method, _, _ = self._instance(target)
        if not method.needs_fit():
            return method
        stored = self.store.load(target.method, target.fit_hash, self.device)
        if stored is None:
            return None
        load_into(method, stored)
        return method


def load_into(method: Method, stored: Fit) -> None:
    """Load a stored fit into ``method`` only if it is exactly the state the method's fit produces: the same
    tensor names (an empty or foreign file would otherwise leave the unadapted base certified under the method's
    name) and shapes."""
    expected = set(method.fit_state())
    if set(stored.state) != expected:
        missing, extra = sorted(expected - set(stored.state)), sorted(set(stored.state) - expected)
        detail = f"lacks {len(missing)} ({', '.join(missing[:2])})" if missing else ""
        detail += ("; " if detail else "") + (f"has {len(extra)} unknown ({', '.join(extra[:2])})" if extra else "")
        raise stored.damaged(f"is not a {method.name} fit: of the {len(expected)} tensors expected it {detail}")
    try:
        method.load_fit(stored.state)
    except (RuntimeError, ValueError) as err:
        raise stored.damaged(f"does not fit {method.name} ({str(err).splitlines()[0][:120]})") from None
