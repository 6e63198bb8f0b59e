"""Certification logs in the TSV format of locuslab/smoothing, both ways.

Header ``idx label predict radius correct time``; ``predict`` is -1 on abstain; ``time`` is seconds or a
``datetime.timedelta`` string (``h:mm:ss.ffffff``). Imported runs become ordinary records, so published logs are
tabulated by the same code as ours. ``correct`` is recomputed as ``predict == label``: some released logs (the
DDS ``certify.py``) hold a running total there, which Cohen's analysis would misread.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
from pathlib import Path

from benchmark.config.hashing import config_hash
from benchmark.config.run_config import DEFAULT_RADII
from benchmark.errors import BenchmarkError
from benchmark.files import now
from benchmark.run.records import (
    Record,
    RecordWriter,
    RunInfo,
    certify_s_per_image,
    latest_runs,
    run_dir,
    write_run_info,
)

HEADER = ["idx", "label", "predict", "radius", "correct", "time"]


def parse_time(text: str) -> float:
    """Seconds from ``12.5`` or ``0:00:12.500000`` (or ``1 day, 0:00:01``)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    days = 0
    if "day" in text:
        day_part, text = text.split(",", 1)
        days = int(day_part.split()[0])
    parts = text.strip().split(":")
    if len(parts) != 3:
        raise ValueError(f"unreadable time {text!r}")
    hours, minutes, seconds = int(parts[0]), int(parts[1]), float(parts[2])
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def format_time(seconds: float) -> str:
    return str(datetime.timedelta(seconds=seconds))


def import_tsv(
    path: Path,
    *,
    method: str,
    sigma: float,
    suite: str,
    results: Path,
    base: str = "imported",
    dataset: str | None = None,
    n0: int | None = None,
    n: int | None = None,
    alpha: float | None = None,
    fresh: bool = False,
) -> Path:
    """Read a Cohen-format log into a run directory; return it. Re-importing the same file is a no-op."""
    if not path.is_file():
        raise BenchmarkError(f"no such file {path}: give the path of a certification log")
    if sigma <= 0:
        raise BenchmarkError(f"--sigma must be > 0, got {sigma}")
    content = path.read_bytes()
    rows = list(csv.reader(content.decode("utf-8").splitlines(), delimiter="\t"))
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        raise BenchmarkError(f"{path} does not start with the header '{' '.join(HEADER)}' (tab-separated)")
    settings = dict(method=method, sigma=float(sigma), dataset=dataset, n0=n0, n=n, alpha=alpha)
    key = {"imported_from": path.name, "sha256": hashlib.sha256(content).hexdigest(), "base": base, **settings}
    chash = config_hash(key)
    directory = run_dir(results, suite, method, base, sigma, chash)
    if fresh:
        for f in directory.glob("records*.jsonl"):
            f.unlink()
    writer = RecordWriter(directory)
    records = _records(rows, path, {**settings, "config_hash": chash})
    for record in records:
        if record.idx not in writer.done:
            writer.append(record)
    writer.close()
    write_run_info(directory, _run_info(suite, base, key, chash, records, path))
    return directory


def export_tsv(results: Path, *, suite: str, method: str, sigma: float, out: Path, base: str | None = None) -> Path:
    """Write the records of one run in Cohen's format (radius at full precision, not Cohen's ``{:.3}``)."""
    runs = [
        r
        for r in latest_runs(results, suite)
        if r.info.method == method and float(r.info.sigma) == float(sigma) and (base is None or r.info.base == base)
    ]
    if not runs:
        raise BenchmarkError(f"no run of {method!r} at sigma {sigma:g} in suite {suite!r} under {results}")
    if len(runs) > 1:
        names = ", ".join(r.info.base for r in runs)
        raise BenchmarkError(f"{method!r} at sigma {sigma:g} ran on several bases ({names}): pick one with --base")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as fh:
        fh.write("\t".join(HEADER) + "\n")
        for r in runs[0].records:
            fh.write(f"{r.idx}\t{r.label}\t{r.prediction}\t{r.radius!r}\t{r.correct}\t{format_time(r.time_s)}\n")
    return out


def _records(rows: list[list[str]], path: Path, common: dict) -> list[Record]:
    """The records of a log's rows (after its header); ``correct`` is recomputed from label and prediction (see the
    module docstring), never read from the log."""
    records = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            idx, label, pred, radius = int(row[0]), int(row[1]), int(row[2]), float(row[3])
            time_s = parse_time(row[5])
        except (ValueError, IndexError):
            raise BenchmarkError(f"{path} line {lineno} is malformed: {chr(9).join(row)!r}") from None
        unknown = {"seed": None, "p_a_lower": None, "n_top": None, "n_used": None}  # a log does not record them
        records.append(
            Record.of(
                label=label,
                prediction=pred,
                idx=idx,
                radius=radius,
                time_s=time_s,
                split="test",
                mode="fixed",
                **unknown,
                **common,
            )
        )
    return records


def _run_info(suite: str, base: str, key: dict, chash: str, records: list[Record], path: Path) -> RunInfo:
    """run.json of an imported log: what it claims (its key), never a seed or a fit, and its own status."""
    total = sum(r.time_s for r in records)
    per_image = certify_s_per_image(records) if records else None
    settings = {k: key[k] for k in ("method", "sigma", "dataset", "n0", "n", "alpha")}
    return RunInfo(
        suite=suite,
        base=base,
        dataset_label=key["dataset"],
        split="test",
        seed=None,
        radii=list(DEFAULT_RADII),
        config_hash=chash,
        config=key,
        status="imported",
        started=now(),
        updated=now(),
        extra={"source": str(path)},
        timings={"certify_time_s": total, "images": len(records), "certify_s_per_image": per_image},
        **settings,
    )
