"""The run loop: for each base x method x sigma, fit (cached) -> certify -> one record per image.

Everything that can fail on bad input (names, data, weights, result directory) is checked before the first
record is written. Each (base, method, sigma) is resumable on its own: finished images are skipped, the fitted
state is loaded from the cache, and re-running the same command only does what is missing.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from benchmark.config import RunConfig, config_hash, override_dataclass, to_jsonable
from benchmark.data import DatasetSpec, subset_indices
from benchmark.errors import BenchmarkError
from benchmark.method import Method, MethodContext, count_parameters, share_of_base
from benchmark.metrics import certify_s_per_image
from benchmark.models import BaseClassifier, BuildContext, base_spec, resolve_base_config, sha256_file
from benchmark.registry import BASES, DATASETS, METHODS
from benchmark.results import (
    RecordWriter,
    Run,
    check_writable,
    command_line,
    exclusive,
    git_state,
    iter_runs,
    latest_runs,
    now,
    package_versions,
    read_records,
    read_run_json,
    run_dir,
    write_atomic,
    write_json_atomic,
    writing,
)
from benchmark.smoothing import ABSTAIN, certify, image_generator
from benchmark.train import autocast, fit


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchmarkError(f"unknown device {name!r}: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("--device cuda asked for but no CUDA device is visible: use --device cpu")
    return device


def resolve_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast for "bf16", and for "auto" where the device runs it natively."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class SmoothingClassifier(torch.nn.Module):
    """Wraps a noisy classifier for certification: eval mode, no grad, optional bf16 autocast, fp32 logits."""

    def __init__(self, model: torch.nn.Module, device: torch.device, bf16: bool):
        super().__init__()
        # channels_last is about 1.4x faster for convolutions under bf16 on CPU (ResNet-20: 2,350 vs 1,630 img/s).
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.device = device
        self.bf16 = bf16

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.bf16):
            return self.model(x.contiguous(memory_format=torch.channels_last)).float()


@dataclass
class Plan:
    """One (base, method, sigma) cell of a run, resolved and hashed."""

    base: str
    method: str
    sigma: float
    key: dict
    chash: str
    directory: Path
    writer: RecordWriter
    todo: list[int]
    indices: list[int]


def record_key(cfg: RunConfig, method_cls, method_config, base: str, base_config, sigma: float, bf16: bool) -> dict:
    """Everything that can change a record; its hash names the run directory."""
    return {
        "method": method_cls.name,
        "method_version": method_cls.version,
        "method_config": to_jsonable(method_config),
        "base": base,
        "base_config": to_jsonable(base_config),
        "dataset": cfg.dataset,
        "split": cfg.split,
        "start": cfg.start,
        "skip": cfg.skip,
        "sigma": float(sigma),
        "n0": cfg.n0,
        "n": cfg.n,
        "alpha": cfg.alpha,
        "seed": cfg.seed,
        "precision": "bf16" if bf16 else "fp32",
    }


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def checkpoint_dir(results: Path, method: str, fhash: str) -> Path:
    """Where `publish-fits` commits a fitted state beside the results it produced."""
    return results / "checkpoints" / method / fhash


def publish_fits(results: Path, cache_dir: Path, suite: str | None, max_bytes: int) -> list[str]:
    """Copy the cached fitted state of every run in ``results`` (of one suite, or all) to
    ``results/checkpoints/<method>/<fit hash>/``, with the fits each started from (a Stab fine-tune's MSE
    denoiser) and the starts of fits still unfinished in the cache, so a fine-tune cut short by the end of a
    session restarts elsewhere without refitting its start. States over ``max_bytes`` stay local. Returns one line
    per fit."""
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()

    def publish(method: str, fhash: str, why: str = "") -> None:
        if (method, fhash) in seen:
            return
        seen.add((method, fhash))
        source, target = cache_dir / "fits" / method / fhash, checkpoint_dir(results, method, fhash)
        state = source / "state.safetensors"
        if (target / "state.safetensors").is_file():
            lines.append(f"{method} {fhash}{why}: already published")
        elif not state.is_file():
            lines.append(f"{method} {fhash}{why}: not in {cache_dir} (fit it first)")
        elif state.stat().st_size > max_bytes:
            lines.append(f"{method} {fhash}{why}: {state.stat().st_size / 2**20:.1f} MB, over the limit; kept local")
        else:
            target.mkdir(parents=True, exist_ok=True)
            fit_info = {**json.loads((source / "fit.json").read_text()), "state_sha256": sha256_file(state)}
            shutil.copyfile(state, target / "state.safetensors")
            write_json_atomic(target / "fit.json", fit_info)
            lines.append(f"{method} {fhash}{why}: published {state.stat().st_size / 2**10:.0f} KB -> {target}")
        info_path = next((d / "fit.json" for d in (target, source) if (d / "fit.json").is_file()), None)
        inputs = json.loads(info_path.read_text()).get("init_fits", {}) if info_path else {}
        publish_starts(inputs, f"{method} {fhash}")

    def publish_starts(inputs: dict[str, dict], owner: str) -> None:
        for name, start in sorted(inputs.items()):
            publish(name, start["fit_hash"], f" (start of {owner})")

    for run_json in sorted(results.glob(f"{suite or '*'}/*/*/sigma_*/*/run.json")):
        info = json.loads(run_json.read_text())
        fkey = info.get("fit", {}).get("fit_key")
        if fkey:
            publish(info["method"], config_hash(fkey))
    for inputs_path in sorted(cache_dir.glob("fits/*/*/inputs.json")):
        fit_dir = inputs_path.parent
        if not (fit_dir / "state.safetensors").is_file():
            publish_starts(json.loads(inputs_path.read_text()), f"unfinished {fit_dir.parent.name} {fit_dir.name}")
    return lines


def fit_key(key: dict, method_cls: type[Method]) -> dict:
    """The part of a record key a fitted state depends on: never the certification settings, and not the base
    when the method's fit does not use it (a denoiser trained on images alone serves every classifier); likewise
    sigma and precision."""
    drop = {"split", "start", "skip", "n0", "n", "alpha"}
    if not method_cls.fit_uses_base:
        drop |= {"base", "base_config"}
    if not method_cls.fit_uses_sigma:
        drop |= {"sigma"}
    if not method_cls.fit_uses_precision:
        drop |= {"precision"}
    return {k: v for k, v in key.items() if k not in drop}


class Runner:
    """Executes a :class:`RunConfig`.

    Args:
        cfg: the resolved configuration.
        fresh: delete the selected cells' records first.
        progress: show tqdm bars.
        shard: ``(k, N)``: certify only the images at positions ``k, k + N, ...`` of the subset's order, into
            ``records-<k>of<N>.jsonl``; N processes (or GPUs) with k = 0..N-1 together make the whole run, and
            readers merge their files. Records do not depend on the sharding.
    """

    def __init__(
        self, cfg: RunConfig, fresh: bool = False, progress: bool = True, shard: tuple[int, int] | None = None
    ):
        if shard is not None and not 0 <= shard[0] < shard[1]:
            raise BenchmarkError(f"--shard {shard[0]}/{shard[1]}: use K/N with 0 <= K < N, e.g. 0/2 and 1/2")
        if shard is not None and fresh:
            raise BenchmarkError("--fresh with --shard would delete the other shards' records: run --fresh once first")
        self.cfg = cfg
        self.fresh = fresh
        self.shard = shard
        self.progress = progress
        self.device = resolve_device(cfg.device)
        self.bf16 = resolve_bf16(cfg.precision, self.device)
        self.results = Path(cfg.results).expanduser()
        self.cache_dir = Path(cfg.cache_dir).expanduser()
        self.data_root = Path(cfg.data_root).expanduser() if cfg.data_root else None
        self.dataset: DatasetSpec = DATASETS.get(cfg.dataset)()
        self._train_set = None
        self._eval_set = None
        self._bases: dict[str, BaseClassifier] = {}
        # One entry per fit in progress (fits nest: a fine-tune's before_fit may fit its start): the fits it asked
        # the context for, by method name.
        self._fit_inputs: list[dict[str, dict]] = []

    # -- services handed to methods ---------------------------------------------------------------------------
    def build_context(self) -> BuildContext:
        return BuildContext(self.device, self.cache_dir, self.data_root, self.cfg.download, self.bf16, self.cfg.seed)

    def base_config(self, name: str):
        return resolve_base_config(base_spec(name), self.cfg.base_settings.get(name))

    def build_base(self, name: str) -> BaseClassifier:
        if name not in self._bases:
            if not name.startswith("timm:"):
                BASES.check(name)
            spec = base_spec(name)
            model = spec.build(self.base_config(name), self.dataset, self.build_context())
            for p in model.parameters():
                p.requires_grad_(False)
            self._bases[name] = model
        return self._bases[name]

    def train_data(self):
        if self._train_set is None:
            self._train_set = self.dataset.load("train", self.data_root, self.cache_dir, self.cfg.download)
        return self._train_set

    def eval_data(self):
        if self._eval_set is None:
            self._eval_set = self.dataset.load(self.cfg.split, self.data_root, self.cache_dir, self.cfg.download)
        return self._eval_set

    def method_context(self, base: str) -> MethodContext:
        return MethodContext(
            self.dataset, self.device, self.bf16, self.cfg.seed, self.cache_dir, self.train_data, self.build_base,
            eval_data=self.eval_data, fitted=lambda name, sigma: self._fitted_input(name, base, sigma),
        )  # fmt: skip

    def _fitted_input(self, name: str, base: str, sigma: float) -> Method:
        """``ctx.fitted``: another method, fitted; while a fit is being prepared, noted as one of its inputs."""
        method, info = self.fitted(name, base, sigma)
        if self._fit_inputs and info.get("fit_hash"):
            self._fit_inputs[-1][name] = {"fit_hash": info["fit_hash"], "state_sha256": info["state_sha256"]}
        return method

    # -- planning (all validation happens here, before anything is written) ------------------------------------
    def plan(self, dry: bool = False) -> tuple[list[Plan], object]:
        """The runs the configuration selects, with the images each has left. ``dry``: change nothing on disk
        (``--fresh`` counts every image as left instead of deleting records) and build no base."""
        cfg = self.cfg
        methods = METHODS.resolve(cfg.methods)
        for name in cfg.bases:
            if not name.startswith("timm:"):
                BASES.check(name)
        if not cfg.bases:
            raise BenchmarkError(f"suite {cfg.suite!r} names no base model")
        if not dry:
            check_writable(self.results)
        test_set = self.eval_data()
        indices = subset_indices(len(test_set), cfg.start, cfg.skip, cfg.max_images, cfg.seed)
        if not indices:
            raise BenchmarkError(f"no test images selected: --start {cfg.start} is past the {len(test_set)} images")
        plans = []
        for base in cfg.bases:
            base_config = self.base_config(base)
            for method in methods:
                method_cls = METHODS.get(method)
                method_config = self.method_config(method, base)
                for sigma in cfg.sigmas:
                    key = record_key(cfg, method_cls, method_config, base, base_config, sigma, self.bf16)
                    chash = config_hash(key)
                    directory = run_dir(self.results, cfg.suite, method, base, sigma, chash)
                    if self.fresh and not dry:
                        for f in directory.glob("records*.jsonl"):
                            f.unlink()
                    shard = f"{self.shard[0]}of{self.shard[1]}" if self.shard else None
                    writer = RecordWriter(directory, shard, repair=not dry)
                    mine = indices[self.shard[0] :: self.shard[1]] if self.shard else indices
                    todo = [i for i in mine if self.fresh or i not in writer.done]
                    plans.append(Plan(base, method, sigma, key, chash, directory, writer, todo, indices))
        # Build every base now: a missing or corrupt checkpoint fails before the first record is written.
        for base in [] if dry else cfg.bases:
            if any(p.todo for p in plans if p.base == base):
                self.build_base(base)
        return plans, test_set

    def dry_run(self) -> list[str]:
        """What ``run`` would do, as lines of text: per run, the images done and left, where its fitted state
        would come from, and the time left estimated from the run's own records (one process at the measured
        rate; runs not started have no estimate). Reads only; nothing is fitted, built or written."""
        plans, _ = self.plan(dry=True)
        latest = {run.key: run for run in latest_runs(self.results, self.cfg.suite)}
        lines = [f"{'base':<12} {'method':<16} {'sigma':>5} {'prec':<4} {'run':<10} {'images':>9}  fit"]
        total_s, unknown = 0.0, 0
        for plan in plans:
            selected = set(plan.indices)
            records = [] if self.fresh else read_records(plan.directory)
            mine = [r for r in records if r["idx"] in selected]
            done = len(mine)
            left = ""
            if plan.todo and mine:
                rate = certify_s_per_image(mine)
                seconds = len(plan.todo) * rate
                total_s += seconds
                left = f"  ~{_duration(seconds)} left at {rate:.3g} s/img (measured)"
            elif plan.todo:
                unknown += 1
                left = "  not started"
            if plan.todo:
                left += self._elsewhere(plan, latest)
            lines.append(
                f"{plan.base:<12} {plan.method:<16} {plan.sigma:>5g} {plan.key['precision']:<4} {plan.chash:<10} "
                f"{done:>4}/{len(plan.indices):<4}  {self._fit_source(plan)}{left}"
            )
        todo = sum(1 for p in plans if p.todo)
        summary = f"{len(plans)} runs, {todo} with images left"
        if total_s:
            summary += f"; ~{_duration(total_s)} of certification left in the measured ones"
        if unknown:
            summary += f", {unknown} not started (no estimate)"
        return [*lines, summary + "; fits not included"]

    def _fit_source(self, plan: Plan) -> str:
        cls = METHODS.get(plan.method)
        fhash = config_hash(fit_key(plan.key, cls))
        fit_dir = self.cache_dir / "fits" / plan.method / fhash
        if (checkpoint_dir(self.results, plan.method, fhash) / "state.safetensors").is_file():
            return f"{fhash} published"
        if (fit_dir / "state.safetensors").is_file():
            return f"{fhash} cached"
        if (fit_dir / "checkpoint.pt").is_file():
            return f"{fhash} resumes from its checkpoint"
        return f"{fhash} not saved (fitted first, if the method trains)"

    def _elsewhere(self, plan: Plan, latest: dict[tuple, Run]) -> str:
        """The newest run of the same cell in each other precision ("auto" resolves by CPU, and this machine
        would not resume those), so a user can pass --precision to continue one instead."""
        found = []
        for precision in sorted({"bf16", "fp32"} - {plan.key["precision"]}):
            run = latest.get((self.cfg.suite, plan.method, plan.base, float(plan.sigma), precision))
            if run is None:
                continue
            done = f"{len(run.records)}/{len(plan.indices)}"
            if run.info.get("config") == {**plan.key, "precision": precision}:
                found.append(f"{precision} run {run.directory.name} has {done} (--precision {precision})")
            else:  # --precision would start a new run, not resume that one
                found.append(f"{precision} run {run.directory.name} of other settings has {done}")
        return "; " + "; ".join(found) if found else ""

    # -- fitting ----------------------------------------------------------------------------------------------
    def method_config(self, name: str, base: str):
        """Method ``name``'s settings on ``base``: its defaults, then the suite's ``[method_settings.<name>]``, then
        ``[method_settings.<name>.by_base.<base>]`` (one backbone may want another LoRA rank); the settings of
        other bases stay as they were, and so do their config hashes."""
        cls, where = METHODS.get(name), f"[method_settings.{name}]"
        settings = dict(self.cfg.method_settings.get(name, {}))
        by_base = settings.pop("by_base", {})
        if not isinstance(by_base, dict) or not all(isinstance(v, dict) for v in by_base.values()):
            raise BenchmarkError(f"{where} by_base must hold one table per base, e.g. {where[:-1]}.by_base.resnet20]")
        for other in by_base:
            if not other.startswith("timm:"):
                BASES.check(other)
        config = override_dataclass(cls.Config(), settings, where)
        if base in by_base:
            config = override_dataclass(config, by_base[base], f"{where[:-1]}.by_base.{base}]")
        return config

    def _instance(self, name: str, base: str, sigma: float) -> tuple[Method, dict]:
        cls, config = METHODS.get(name), self.method_config(name, base)
        method = cls(config, copy.deepcopy(self.build_base(base)), self.method_context(base))
        key = record_key(self.cfg, cls, config, base, self.base_config(base), sigma, self.bf16)
        return method, fit_key(key, cls)

    def fitted(self, name: str, base: str, sigma: float) -> tuple[Method, dict]:
        """An instance of method ``name`` on ``base`` at ``sigma``, fitted (or loaded from the fit cache)."""
        method, fkey = self._instance(name, base, sigma)
        return method, self.fit_method(method, name, fkey, sigma)

    def saved_fit(self, name: str, base: str, sigma: float) -> Method | None:
        """Method ``name`` loaded from a published or cached fit (or needing none); None rather than fitting."""
        method, fkey = self._instance(name, base, sigma)
        if not method.needs_fit():
            return method
        fhash = config_hash(fkey)
        return method if self._load_fit(method, name, fhash, self.cache_dir / "fits" / name / fhash) else None

    def fit_method(self, method: Method, name: str, fkey: dict, sigma: float) -> dict:
        """Fit through the shared loop, or load the cached fitted state; return the fit's provenance."""
        if not method.needs_fit():
            return {"fit_time_s": 0.0, "cached": False}
        fhash = config_hash(fkey)
        fit_dir = self.cache_dir / "fits" / name / fhash
        loaded = self._load_fit(method, name, fhash, fit_dir)
        if loaded is not None:
            return loaded
        # Shards started together all miss the cache: one fits, the others wait here, then load its state.
        with exclusive(fit_dir.with_name(f"{fhash}.lock")):
            return self._load_fit(method, name, fhash, fit_dir) or self._fit(method, name, fkey, fhash, fit_dir, sigma)

    def _load_fit(self, method: Method, name: str, fhash: str, fit_dir: Path) -> dict | None:
        # A fit committed under <results>/checkpoints (see `publish-fits`) wins over the local cache, so that a run
        # resumed on another machine certifies the very state its first records came from.
        for source in (checkpoint_dir(self.results, name, fhash), fit_dir):
            state_path, info_path = source / "state.safetensors", source / "fit.json"
            if state_path.is_file() and info_path.is_file():
                method.load_saved_state(load_file(str(state_path), device=str(self.device)))
                info = json.loads(info_path.read_text())
                return {**info, "cached": True, "fit_hash": fhash, "state_sha256": sha256_file(state_path)}
        return None

    def _fit(self, method: Method, name: str, fkey: dict, fhash: str, fit_dir: Path, sigma: float) -> dict:
        state_path, info_path = fit_dir / "state.safetensors", fit_dir / "fit.json"
        self._fit_inputs.append({})
        try:
            method.before_fit(sigma)
        finally:
            inputs = self._fit_inputs.pop()
        if inputs:
            # Written before the loop starts, so `publish-fits` can commit the start of a fit a session cut short.
            write_json_atomic(fit_dir / "inputs.json", inputs)
        result = fit(
            method.fitted_module(), method.trainable_parameters(),
            lambda batch, gen: method.training_loss(batch, sigma, gen),
            self.train_data(), method.train_config(), device=self.device,
            bf16=self.bf16 and type(method).fit_uses_precision, seed=self.cfg.seed,
            checkpoint=fit_dir / "checkpoint.pt", augment=self.dataset.augment, train_mode=method.set_train_mode,
            desc=f"fit {name} sigma={sigma:g}",
        )  # fmt: skip
        info = {"fit_time_s": result.time_s, "steps": result.steps, "epochs": result.epochs,
                "final_loss": result.final_loss, "loss_history": result.loss_history,
                "resumed_from_epoch": result.resumed_from_epoch,
                "fit_key": fkey, **method.fit_report(sigma)}  # fmt: skip
        if inputs:
            info["init_fits"] = inputs
        tensors = {k: v.contiguous().cpu() for k, v in method.state_to_save().items()}
        write_atomic(state_path, lambda tmp: save_file(tensors, str(tmp)))
        write_json_atomic(info_path, info)
        (fit_dir / "checkpoint.pt").unlink(missing_ok=True)
        return {**info, "cached": False, "fit_hash": fhash, "state_sha256": sha256_file(state_path)}

    # -- upkeep -----------------------------------------------------------------------------------------------
    def recount(self) -> list[str]:
        """Correct what older run.json files of the suite say of their cost and data, and nothing else.

        * Cost: the trainable share is of the base's own parameters; run.json written before it was defined so
          (LoRA, adapters and VPT counted their own modules in the denominator) get it recounted, each base built
          as a run builds it.
        * Data: ``dataset_label`` is what the dataset calls the data under the run's recorded data root; runs
          written before a re-encoded copy was named so (``CIFAR-10`` for ../shared's JPEG q75 tree) are
          relabelled, but only those whose recorded root is the directory this command reads.

        No run being written is touched. Returns one line per run rewritten."""
        lines = []
        for run in iter_runs(self.results, self.cfg.suite):
            info, said = dict(run.info), []
            cost = info.get("cost") or {}
            if "trainable_params" in cost:
                own = count_parameters(self.build_base(info["base"]))
                recounted = {**cost, "base_params": own, "trainable_pct": share_of_base(cost["trainable_params"], own)}
                if recounted != cost:
                    info["cost"] = recounted
                    said.append(f"{cost.get('trainable_pct', float('nan')):.2f} % -> {recounted['trainable_pct']:.2f}"
                                f" % ({cost['trainable_params']:,} of {own:,})")  # fmt: skip
            label = self._data_label(info)
            if label is not None and label != info.get("dataset_label"):
                said.append(f"data {info.get('dataset_label')!r} -> {label!r}")
                info["dataset_label"] = label
            if not said:
                continue
            if writing(run.directory):
                lines.append(f"{run.directory}: being written, left as it is; run recount again when it ends")
                continue
            write_json_atomic(run.directory / "run.json", info)
            lines.append(f"{run.directory}: {'; '.join(said)}")
        return lines

    def _data_label(self, info: dict) -> str | None:
        """The label of this runner's data if ``info`` was certified on that very directory, else None."""
        recorded, root = (info.get("run_settings") or {}).get("data_root"), self.data_root
        # No root here to read, or another one: nothing to name the data from, so the label stands.
        if info.get("dataset") != self.cfg.dataset or not recorded or root is None or not root.is_dir():
            return None
        if Path(recorded).expanduser().resolve() != root.resolve():
            return None
        self.eval_data()  # the label is set from what the root holds (e.g. JPEG files) when it is read
        return self.dataset.label

    # -- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> list[Path]:
        plans, test_set = self.plan()
        for plan in plans:
            if not plan.todo:
                continue
            info = self.start_run_json(plan)
            method, fit_info = self.fitted(plan.method, plan.base, plan.sigma)
            self.check_same_state(plan, fit_info)
            info.update(
                fit=fit_info, cost=method.cost(), notes=method.describe(), report=method.run_report(plan.sigma)
            )
            info["timings"]["fit_time_s"] = fit_info.get("fit_time_s", 0.0)
            classifier = SmoothingClassifier(method.noisy_classifier(plan.sigma), self.device, self.bf16)
            write_json_atomic(plan.directory / "run.json", info)
            self.certify_images(plan, classifier, test_set, info)
        return [p.directory for p in plans]

    def check_same_state(self, plan: Plan, fit_info: dict) -> None:
        """Refuse to append records certified with a different fitted state than the run's existing ones (a refit
        on another machine is not bit-identical)."""
        before = (read_run_json(plan.directory) or {}).get("fit", {}).get("state_sha256")
        now_sha = fit_info.get("state_sha256")
        if plan.writer.done and before and now_sha and before != now_sha:
            raise BenchmarkError(
                f"{plan.directory}: its {len(plan.writer.done)} records came from fitted state {before[:12]}, but "
                f"this fit is {now_sha[:12]}: restore that state under {checkpoint_dir(self.results, plan.method, '')}"
                " (python -m benchmark publish-fits) or rerun with --fresh"
            )

    def start_run_json(self, plan: Plan) -> dict:
        cfg = self.cfg
        previous = read_run_json(plan.directory) or {}
        timings = previous.get("timings", {"certify_time_s": 0.0, "images": 0})
        return {
            "suite": cfg.suite,
            "method": plan.method,
            "base": plan.base,
            "sigma": float(plan.sigma),
            "dataset": cfg.dataset,
            "dataset_label": self.dataset.label,
            "split": cfg.split,
            "n0": cfg.n0,
            "n": cfg.n,
            "alpha": cfg.alpha,
            "seed": cfg.seed,
            "radii": list(cfg.radii),
            "config_hash": plan.chash,
            "config": plan.key,
            "run_settings": {
                "batch_size": cfg.batch_size,
                "max_images": cfg.max_images,
                "device": str(self.device),
                "data_root": cfg.data_root,
                "results": cfg.results,
                "shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
            },  # fmt: skip
            "argv": command_line(),
            "git": git_state(),
            "packages": package_versions(),
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "torch_threads": torch.get_num_threads(),
            "status": "running",
            "started": previous.get("started", now()),
            "sessions": int(previous.get("sessions", 0)) + 1,
            "updated": now(),
            "timings": timings,
        }

    def certify_images(self, plan: Plan, classifier, test_set, info: dict) -> None:
        cfg = self.cfg
        bar = tqdm(plan.todo, desc=f"{plan.base}/{plan.method} sigma={plan.sigma:g}", unit="img",
                   disable=None if self.progress else True)  # fmt: skip
        try:
            for idx in bar:
                x, label = test_set[idx]
                x = x.to(self.device)
                t0 = time.perf_counter()
                gen = image_generator(cfg.seed, idx, self.device)
                cert = certify(classifier, x, plan.sigma, cfg.n0, cfg.n, cfg.alpha, cfg.batch_size, gen)
                elapsed = time.perf_counter() - t0
                plan.writer.append({
                    "method": plan.method, "config_hash": plan.chash, "dataset": cfg.dataset, "split": cfg.split,
                    "idx": idx, "sigma": float(plan.sigma), "seed": cfg.seed, "n0": cfg.n0, "n": cfg.n,
                    "alpha": cfg.alpha, "label": int(label), "prediction": cert.prediction,
                    "correct": int(cert.prediction == int(label) and cert.prediction != ABSTAIN),
                    "radius": cert.radius, "p_a_lower": cert.p_a_lower, "n_top": cert.n_top,
                    "n_used": cfg.n0 + cfg.n, "time_s": elapsed,
                })  # fmt: skip
                bar.set_postfix(samples_s=f"{(cfg.n0 + cfg.n) / elapsed:,.0f}")
        finally:
            plan.writer.close()
            bar.close()
            # Totals come from the records of every shard and session, so concurrent shards, each rewriting
            # run.json when it stops, agree, and the last one to stop leaves the totals of the whole run.
            merged = read_records(plan.directory)
            info["timings"].update(certify_time_s=sum(r["time_s"] for r in merged), images=len(merged))
            if merged:
                info["timings"]["certify_s_per_image"] = certify_s_per_image(merged)
            info["updated"] = now()
            info["images_done"] = len(merged)
            info["status"] = "complete" if set(plan.indices) <= {r["idx"] for r in merged} else "partial"
            write_json_atomic(plan.directory / "run.json", info)
