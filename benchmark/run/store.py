"""The fit store: where every fitted state lives, for method fits and for bases the suite trains itself.

Layout: a fit of ``name`` under key hash ``fhash`` is the directory ``<cache>/<kind>/<name>/<fhash>/`` holding
``state.safetensors`` (the tensors) and ``fit.json`` (provenance: the fit key, the loop's cost and losses, the
state's SHA-256), plus while it trains ``checkpoint.pt`` (per epoch, for resuming) and, for a fit that starts from
other fits, ``inputs.json`` (written before the loop, so the start of a fit a session cut short can be published).

Lookup order: a fit published under ``<results>/checkpoints/<name>/<fhash>/`` (see :meth:`FitStore.publish`) wins
over the local cache, so a run resumed on another machine certifies the very state its first records came from.
A missing fit is made once: runs started together take a lock per fit; the first fits, the others wait and load.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from benchmark.bases import base_spec
from benchmark.config.hashing import config_hash
from benchmark.errors import BenchmarkError
from benchmark.files import (
    exclusive,
    inside,
    read_json,
    safe_hash,
    safe_name,
    sha256_file,
    write_atomic,
    write_json_atomic,
)
from benchmark.run.records import iter_runs

STATE, INFO, CHECKPOINT, INPUTS = "state.safetensors", "fit.json", "checkpoint.pt", "inputs.json"

# ``fit_fn(directory) -> (tensors, provenance)``: trains, checkpointing into ``directory``.
FitFn = Callable[[Path], tuple[dict[str, torch.Tensor], dict]]


@dataclass(frozen=True)
class Fit:
    """A fitted state as the store hands it out.

    Attributes:
        state: the tensors, on the requested device.
        info: ``fit.json`` plus ``fit_hash``, ``state_sha256`` and ``cached`` (False only where it was just made).
        path: the file the state came from.
    """

    state: dict[str, torch.Tensor]
    info: dict
    path: Path

    def damaged(self, why: str) -> BenchmarkError:
        """The one-line error for a stored state that cannot be used as it is, with the ways out."""
        return BenchmarkError(f"{self.path} {why}: {way_out(self.path)}")


def way_out(path: Path) -> str:
    """What to do about a damaged stored state: a published one is restored from git, a cached one refitted."""
    if path.parent.parent.parent.name == "checkpoints":
        return f"restore it with 'git checkout -- {path.parent}' (or delete that folder to refit)"
    return f"delete {path.parent} to fit it again, restore it with publish-fits from a copy, or rerun with --fresh"


class FitStore:
    """Args:
    cache_dir: the local cache root.
    results: the results tree whose ``checkpoints/`` holds published fits (None: the cache alone).
    """

    def __init__(self, cache_dir: Path, results: Path | None = None):
        self.cache_dir = cache_dir
        self.published_root = results / "checkpoints" if results is not None else None

    def cache_path(self, name: str, fhash: str, kind: str = "fits") -> Path:
        return inside(self.cache_dir, self.cache_dir / kind / safe_name(name) / safe_hash(fhash, "fit hash"))

    def published_path(self, name: str, fhash: str) -> Path | None:
        if self.published_root is None:
            return None
        return inside(self.published_root, self.published_root / safe_name(name) / safe_hash(fhash, "fit hash"))

    def _sources(self, name: str, fhash: str, kind: str) -> list[Path]:
        # a base the suite trains is published beside the fits, under its slot name (``<base>-<dataset>``)
        return [p for p in (self.published_path(name, fhash), self.cache_path(name, fhash, kind)) if p is not None]

    def where(self, name: str, fhash: str, kind: str = "fits") -> str:
        """``published``, ``cached``, ``checkpoint`` (a fit under way can resume) or ``missing``."""
        published = self.published_path(name, fhash)
        if published is not None and (published / STATE).is_file():
            return "published"
        cached = self.cache_path(name, fhash, kind)
        if (cached / STATE).is_file():
            return "cached"
        return "checkpoint" if (cached / CHECKPOINT).is_file() else "missing"

    def load(self, name: str, fhash: str, device: torch.device | str = "cpu", kind: str = "fits") -> Fit | None:
        """The stored fit (published first, then the cache), or None; a state that does not match the SHA-256 its
        ``fit.json`` records, or that cannot be read, is an error naming the file, never a silent load."""
        for source in self._sources(name, fhash, kind):
            state_path, info_path = source / STATE, source / INFO
            if state_path.is_file() and info_path.is_file():
                info = read_json(info_path, "fit.json") or {}
                digest = sha256_file(state_path)
                found = Fit({}, {**info, "cached": True, "fit_hash": fhash, "state_sha256": digest}, state_path)
                if info.get("state_sha256") not in (None, digest):
                    raise found.damaged("does not match the SHA-256 its fit.json records (the file is damaged)")
                try:
                    state = load_file(str(state_path), device=str(device))
                except Exception as err:  # noqa: BLE001 - safetensors raises its own error types for bad files
                    raise found.damaged(f"is not a readable safetensors file ({type(err).__name__})") from None
                return Fit(state, found.info, state_path)
        return None

    def get_or_fit(
        self, name: str, fhash: str, fit_fn: FitFn, device: torch.device | str = "cpu", kind: str = "fits"
    ) -> Fit:
        """The stored fit, or ``fit_fn`` run once (under a lock shared by every process on this cache) and saved:
        tensors atomically as safetensors, provenance with the state's SHA-256; the training checkpoint is dropped."""
        found = self.load(name, fhash, device, kind)
        if found is not None:
            return found
        directory = self.cache_path(name, fhash, kind)
        with exclusive(directory.with_name(f"{fhash}.lock")):
            found = self.load(name, fhash, device, kind)
            if found is not None:
                return found
            tensors, info = fit_fn(directory)
            tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
            write_atomic(directory / STATE, lambda tmp: save_file(tensors, str(tmp)))
            info = {**info, "state_sha256": sha256_file(directory / STATE)}
            write_json_atomic(directory / INFO, info)
            (directory / CHECKPOINT).unlink(missing_ok=True)
        state = {k: v.to(device) for k, v in tensors.items()}
        return Fit(state, {**info, "cached": False, "fit_hash": fhash}, directory / STATE)

    # -- publishing -------------------------------------------------------------------------------------------
    def publish(self, results: Path, suite: str | None, max_bytes: int) -> list[str]:
        """Copy the cached fitted state of every run in ``results`` (of one suite, or all), and of every fit its
        attack results evaluated, to ``results/checkpoints/<method>/<fit hash>/``, with the fits each started from
        (a Stab fine-tune's MSE denoiser) and the starts of fits still unfinished in the cache, so a fine-tune cut
        short by the end of a session restarts elsewhere without refitting its start. States over ``max_bytes`` stay
        local. Returns one line per fit."""
        publisher = _Publisher(self, FitStore(self.cache_dir, results), max_bytes)
        for run in iter_runs(results, suite):
            fkey = run.info.fit.get("fit_key")
            if fkey:
                publisher.publish(run.info.method, config_hash(fkey), expect=run.info.fit.get("state_sha256"))
            base = None if run.info.fit.get("external") else base_spec(run.info.base)
            slot = base and base.stored_slot(run.info.config.get("base_config"), run.info.dataset, run.info.seed)
            if slot:  # the base the suite trained for the run, so the run certifies elsewhere without training it
                publisher.publish(*slot, f" (base of {run.info.method} run {run.directory.name})", kind="bases")
            publisher.publish_starts(run.info.fit.get("composes", {}), f"{run.info.method} run {run.directory.name}")
        # the fits `attack` evaluated (sigma-0 fits that no certified run names)
        for meta_path in sorted(results.glob(f"{suite or '*'}/attack/*/*/sigma_*/*/attack.json")):
            fit = (read_json(meta_path, "attack.json") or {}).get("fit", {})
            if fit.get("fit_hash"):
                method = meta_path.parents[3].name  # <suite>/attack/<method>/<base>/sigma_<s>/<hash>/attack.json
                publisher.publish(
                    method, fit["fit_hash"], f" (attacked in {meta_path.parent.name})", expect=fit.get("state_sha256")
                )
        for inputs_path in sorted(self.cache_dir.glob(f"fits/*/*/{INPUTS}")):
            fit_dir = inputs_path.parent
            if not (fit_dir / STATE).is_file():
                owner = f"unfinished {fit_dir.parent.name} {fit_dir.name}"
                publisher.publish_starts(json.loads(inputs_path.read_text()), owner)
        return publisher.lines


class _Publisher:
    """One ``publish`` pass: each fit once, with the fits it started from."""

    def __init__(self, store: FitStore, target: FitStore, max_bytes: int):
        self.store, self.target, self.max_bytes = store, target, max_bytes
        self.lines: list[str] = []
        self.seen: set[tuple[str, str]] = set()

    def publish(self, method: str, fhash: str, why: str = "", expect: str | None = None, kind: str = "fits") -> None:
        """``expect``: the state's SHA-256 the results that name this fit recorded (None: not known); ``kind``:
        where the cache keeps it ("bases" for a base the suite trains)."""
        if (method, fhash) in self.seen:
            return
        self.seen.add((method, fhash))
        source, target = self.store.cache_path(method, fhash, kind), self.target.published_path(method, fhash)
        state = source / STATE
        if (target / STATE).is_file():
            self.lines.append(f"{method} {fhash}{why}: already published")
        elif not state.is_file():
            self.lines.append(f"{method} {fhash}{why}: not in {self.store.cache_dir} (fit it first)")
        elif expect and sha256_file(state) != expect:  # a refit here is not the state the results came from
            self.lines.append(
                f"{method} {fhash}{why}: the cached state is not the one its results record "
                f"({expect[:12]}); not published"
            )
        elif state.stat().st_size > self.max_bytes:
            size = state.stat().st_size / 2**20
            self.lines.append(f"{method} {fhash}{why}: {size:.1f} MB, over the limit; kept local")
        else:
            target.mkdir(parents=True, exist_ok=True)
            fit_info = {**json.loads((source / INFO).read_text()), "state_sha256": sha256_file(state)}
            shutil.copyfile(state, target / STATE)
            write_json_atomic(target / INFO, fit_info)
            self.lines.append(f"{method} {fhash}{why}: published {state.stat().st_size / 2**10:.0f} KB -> {target}")
        info_path = next((d / INFO for d in (target, source) if (d / INFO).is_file()), None)
        inputs = json.loads(info_path.read_text()).get("init_fits", {}) if info_path else {}
        self.publish_starts(inputs, f"{method} {fhash}")

    def publish_starts(self, inputs: dict[str, dict], owner: str) -> None:
        for name, start in sorted(inputs.items()):
            self.publish(start.get("method", name), start["fit_hash"], f" (start of {owner})")
