"""Where a result came from: the command, the code (git commit and dirty flag) and the package versions, as every
run.json records them."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from benchmark.config.suite import PROJECT_ROOT, is_published
from benchmark.errors import BenchmarkError
from benchmark.files import write_json_atomic

PACKAGES = ("torch", "torchvision", "timm", "peft", "diffusers", "numpy", "scipy", "safetensors")


# What a run writes itself (records, tables, the README's table block): changes there do not make the code dirty.
GENERATED = ("results", "leaderboards", "README.md")


def git_state() -> dict:
    """Commit SHA and dirty flag of the project checkout (None when not a git checkout); dirty means a tracked file
    outside what runs generate differs from the commit, so the code that ran is not the commit named."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){g}" for g in GENERATED))
    return {"sha": sha, "dirty": bool(status) if status is not None else None}


def check_clean(suite: str, allow_dirty: bool) -> None:
    """Results of a published suite come from committed code: refuse a checkout with uncommitted code changes
    unless ``allow_dirty`` (``--allow-dirty``, which run.json records)."""
    if not allow_dirty and is_published(suite) and git_state()["dirty"]:
        raise BenchmarkError(
            f"the checkout has uncommitted code changes and suite {suite!r} publishes its results: "
            "commit them first, or pass --allow-dirty (run.json records it)"
        )


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def command_line() -> list[str]:
    return [Path(sys.executable).name, "-m", "benchmark", *sys.argv[1:]]


def stamp(device) -> dict:
    """The provenance block every result file carries, as run.json has it: the command, the code, the packages and
    the device (``device`` a torch.device)."""
    return {
        "argv": command_line(),
        "git": git_state(),
        "packages": package_versions(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
    }


def write_stamped(path: Path, meta: dict, device) -> None:
    """``meta`` and its provenance (:func:`stamp`) as the JSON file ``path``, replaced atomically: attack.json and
    audit.json."""
    write_json_atomic(path, {**meta, **stamp(device)})
