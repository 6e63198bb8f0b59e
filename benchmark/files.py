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


def check_writable(results: Path) -> None:
    """Fail early, touching nothing, when ``results`` cannot be written."""
    probe = results
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise BenchmarkError(f"results directory {results} is not writable: pass --results DIR with a writable DIR")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
