"""Upkeep beside the run loop: the dry run (what a run would do) and ``recount`` (a migration of older run.json).

Both read what the loop wrote and never certify; the dry run changes nothing on disk, ``recount`` rewrites only the
run.json fields it names.
"""

from __future__ import annotations

from pathlib import Path

from benchmark.config.registry import METHODS
from benchmark.config.run_config import RunConfig
from benchmark.method import Method, count_parameters, share_of_base
from benchmark.run.plan import Cell
from benchmark.run.progress import duration
from benchmark.run.records import (
    Run,
    RunInfo,
    certify_s_per_image,
    iter_runs,
    latest_runs,
    read_records,
    write_run_info,
    writing,
)
from benchmark.run.session import Session

_FIT_SOURCE = {
    "published": "published",
    "cached": "cached",
    "checkpoint": "resumes from its checkpoint",
    "missing": "not saved (fitted first, if the method trains)",
}


def dry_run(cfg: RunConfig, fresh: bool = False, shard: tuple[int, int] | None = None) -> list[str]:
    """What ``run`` would do, as lines of text: per run, the images done and left, where its fit would come from,
    and the time left estimated from the run's own records (one process at the measured rate; runs not started
    have no estimate). Reads only; nothing is fitted, built or written (``fresh`` counts every image as left)."""
    session = Session(cfg)
    latest = {run.key: run for run in latest_runs(session.results, cfg.suite)}
    lines = [f"{'base':<12} {'method':<16} {'sigma':>5} {'prec':<4} {'run':<10} {'images':>9}  fit"]
    total_s, unknown, with_work, cells = 0.0, 0, 0, session.plan()
    for cell in cells:
        selected = set(cell.indices)
        records = [] if fresh else read_records(cell.directory(session.results, cfg.suite))
        mine = [r for r in records if r.idx in selected]
        done_idx = {r.idx for r in mine}
        todo = [i for i in (cell.indices[shard[0] :: shard[1]] if shard else cell.indices) if i not in done_idx]
        left = ""
        if todo and mine:
            rate = certify_s_per_image(mine)
            seconds = len(todo) * rate
            total_s += seconds
            left = f"  ~{duration(seconds)} left at {rate:.3g} s/img (measured)"
        elif todo:
            unknown += 1
            left = "  not started"
        if todo:
            with_work += 1
            left += _elsewhere(cfg, cell, latest)
        fit = f"{cell.fit_hash} {_FIT_SOURCE[session.store.where(cell.method, cell.fit_hash)]}"
        parts = METHODS.get(cell.method).composes(cell.method_config)
        if parts and METHODS.get(cell.method).trainable_parameters is Method.trainable_parameters:
            fit = "composes " + ", ".join(_part(session, cell, *part) for part in parts)
        elif parts:
            fit += "; starts from " + ", ".join(_part(session, cell, *part) for part in parts)
        lines.append(
            f"{cell.base:<12} {cell.method:<16} {cell.sigma:>5g} {cell.precision:<4} {cell.chash:<10} "
            f"{len(mine):>4}/{len(cell.indices):<4}  {fit}{left}"
        )
    summary = f"{len(cells)} runs, {with_work} with images left"
    if total_s:
        summary += f"; ~{duration(total_s)} of certification left in the measured ones"
    if unknown:
        summary += f", {unknown} not started (no estimate)"
    return [*lines, summary + "; fits not included"]


def _part(session: Session, cell: Cell, name: str, sigma: float, settings: dict | None) -> str:
    """Where a composed fit (a cascade's stage, a calibration's start) would come from."""
    part = session.cell(name, cell.base, sigma, settings)
    where = session.store.where(name, part.fit_hash)
    return f"{name}@{sigma:g} {part.fit_hash} {where if where != 'missing' else 'to fit'}"


def _elsewhere(cfg: RunConfig, cell: Cell, latest: dict[tuple, Run]) -> str:
    """The newest run of the same cell in each other precision ("auto" resolves by CPU, and this machine would not
    resume those), so a user can pass --precision to continue one instead."""
    found = []
    for precision in sorted({"bf16", "fp32"} - {cell.precision}):
        run = latest.get((cfg.suite, cell.method, cell.base, float(cell.sigma), precision, cfg.certify, False))
        if run is None:
            continue
        done = f"{len(run.records)}/{len(cell.indices)}"
        if run.info.config == {**cell.key, "precision": precision}:
            found.append(f"{precision} run {run.directory.name} has {done} (--precision {precision})")
        else:  # --precision would start a new run, not resume that one
            found.append(f"{precision} run {run.directory.name} of other settings has {done}")
    return "; " + "; ".join(found) if found else ""


def recount(cfg: RunConfig) -> list[str]:
    """Correct what older run.json files of the suite say of their cost and data, and nothing else.

    * Cost: the trainable share is of the base's own parameters; run.json written before it was defined so (LoRA,
      adapters and VPT counted their own modules in the denominator) get it recounted, each base built as a run
      builds it.
    * Data: ``dataset_label`` is what the dataset calls the data under the run's recorded data root; runs written
      before a re-encoded copy was named so (``CIFAR-10`` for ../shared's JPEG q75 tree) are relabelled, but only
      those whose recorded root is the directory this command reads.

    No run being written is touched. Returns one line per run rewritten."""
    session, lines = Session(cfg), []
    for run in iter_runs(session.results, cfg.suite):
        info, said = run.info, []
        cost = info.cost
        if "trainable_params" in cost:
            own = count_parameters(session.build_base(info.base))
            recounted = {**cost, "base_params": own, "trainable_pct": share_of_base(cost["trainable_params"], own)}
            if recounted != cost:
                info.cost = recounted
                said.append(
                    f"{cost.get('trainable_pct', float('nan')):.2f} % -> {recounted['trainable_pct']:.2f}"
                    f" % ({cost['trainable_params']:,} of {own:,})"
                )
        label = _data_label(session, info)
        if label is not None and label != info.dataset_label:
            said.append(f"data {info.dataset_label!r} -> {label!r}")
            info.dataset_label = label
        if not said:
            continue
        if writing(run.directory):
            lines.append(f"{run.directory}: being written, left as it is; run recount again when it ends")
            continue
        write_run_info(run.directory, info)
        lines.append(f"{run.directory}: {'; '.join(said)}")
    return lines


def _data_label(session: Session, info: RunInfo) -> str | None:
    """The label of the session's data if ``info`` was certified on that very directory, else None."""
    recorded, root = info.run_settings.get("data_root"), session.data_root
    # No root here to read, or another one: nothing to name the data from, so the label stands.
    if info.dataset != session.cfg.dataset or not recorded or root is None or not root.is_dir():
        return None
    if Path(recorded).expanduser().resolve() != root.resolve():
        return None
    session.eval_data()  # the label is set from what the root holds (e.g. JPEG files) when it is read
    return session.dataset.label
