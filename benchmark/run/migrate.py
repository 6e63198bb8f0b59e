"""``python -m benchmark migrate``: rewrite results written by older versions to today's schema, values unchanged.

Readers accept today's schema only and name this command when they meet an older form, so the compatibility
branches live here, once, instead of in every reader. Each step is a pure function of one parsed object, and a
file is rewritten (atomically) only when a step changed something; a file already in today's form is left byte for
byte as it is. The steps, oldest first:

* records without ``mode`` (written before sequential CERTIFY existed; every one was fixed-n CERTIFY) get
  ``"mode": "fixed"``;
* each certificate then rewrites its own older forms (:meth:`~benchmark.certificates.certifier.Certifier.migrate`:
  the cascade moves the fields it once wrote beside the common ones into ``details``, the part it owns);
* run.json's ``report`` (the name of ``measurements`` before records were typed) is renamed.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.certificates.registry import CERTIFIERS
from benchmark.errors import BenchmarkError
from benchmark.files import write_atomic, write_json_atomic
from benchmark.run.records import Record, writing


def migrate_record(row: dict) -> dict:
    """A record line's object in today's schema (field order as :meth:`Record.to_json` writes it)."""
    row = dict(row)
    row.setdefault("mode", "fixed")
    if row["mode"] in CERTIFIERS:
        row = CERTIFIERS[row["mode"]].migrate(row)
    return Record.from_json(row).to_json()


def migrate_run_info(data: dict) -> dict:
    """A run.json object in today's schema (keys keep their places; the file is written sorted anyway)."""
    data = dict(data)
    if "report" in data and "measurements" not in data:
        data["measurements"] = data.pop("report")
    return data


def _records_text(path: Path, data: bytes) -> bytes:
    """The records file's bytes ``data`` in today's schema; a line that cannot be read is an error naming it."""
    out = []
    for k, line in enumerate(data.splitlines(keepends=True), start=1):
        if not line.endswith(b"\n"):  # a torn last line is the writer's to repair, not ours to rewrite
            out.append(line)
            continue
        try:
            out.append(json.dumps(migrate_record(json.loads(line)), allow_nan=False).encode() + b"\n")
        except (ValueError, TypeError) as err:
            raise BenchmarkError(
                f"{path} line {k} cannot be migrated ({err}): delete that line, then migrate "
                "again; nothing was rewritten"
            ) from None
    return b"".join(out)


def _run_json_data(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise BenchmarkError(f"{path} is corrupt: restore it; nothing was rewritten") from None


def migrate(results: Path) -> list[str]:
    """Rewrite every run under ``results`` that an older version wrote; the paths rewritten. Every file is read and
    converted before the first is written, so a file that cannot be converted leaves them all as they were, and a
    run a live process is writing is refused (its open file would keep taking records the new one never sees)."""
    plan: list[tuple[Path, bytes | dict]] = []
    for run_json in sorted(results.glob("*/*/*/sigma_*/*/run.json")):
        records = sorted(run_json.parent.glob("records*.jsonl"))
        old = {run_json: _run_json_data(run_json), **{p: p.read_bytes() for p in records}}
        new = {run_json: migrate_run_info(old[run_json]), **{p: _records_text(p, old[p]) for p in records}}
        changed = [(p, v) for p, v in new.items() if v != old[p]]
        if changed and writing(run_json.parent):
            raise BenchmarkError(f"{run_json.parent} is being written by a live run: migrate once it has stopped")
        plan += changed
    for path, value in plan:
        if isinstance(value, dict):
            write_json_atomic(path, value)
        else:
            write_atomic(path, lambda tmp, v=value: tmp.write_bytes(v))
    return [str(path) for path, _ in plan]
