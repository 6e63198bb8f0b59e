"""One JSON-lines pipeline for every per-image result: certificates (``run``), attacks and audits.

A result type is a class with ``idx``, ``to_json()`` and ``from_json(row)`` (raising ValueError or TypeError on a
row that is not one of it); :class:`JsonlWriter` appends it, :func:`read_jsonl` reads it back strictly, and
:func:`claimed` shares the images among identical processes. So a torn tail, a corrupt line, two processes at once
or a rerun behave the same whichever command wrote the file.

A row is written as one whole line, flushed and fsynced. A torn last line (a process killed mid-write, a full
disk) is skipped by readers and cut off by the next writer of that file only, before it appends: readers never
modify files, so a page regenerated beside a running job cannot truncate a line being written. A corrupt line
before the last, or a line that parses but is not a row of the type, is an error naming the file and the line.

A writer holds a shared advisory lock on its file while it is open, so "being written" is read from the kernel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from benchmark.errors import BenchmarkError
from benchmark.files import Claims, lock

FRESH = "delete that line or rerun with --fresh"
RERUN = "delete that line and rerun the same command"
_NUMBERS = {"int": int, "float": (int, float)}  # a field's type as written (annotations are strings here)


def typed_row(cls, row: object):
    """An instance of the dataclass ``cls`` from a parsed line: a JSON object with every field that has no default,
    numbers where the fields are numbers; keys ``cls`` does not know are ignored (files of newer versions)."""
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    fields = dataclasses.fields(cls)
    missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in row]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)}")
    for f in fields:
        value, types = row.get(f.name), _NUMBERS.get(f.type)
        if f.name in row and types and (not isinstance(value, types) or isinstance(value, bool)):
            raise ValueError(f"{f.name} is not {'a whole number' if f.type == 'int' else 'a number'}")
    if not isinstance(row["idx"], int) or row["idx"] < 0:  # an index names a claim's byte: a whole number >= 0
        raise ValueError("idx is not an image index")
    return cls(**{f.name: row[f.name] for f in fields if f.name in row})


def _parse(data: bytes, path: Path, kind, first: int, remedy: str) -> tuple[list, int]:
    """The rows of ``data``'s whole lines (line ``first`` is its first) and the bytes they span; a torn last line
    (unterminated or unparsable) is left out. A corrupt line before the last is an error."""
    keep = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
    lines = keep.split(b"\n")[:-1]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except ValueError:  # not JSON, or not UTF-8
            if i != len(lines) - 1:
                raise BenchmarkError(f"{path} line {first + i} is corrupt: {remedy}") from None
            keep = keep[: len(keep) - len(line) - 1]
    records = []
    for i, row in enumerate(rows):
        try:
            records.append(kind.from_json(row))
        except (ValueError, TypeError) as err:
            raise BenchmarkError(f"{path} line {first + i} is not a record ({err}): delete that line") from None
    return records, len(keep)


def whole_lines(path: Path, kind, remedy: str = FRESH) -> tuple[list, int, int]:
    """The rows of a file's whole lines, the bytes they span and the file's size."""
    data = path.read_bytes()
    records, keep = _parse(data, path, kind, 1, remedy)
    return records, keep, len(data)


def cut_torn_tail(path: Path, kind, remedy: str = FRESH) -> None:
    """Cut a torn last line off the file this process is about to append to (readers leave it alone)."""
    if not path.is_file():
        return
    with open(path, "r+b") as fh:
        # A live writer holds a shared lock and may be mid-line: that tail is not torn, and the writer that
        # started first has cut whatever a dead one left. Without locks (see files.lock) this always cuts.
        if not lock(fh, shared=False, wait=False):
            return
        _, keep, size = whole_lines(path, kind, remedy)
        if keep != size:
            fh.truncate(keep)


def read_jsonl(directory: Path, kind, pattern: str = "records*.jsonl", remedy: str = FRESH) -> list:
    """The rows of every file matching ``pattern`` in ``directory``, one per index (the first wins), in file
    order."""
    by_idx: dict[int, object] = {}
    for path in sorted(directory.glob(pattern)):
        for record in whole_lines(path, kind, remedy)[0]:
            by_idx.setdefault(record.idx, record)
    return list(by_idx.values())


class JsonlWriter:
    """Appends rows of ``kind`` to ``directory / name``.

    Args:
        directory: created on the first append, not before.
        kind: the row type.
        name: the file appended to.
        repair: cut a torn last line off the file first (False: only to read what is done).
        pattern: the files whose rows count as done (shards of one run each write their own).
        remedy: what a corrupt line's error tells the user to do.
    """

    def __init__(
        self,
        directory: Path,
        kind,
        name: str = "records.jsonl",
        repair: bool = True,
        pattern: str = "records*.jsonl",
        remedy: str = FRESH,
    ):
        self.directory, self.kind, self.path, self.remedy = directory, kind, directory / name, remedy
        self._fh = None
        if repair:
            cut_torn_tail(self.path, kind, remedy)
        self.done: set[int] = set()
        self.pattern = pattern
        self._seen: dict[Path, tuple[int, int]] = {}  # how far each file has been read: bytes and whole lines
        for path in sorted(directory.glob(pattern)):
            records, keep, _ = whole_lines(path, kind, remedy)
            self.done.update(r.idx for r in records)
            self._seen[path] = (keep, len(records))

    def refresh(self) -> set[int]:
        """``done``, with what other processes appended since the files were last read: to this file (an identical
        run) or to another of the run's files (a shard, or an unsharded run beside sharded ones). Only the new bytes
        are read: a claimed image costs a directory listing and a few lines, not the whole files."""
        for path in sorted(self.directory.glob(self.pattern)):
            offset, lines = self._seen.get(path, (0, 0))
            try:
                if path.stat().st_size <= offset:
                    continue
            except FileNotFoundError:
                continue
            with open(path, "rb") as fh:
                fh.seek(offset)
                records, keep = _parse(fh.read(), path, self.kind, lines + 1, self.remedy)
            self._seen[path] = (offset + keep, lines + len(records))
            self.done.update(r.idx for r in records)
        return self.done

    def _open(self):
        if self._fh is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across appends
            lock(self._fh, shared=True, wait=True)
        return self._fh

    def append(self, record) -> None:
        self.append_all([record])

    def append_all(self, records: list) -> None:
        """Append ``records`` in one write and one fsync (an attack's chunk is done at once)."""
        if not records:
            return
        fh = self._open()
        fh.write("".join(json.dumps(r.to_json(), allow_nan=False) + "\n" for r in records))
        fh.flush()
        os.fsync(fh.fileno())
        self.done.update(r.idx for r in records)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def claimed(writer: JsonlWriter, batches: Iterable[list[int]]) -> Iterator[list[int]]:
    """Each batch of image indices this process is to do: not all done, claimed (by its first index: a batch is
    done whole) and still not all done after a fresh look at the file, since another process may have finished it
    since this one started. The claim is held until the next batch is asked for; close the iterator (or exhaust
    it) to drop the last one. Two identical processes thus do each batch once."""
    claims = Claims(writer.directory / "claims.lock")
    try:
        for batch in batches:
            if all(i in writer.done for i in batch) or not claims.claim(batch[0]):
                continue
            try:
                if not all(i in writer.refresh() for i in batch):
                    yield batch
            finally:
                claims.release(batch[0])
    finally:
        claims.close()


@contextlib.contextmanager
def claiming(writer: JsonlWriter, batches: Iterable[list[int]]) -> Iterator[Iterator[list[int]]]:
    """:func:`claimed` as a ``with`` block that closes the writer and drops the claims however it ends."""
    work = claimed(writer, batches)
    try:
        yield work
    finally:
        work.close()
        writer.close()
