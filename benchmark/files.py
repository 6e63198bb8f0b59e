"""File primitives every writer shares: atomic replacement, advisory locks, content hashes, provenance stamps.

Nothing here knows what a record, a fit or a leaderboard is; the modules that do (``records``, ``store``, ``train``,
``data``) all write through these, so "a reader never sees half a file" and "shards wait for one another" are
each implemented once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from benchmark.errors import BenchmarkError


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


def write_json_atomic(path: Path, obj: dict) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path, what: str = "file") -> dict | None:
    """A JSON object from ``path``; None when the file is absent, one error line when it is corrupt."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise BenchmarkError(f"{path} is corrupt: delete that {what} and rerun the same command") from None


def lock(handle, shared: bool, wait: bool) -> bool:
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


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the ``with`` block.

    Shards of one run start together and share the caches: the first fits, the others wait here and then load
    its state instead of fitting the same thing again. Where there are no locks (see :func:`lock`) this is a no-op.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:  # closing it releases the lock
        lock(handle, shared=False, wait=True)
        yield


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_writable(directory: Path, flag: str = "--results", what: str = "results directory") -> None:
    """Fail early, touching nothing, when ``directory`` cannot be written (or is a file)."""
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise BenchmarkError(f"{what} {directory} is not writable: pass {flag} DIR with a writable DIR")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# What may name a folder: a suite, method or base (``timm:org/model`` included), a fit or config hash.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+/-]*")
_HASH = re.compile(r"[0-9a-f]{10}")


def safe_name(name: object, what: str = "name") -> str:
    """``name`` as one path component (``timm:vit_b`` -> ``timm-vit_b``); anything that could leave the folder it
    is joined to (``..``, an absolute path, a separator at the start) is refused with one line."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise BenchmarkError(f"{what} {name!r} cannot name a folder: use letters, digits and _ . : + - / (no '..')")
    return name.replace(":", "-").replace("/", "-")


def safe_hash(value: object, what: str = "hash") -> str:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise BenchmarkError(f"{what} {value!r} is not a 10-digit hexadecimal hash")
    return value


def inside(root: Path, path: Path) -> Path:
    """``path``, refused unless it resolves inside ``root`` (no name, however it was spelt, writes elsewhere)."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise BenchmarkError(f"{path} lies outside {root}: refusing to write there")
    return path


class Claims:
    """Work shared among processes on one run: image ``i`` is claimed by locking byte ``i`` of one file.

    Two identical runs started together (two queues on one cell) split the images instead of certifying each twice.
    The locks are POSIX record locks, which the kernel drops when their process dies, so a killed run's images
    are free again at once. Where the filesystem has no locks every claim succeeds (work may then be duplicated,
    never lost; readers keep one record per image).
    """

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # One descriptor per process and file: closing any descriptor of the file would drop all of its locks.
        self._fh = open(path, "a+b")  # noqa: SIM115 - held for the claims' lifetime
        self.path = path

    def claim(self, position: int) -> bool:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return True
        try:
            fcntl.lockf(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, position)
        except (BlockingIOError, PermissionError):
            return False
        except OSError:  # ENOLCK and the like: no locks here
            return True
        return True

    def release(self, position: int) -> None:
        try:
            import fcntl

            fcntl.lockf(self._fh, fcntl.LOCK_UN, 1, position)
        except (ImportError, OSError):
            pass

    def close(self) -> None:
        self._fh.close()
