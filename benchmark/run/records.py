"""Typed results: one :class:`Record` per certified image, one :class:`RunInfo` (``run.json``) per run.

Layout: ``<results>/<suite>/<method>/<base>/sigma_<s>/<config hash>/`` holds ``records.jsonl`` (or
``records-<k>of<N>.jsonl`` per shard of ``run --shard k/N``; readers merge them) and ``run.json``. Each type has
one serialisation path (``to_json`` / ``from_json``), strict about today's schema (``python -m benchmark migrate``
rewrites files of older versions), and every
writer (the runner, the TSV importer, ``recount``) and reader (leaderboard, plots, interop) goes through it.

A record is written as one whole line and flushed. A torn last line (a run killed mid-write) is skipped by readers
and cut off by the next writer of that file only, before it appends: readers never modify files, so a leaderboard
regenerated beside a running job (or one shard starting beside another) cannot truncate a line being written.

A writer holds a shared advisory lock on its records file while it is open, so "running" is read from the kernel,
not from run.json: a run killed without its ``finally`` (SIGKILL, power loss) left ``"running"`` there, and the
kernel dropped its lock, so readers report it as "partial".
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.certificates.smoothing import ABSTAIN
from benchmark.errors import BenchmarkError
from benchmark.files import inside, lock, read_json, safe_hash, safe_name, write_json_atomic


@dataclass(frozen=True)
class Record:
    """The certificate of one image. ``correct`` is this image's 0/1, never a running total; ``n_used`` is the
    number of noisy samples the certifier classified; ``mode`` names the certificate (``fixed``: CERTIFY with n0 + n
    samples). Imported logs leave what they do not know (seed, p_a_lower, n_top, n_used) as None."""

    method: str
    config_hash: str
    dataset: str | None
    split: str
    idx: int
    sigma: float
    seed: int | None
    n0: int | None
    n: int | None
    alpha: float | None
    label: int
    prediction: int
    correct: int
    radius: float
    p_a_lower: float | None
    n_top: int | None
    n_used: int | None
    time_s: float
    mode: str
    # what the certificate named by ``mode`` adds (its Certifier's docstring says what); written only when present,
    # so records of certificates without details keep their form
    details: dict | None = None

    @classmethod
    def of(cls, *, label: int, prediction: int, **fields) -> Record:
        """A record whose ``correct`` follows from its label and prediction: the one place that rule is written."""
        return cls(label=int(label), prediction=int(prediction),
                   correct=int(prediction == label and prediction != ABSTAIN), **fields)  # fmt: skip

    def to_json(self) -> dict:
        row = dataclasses.asdict(self)
        if row["details"] is None:
            del row["details"]
        return row

    @classmethod
    def from_json(cls, row: object) -> Record:
        """A record from a parsed line; a line of another form (an older version's) is refused, naming the fix."""
        if not isinstance(row, dict):
            raise ValueError("not a JSON object")
        missing = [f.name for f in _REQUIRED if f.name not in row]
        unknown = sorted(set(row) - _FIELDS)
        if missing == ["mode"] or unknown:
            raise ValueError(f"written by an older version ({'no mode' if not unknown else ', '.join(unknown)}): run "
                             "python -m benchmark migrate")  # fmt: skip
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        return cls(**row)


_REQUIRED = [f for f in dataclasses.fields(Record) if f.default is dataclasses.MISSING]
_FIELDS = {f.name for f in dataclasses.fields(Record)}


@dataclass
class RunInfo:
    """``run.json``: what a run is (its resolved config and hash), how it went (status, timings) and where it came
    from (argv, git, packages, device). Keys this version does not know are kept in ``extra`` and written back."""

    suite: str
    method: str
    base: str
    sigma: float
    dataset: str | None = None
    dataset_label: str | None = None
    split: str = "test"
    n0: int | None = None
    n: int | None = None
    alpha: float | None = None
    seed: int | None = None
    radii: list[float] = field(default_factory=list)
    config_hash: str | None = None
    config: dict = field(default_factory=dict)
    status: str | None = None
    started: str = ""
    updated: str = ""
    sessions: int = 0
    images_done: int | None = None
    subset_size: int | None = None  # images of the whole subset; a complete run of fewer (--max-images) says so
    data_fingerprint: str | None = None  # the evaluation split's content (benchmark.data.splits.fingerprint)
    stage_sigmas: list[float] | None = None  # a cascade's noise levels (its cell sits at the smallest)
    timings: dict = field(default_factory=dict)
    fit: dict = field(default_factory=dict)
    cost: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)  # the method's report(): settings a table shows beside the numbers
    measurements: dict = field(default_factory=dict)  # measured for the run beside the certificates (denoising MSE)
    run_settings: dict = field(default_factory=dict)  # what never changes a record: batch size, device, paths, shard
    argv: list[str] = field(default_factory=list)
    git: dict = field(default_factory=dict)
    packages: dict = field(default_factory=dict)
    device: str | None = None
    device_name: str | None = None
    torch_threads: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def precision(self) -> str:
        return str(self.config.get("precision", "fp32"))

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **data}

    @classmethod
    def from_json(cls, data: object, path: Path | None = None) -> RunInfo:
        if not isinstance(data, dict) or not all(k in data for k in ("suite", "method", "base", "sigma")):
            raise BenchmarkError(f"{path} is not a run.json (it lacks suite, method, base or sigma): delete it")
        data = dict(data)
        if "report" in data:  # the name of ``measurements`` before records were typed
            raise BenchmarkError(f"{path} was written by an older version: run python -m benchmark migrate")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})


def run_dir(results: Path, suite: str, method: str, base: str, sigma: float, chash: str) -> Path:
    parts = (safe_name(suite, "suite"), safe_name(method, "method"), safe_name(base, "base"))
    return inside(results, results.joinpath(*parts, f"sigma_{float(sigma):g}", safe_hash(chash, "config hash")))


def read_run_info(directory: Path) -> RunInfo | None:
    data = read_json(directory / "run.json", "run.json (records stay)")
    return None if data is None else RunInfo.from_json(data, directory / "run.json")


def write_run_info(directory: Path, info: RunInfo) -> None:
    write_json_atomic(directory / "run.json", info.to_json())


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
        self.done: set[int] = {r.idx for r in read_records(directory)}
        self._seen = self.path.stat().st_size if self.path.is_file() else 0

    def refresh(self) -> set[int]:
        """``done``, with the images other processes appended to this file since it was last read: identical runs
        share one file, and a claim only says no one is certifying an image *now*. Reads only the new bytes, so a
        run of N images reads its file once in all, not once per image."""
        if not self.path.is_file():
            return self.done
        with open(self.path, "rb") as fh:
            fh.seek(self._seen)
            new = fh.read()
        whole = new[: new.rfind(b"\n") + 1]  # a line still being written is read when it is whole
        for k, line in enumerate(whole.splitlines()):
            try:
                self.done.add(Record.from_json(json.loads(line)).idx)
            except (ValueError, TypeError):
                raise BenchmarkError(f"{self.path}: a line appended during this run is corrupt (line {k + 1} of the "
                                     "new ones): delete it and rerun the same command") from None  # fmt: skip
        self._seen += len(whole)
        return self.done

    def _open(self):
        if self._fh is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across appends
            lock(self._fh, shared=True, wait=True)
        return self._fh

    def append(self, record: Record) -> None:
        fh = self._open()
        fh.write(json.dumps(record.to_json(), allow_nan=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
        self.done.add(record.idx)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _whole_lines(path: Path) -> tuple[list[Record], int, int]:
    """The records of a file's whole lines, their byte length and the file's; a torn (unterminated or unparsable)
    last line is left out. A corrupt line before the last is an error."""
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
    records = []
    for i, row in enumerate(rows):
        try:
            records.append(Record.from_json(row))
        except (ValueError, TypeError) as err:
            raise BenchmarkError(f"{path} line {i + 1} is not a record ({err}): delete that line") from None
    return records, len(keep), len(data)


def _cut_torn_tail(path: Path) -> None:
    """Cut a torn last line off the file this process is about to append to (readers leave it alone)."""
    if path.is_file():
        _, keep, size = _whole_lines(path)
        if keep != size:
            with open(path, "r+b") as fh:
                fh.truncate(keep)


def writing(directory: Path) -> bool:
    """Whether a live process has one of the run's records files open for appending (see the module docstring)."""
    for path in directory.glob("records*.jsonl"):
        with open(path, "rb") as handle:
            if not lock(handle, shared=False, wait=False):
                return True
    return False


def read_records(directory: Path) -> list[Record]:
    """All records of a run directory, shards merged, one per index (first wins), sorted by index."""
    by_idx: dict[int, Record] = {}
    for path in sorted(directory.glob("records*.jsonl")):
        for record in _whole_lines(path)[0]:
            by_idx.setdefault(record.idx, record)
    return [by_idx[i] for i in sorted(by_idx)]


@dataclass
class Run:
    """One run directory as read back: its provenance and its records."""

    directory: Path
    info: RunInfo
    records: list[Record]

    @property
    def precision(self) -> str:
        return self.info.precision

    @property
    def status(self) -> str | None:
        """run.json's status, except that "running" stands only while a writer is alive: a run that died without
        recording its end reads "partial", which is what its records are."""
        if self.info.status == "running" and not writing(self.directory):
            return "partial"
        return self.info.status

    @property
    def mode(self) -> str:
        return str(self.info.config.get("certify", "fixed"))

    @property
    def key(self) -> tuple[str, str, str, float, str, str]:
        # Precision is part of the key: "auto" resolves to bf16 or fp32 by CPU, and a run on a machine without
        # native bf16 must stand beside the bf16 rows, not hide them as if it were a newer configuration; so is the
        # certificate's mode: a sequential run stands beside the fixed-n one.
        info = self.info
        return (info.suite, info.method, info.base, float(info.sigma), self.precision, self.mode)


def iter_runs(results: Path, suite: str | None = None) -> Iterable[Run]:
    """Every run directory under ``results`` (optionally one suite) that has a run.json."""
    pattern = f"{safe_name(suite, 'suite')}/*/*/sigma_*/*/run.json" if suite else "*/*/*/sigma_*/*/run.json"
    for path in sorted(results.glob(pattern)):
        info = read_run_info(path.parent)
        if info is not None:
            yield Run(path.parent, info, read_records(path.parent))


def latest_runs(results: Path, suite: str | None = None) -> list[Run]:
    """One run per (suite, method, base, sigma, precision): the most recently updated config hash; older ones are
    kept on disk but left out of tables, so a changed configuration never mixes with stale records."""
    return newest(iter_runs(results, suite))


def newest(runs: Iterable[Run]) -> list[Run]:
    """The most recently updated run of each (suite, method, base, sigma, precision), sorted by that key."""
    chosen: dict[tuple, Run] = {}
    for run in runs:
        previous = chosen.get(run.key)
        if previous is None or run.info.updated > previous.info.updated:
            chosen[run.key] = run
    return [chosen[k] for k in sorted(chosen)]


def suites_in(results: Path) -> list[str]:
    """Suites that have at least one run under ``results`` (run.json sits five levels below the suite folder)."""
    return sorted({p.parents[4].name for p in results.glob("*/*/*/sigma_*/*/run.json")})


def certify_s_per_image(records) -> float:
    """Mean certification wall time per image, as each record measured it (NaN for no records); ``records`` is a
    list of :class:`Record` or rows of the results frame."""
    times = [r.time_s for r in records] if isinstance(records, list) else records["time_s"].astype(float)
    return float(np.mean(times)) if len(times) else float("nan")
