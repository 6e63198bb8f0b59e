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
from benchmark.files import write_atomic, write_json_atomic
from benchmark.run.records import Record


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


def _records_file(path: Path) -> bool:
    lines = path.read_bytes().splitlines(keepends=True)
    out = []
    for line in lines:
        if not line.endswith(b"\n"):  # a torn last line is the writer's to repair, not ours to rewrite
            out.append(line)
            continue
        new = json.dumps(migrate_record(json.loads(line)), allow_nan=False).encode() + b"\n"
        out.append(new)
    data = b"".join(out)
    if data == b"".join(lines):
        return False
    write_atomic(path, lambda tmp: tmp.write_bytes(data))
    return True


def _run_json(path: Path) -> bool:
    data = json.loads(path.read_text())
    new = migrate_run_info(data)
    if new == data:
        return False
    write_json_atomic(path, new)
    return True


def migrate(results: Path) -> list[str]:
    """Rewrite every run under ``results`` that an older version wrote; the paths rewritten."""
    changed = []
    for run_json in sorted(results.glob("*/*/*/sigma_*/*/run.json")):
        for path in [run_json, *sorted(run_json.parent.glob("records*.jsonl"))]:
            if (_run_json if path.name == "run.json" else _records_file)(path):
                changed.append(str(path))
    return changed
