"""Typed results: one :class:`Record` per certified image, one :class:`RunInfo` (``run.json``) per run.

Layout: ``<results>/<suite>/<method>/<base>/sigma_<s>/<config hash>/`` holds ``records.jsonl`` (or
``records-<k>of<N>.jsonl`` per shard of ``run --shard k/N``; readers merge them) and ``run.json``. Each type has
one serialisation path (``to_json`` / ``from_json``), strict about today's schema (``python -m benchmark migrate``
rewrites files of older versions), and every
writer (the runner, the TSV importer, ``recount``) and reader (leaderboard, plots, interop) goes through it.

Records are written and read by the JSON-lines pipeline that attacks and audits share (:mod:`benchmark.run.jsonl`):
a record is one whole line, flushed and fsynced; a torn last line (a run killed mid-write) is skipped by readers
and cut off by the next writer of that file, before it appends, once no live writer holds the file (so a line being
written is never cut); a corrupt line is an error naming it.

A writer holds a shared advisory lock on its records file while it is open, so "running" is read from the kernel,
not from run.json: a run writes "partial" there when it starts and "complete" when it ends, so a run killed without
its ``finally`` (SIGKILL, power loss, a full disk) leaves the file saying what its records are, and readers report
"running" only while its lock is held.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.certificates.smoothing import ABSTAIN
from benchmark.errors import BenchmarkError
from benchmark.files import inside, lock, read_json, safe_hash, safe_name, write_json_atomic
from benchmark.run.consistency import consistent
from benchmark.run.jsonl import JsonlWriter, read_jsonl


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
        return cls(
            label=int(label),
            prediction=int(prediction),
            correct=int(prediction == label and prediction != ABSTAIN),
            **fields,
        )

    @classmethod
    def of_certificate(cls, cert, *, label: int, idx: int, time_s: float, **run_fields) -> Record:
        """The record of certificate ``cert`` of image ``idx``; ``run_fields``: what the run says of itself
        (method, config_hash, dataset, split, sigma, seed, n0, n, alpha)."""
        return cls.of(
            label=label,
            prediction=cert.prediction,
            idx=idx,
            radius=cert.radius,
            p_a_lower=cert.p_a_lower,
            n_top=cert.n_top,
            n_used=cert.n_used,
            mode=cert.mode,
            details=cert.details,
            time_s=time_s,
            **run_fields,
        )

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
            raise ValueError(
                f"written by an older version ({'no mode' if not unknown else ', '.join(unknown)}): run "
                "python -m benchmark migrate"
            )
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


def run_dir(
    results: Path, suite: str, method: str, base: str, sigma: float, chash: str, evaluation: str | None = None
) -> Path:
    """``<results>/<suite>/[<evaluation>/]<method>/<base>/sigma_<s>/<hash>``: a run's directory, or an evaluation's
    of it (``attack``, ``audit``) under a folder of that name."""
    extra = (safe_name(evaluation, "evaluation"),) if evaluation else ()
    parts = (safe_name(suite, "suite"), *extra, safe_name(method, "method"), safe_name(base, "base"))
    return inside(results, results.joinpath(*parts, f"sigma_{float(sigma):g}", safe_hash(chash, "config hash")))


def read_run_info(directory: Path) -> RunInfo | None:
    data = read_json(directory / "run.json", "run.json (records stay)")
    return None if data is None else RunInfo.from_json(data, directory / "run.json")


def write_run_info(directory: Path, info: RunInfo) -> None:
    write_json_atomic(directory / "run.json", info.to_json())


class RecordWriter(JsonlWriter):
    """Appends records to ``records[-<shard>].jsonl`` in ``directory`` (:class:`benchmark.run.jsonl.JsonlWriter`).

    Args:
        directory: the run directory (created on first write, not before).
        shard: rank name for sharded runs (None: a single file).
        repair: cut a torn last line off the file first (False: only to read what is done).
    """

    def __init__(self, directory: Path, shard: str | None = None, repair: bool = True):
        super().__init__(directory, Record, f"records-{shard}.jsonl" if shard else "records.jsonl", repair)


def writing(directory: Path) -> bool:
    """Whether a live process has one of the run's records files open for appending (see the module docstring)."""
    for path in directory.glob("records*.jsonl"):
        with open(path, "rb") as handle:
            if not lock(handle, shared=False, wait=False):
                return True
    return False


def read_records(directory: Path) -> list[Record]:
    """All records of a run directory, shards merged, one per index (first wins), sorted by index."""
    return sorted(read_jsonl(directory, Record), key=lambda r: r.idx)


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
        """run.json's status, except that a live writer's lock says "running": a run records "partial" when it
        starts (what it is if it dies without recording its end: SIGKILL, a full disk that refuses the last write),
        and readers ask the kernel whether it still runs. Files of older versions that say "running" with no writer
        alive read "partial" too."""
        if self.info.status in ("running", "partial"):
            return "running" if writing(self.directory) else "partial"
        return self.info.status

    @property
    def mode(self) -> str:
        return str(self.info.config.get("certify", "fixed"))

    @property
    def key(self) -> tuple[str, str, str, float, str, str, bool]:
        # Precision is part of the key: "auto" resolves to bf16 or fp32 by CPU, and a run on a machine without
        # native bf16 must stand beside the bf16 rows, not hide them as if it were a newer configuration; so are the
        # certificate's mode (a sequential run stands beside the fixed-n one) and whether the run was imported from
        # a log (its own kind of row: it never supersedes a run this suite measured).
        info = self.info
        imported = info.status == "imported"
        return (info.suite, info.method, info.base, float(info.sigma), self.precision, self.mode, imported)


def iter_runs(results: Path, suite: str | None = None) -> Iterable[Run]:
    """Every run directory under ``results`` (optionally one suite) that has a run.json."""
    pattern = f"{safe_name(suite, 'suite')}/*/*/sigma_*/*/run.json" if suite else "*/*/*/sigma_*/*/run.json"
    for path in sorted(results.glob(pattern)):
        info = read_run_info(path.parent)
        if info is not None:
            yield consistent(Run(path.parent, info, read_records(path.parent)))


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
