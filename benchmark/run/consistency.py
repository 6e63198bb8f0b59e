"""A run read back must be what it says: its run.json names its own folder, and every record is of that run."""

from __future__ import annotations

from benchmark.errors import BenchmarkError
from benchmark.files import safe_name

_AGREE = ("config_hash", "method", "sigma", "n", "alpha", "seed")  # what every record shares with its run


def consistent(run):
    """``run`` (a :class:`~benchmark.run.records.Run`), after checking that its run.json names its own folder and
    that every record is of that run: a run.json copied into another folder, or records of another configuration
    appended to a file, would otherwise be read as what they claim to be (one base in the markdown, another in the
    CSV)."""
    info, where = run.info, run.directory
    folder = (where.parents[3].name, where.parents[2].name, where.parents[1].name, where.parent.name, where.name)
    claimed = (info.suite, info.method, info.base, f"sigma_{float(info.sigma):g}", info.config_hash or where.name)
    if [safe_name(x) for x in claimed] != list(folder):
        raise BenchmarkError(
            f"{where}/run.json describes {'/'.join(map(str, claimed))}, not the folder it is in: "
            "restore it from the run's records or delete the folder"
        )
    for record in run.records:
        wrong = [k for k in _AGREE if getattr(record, k) != getattr(info, k) and getattr(info, k) is not None]
        if wrong:
            raise BenchmarkError(
                f"{where}: the record of image {record.idx} has another {', '.join(wrong)} than its "
                "run.json: it belongs to another run; delete that line or rerun with --fresh"
            )
    return run
