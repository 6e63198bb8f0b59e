"""Per-image records and run provenance: append-only JSON lines, resumable, shard-aware.

Layout: ``<results>/<suite>/<method>/<base>/sigma_<s>/<config hash>/`` holds ``records.jsonl`` (or
``records-<k>of<N>.jsonl`` per shard of ``run --shard k/N``; readers merge them) and ``run.json``. A record is
written as one whole line and flushed. A torn last line (a run killed mid-write) is skipped by readers and cut off
by the next writer of that file only, before it appends: readers never modify files, so a leaderboard regenerated
beside a running job (or one shard starting beside another) cannot truncate a line that is being written.

A writer holds a shared advisory lock on its records file while it is open, so "running" is read from the kernel,
not from run.json: a run killed without its ``finally`` (SIGKILL, power loss) left ``"running"`` there, and the
kernel dropped its lock, so readers report it as "partial".
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from benchmark.config import PROJECT_ROOT
from benchmark.errors import BenchmarkError

RECORD_FIELDS = (
    "method", "config_hash", "dataset", "split", "idx", "sigma", "seed", "n0", "n", "alpha",
    "label", "prediction", "correct", "radius", "p_a_lower", "n_top", "n_used", "time_s",
)  # fmt: skip
PACKAGES = ("torch", "torchvision", "timm", "peft", "diffusers", "numpy", "scipy", "safetensors")


def safe_name(name: str) -> str:
    """A registry key as a path component (``timm:vit_b`` -> ``timm-vit_b``)."""
    return name.replace(":", "-").replace("/", "-")


def run_dir(results: Path, suite: str, method: str, base: str, sigma: float, chash: str) -> Path:
    return results / safe_name(suite) / safe_name(method) / safe_name(base) / f"sigma_{sigma:g}" / chash


class RecordWriter:
    """Appends records to ``records[-<shard>].jsonl`` in ``directory``.

    Args:
        directory: the run directory (created on first write, not before).
        shard: rank name for sharded runs (None: a single file).
        repair: cut a torn last line off the file first (False: only to read what is done).
    """

    def __init__(self, directory: Path, shard: str | None = None, repair: bool = True):
        self.directory = directory
        self.path = directory / (f"records-{shard}.jsonl" if shard else "records.jsonl")
        self._fh = None
        if repair:
            _cut_torn_tail(self.path)
        self.done: set[int] = {r["idx"] for r in read_records(directory)}

    def _open(self):
        if self._fh is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across appends
            _lock(self._fh, shared=True, wait=True)
        return self._fh

    def append(self, record: dict) -> None:
        missing = [f for f in RECORD_FIELDS if f not in record]
        if missing:
            raise ValueError(f"record lacks fields {missing}")
        fh = self._open()
        fh.write(json.dumps(record, allow_nan=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
        self.done.add(int(record["idx"]))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _whole_lines(path: Path) -> tuple[list[dict], int, int]:
    """The rows of a records file's whole lines, their byte length and the file's; a torn (unterminated or
    unparsable) last line is left out. A corrupt line before the last is an error."""
    data = path.read_bytes()
    keep = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
    rows = []
    lines = keep.splitlines()
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise BenchmarkError(
                    f"{path} line {i + 1} is corrupt: delete that line or rerun with --fresh"
                ) from None
            keep = keep[: len(keep) - len(line) - 1]
    return rows, len(keep), len(data)


def _cut_torn_tail(path: Path) -> None:
    """Cut a torn last line off the file this process is about to append to (readers leave it alone)."""
    if path.is_file():
        _, keep, size = _whole_lines(path)
        if keep != size:
            with open(path, "r+b") as fh:
                fh.truncate(keep)


def _lock(handle, shared: bool, wait: bool) -> bool:
    """flock ``handle``; False if ``wait`` is off and another process holds a conflicting lock. Where locks do not
    exist (Windows, or a network filesystem that refuses flock) none is taken and this succeeds: runs go on, and a
    killed run reads "partial" as it should, but a live one does too."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return True
    flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
    try:
        fcntl.flock(handle, flags)
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: no locks on this filesystem
        return True
    return True


def writing(directory: Path) -> bool:
    """Whether a live process has one of the run's records files open for appending (see the module docstring)."""
    for path in directory.glob("records*.jsonl"):
        with open(path, "rb") as handle:
            if not _lock(handle, shared=False, wait=False):
                return True
    return False


def read_records(directory: Path) -> list[dict]:
    """All records of a run directory, shards merged, one per index (first wins), sorted by index."""
    by_idx: dict[int, dict] = {}
    for path in sorted(directory.glob("records*.jsonl")):
        for row in _whole_lines(path)[0]:
            by_idx.setdefault(int(row["idx"]), row)
    return [by_idx[i] for i in sorted(by_idx)]


def git_state() -> dict:
    """Commit SHA and dirty flag of the project checkout (None when not a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through ``write(tmp)`` and an atomic rename, so that a reader never sees half a file.

    The temporary name is unique to the process and thread: two runs sharing a cache (two queues started together)
    may write the same file at once, and with one shared temporary name the first rename pulls it from under the
    other.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the ``with`` block.

    Shards of one run start together and share the fit cache: the first fits, the others wait here and then load
    its state instead of fitting the same thing again. Where there are no locks (see ``_lock``) this is a no-op.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:  # closing it releases the lock
        _lock(handle, shared=False, wait=True)
        yield


def write_json_atomic(path: Path, obj: dict) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def read_run_json(directory: Path) -> dict | None:
    path = directory / "run.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise BenchmarkError(f"{path} is corrupt: delete it (records stay) and rerun the same command") from None


@dataclass
class Run:
    """One run directory as read back: its provenance and its records."""

    directory: Path
    info: dict
    records: list[dict]

    @property
    def precision(self) -> str:
        return str(self.info.get("config", {}).get("precision", "fp32"))

    @property
    def status(self) -> str | None:
        """run.json's status, except that "running" stands only while a writer is alive: a run that died without
        recording its end reads "partial", which is what its records are."""
        recorded = self.info.get("status")
        if recorded == "running" and not writing(self.directory):
            return "partial"
        return recorded

    @property
    def key(self) -> tuple[str, str, str, float, str]:
        # Precision is part of the key: "auto" resolves to bf16 or fp32 by CPU, and a run on a machine without
        # native bf16 must stand beside the bf16 rows, not hide them as if it were a newer configuration.
        return (self.info["suite"], self.info["method"], self.info["base"], float(self.info["sigma"]), self.precision)


def run_label(method: str, precision: str, mixed: bool) -> str:
    """A row's name in tables and plots: the method, with its precision where rows of two precisions meet."""
    return f"{method} [{precision}]" if mixed else method


def unfinished(status: str | None, images: int | None = None) -> str:
    """What follows a row's name while it is not complete (" (running)", " (partial, 36 images)"), so a curve or
    cell of an unfinished row never reads as a final one; nothing for a complete row."""
    if status == "complete":
        return ""
    return f" ({status})" if images is None else f" ({status}, {images} image{'' if images == 1 else 's'})"


def envelope_sources(parts: Iterable[tuple[float, str | None, int | None]]) -> str:
    """The (sigma, status, images) rows an envelope is taken over, e.g. "0.25 (running, 9 images), 0.5"."""
    return ", ".join(f"{sigma:g}{unfinished(status, images)}" for sigma, status, images in sorted(parts))


def iter_runs(results: Path, suite: str | None = None) -> Iterable[Run]:
    """Every run directory under ``results`` (optionally one suite) that has a run.json."""
    pattern = f"{safe_name(suite)}/*/*/sigma_*/*/run.json" if suite else "*/*/*/sigma_*/*/run.json"
    for path in sorted(results.glob(pattern)):
        info = read_run_json(path.parent)
        if info is not None:
            yield Run(path.parent, info, read_records(path.parent))


def latest_runs(results: Path, suite: str | None = None) -> list[Run]:
    """One run per (suite, method, base, sigma, precision): the most recently updated config hash; older ones are
    kept on disk but left out of tables, so a changed configuration never mixes with stale records."""
    chosen: dict[tuple, Run] = {}
    for run in iter_runs(results, suite):
        previous = chosen.get(run.key)
        if previous is None or run.info.get("updated", "") > previous.info.get("updated", ""):
            chosen[run.key] = run
    return [chosen[k] for k in sorted(chosen)]


def check_writable(results: Path) -> None:
    """Fail early, touching nothing, when ``results`` cannot be written."""
    probe_dir = results
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir() or not os.access(probe_dir, os.W_OK | os.X_OK):
        raise BenchmarkError(f"results directory {results} is not writable: pass --results DIR with a writable DIR")


def command_line() -> list[str]:
    return [Path(sys.executable).name, "-m", "benchmark", *sys.argv[1:]]
