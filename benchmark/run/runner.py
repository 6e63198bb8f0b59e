"""The run loop: for each planned cell, get or make the method's fit, certify the images left, write the records.

Everything that can fail on bad input (names, data, weights, result and cache directories) is checked before the
first record is written. Each cell is resumable on its own: finished images are skipped, the fit comes from the
store, and re-running the same command only does what is missing. Processes on one cell share its images through
per-image claims, so two identical runs started together certify each image once.
"""

from __future__ import annotations

import contextlib

from benchmark.certificates.engines import build_engine
from benchmark.certificates.smoothing import image_generator
from benchmark.config.run_config import RunConfig
from benchmark.errors import BenchmarkError
from benchmark.files import Claims, check_writable, now
from benchmark.method import cost
from benchmark.run.grouped import timed_records
from benchmark.run.measure import denoising_error, is_denoiser
from benchmark.run.plan import Cell
from benchmark.run.progress import Progress
from benchmark.run.provenance import stamp
from benchmark.run.ranking import fit_parts
from benchmark.run.records import (
    Record,
    RecordWriter,
    RunInfo,
    certify_s_per_image,
    read_records,
    read_run_info,
    write_run_info,
)
from benchmark.run.session import Session


def check_shard(shard: tuple[int, int] | None, fresh: bool) -> None:
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise BenchmarkError(f"--shard {shard[0]}/{shard[1]}: use K/N with 0 <= K < N, e.g. 0/2 and 1/2")
    if shard is not None and fresh:
        raise BenchmarkError("--fresh with --shard would delete the other shards' records: run --fresh once first")


def _stage_sigmas(sigmas: tuple[float, ...]) -> list[float] | None:
    """run.json's noise levels of a certificate that votes over several (None: the cell's sigma alone)."""
    return list(sigmas) if len(sigmas) > 1 else None


def fit_states(fit: dict) -> str:
    """The fitted state a run certifies with: its own fit's SHA-256, or those of the fits a cascade composes."""
    return ",".join(part["state_sha256"] for _, part in fit_parts("", fit))


def start_info(
    cfg: RunConfig,
    session: Session,
    cell: Cell,
    previous: RunInfo | None,
    shard: tuple[int, int] | None,
    allow_dirty: bool,
) -> RunInfo:
    """run.json of a cell as a session starts on it: what it is, what went before (``previous``) and where it runs."""
    return RunInfo(
        suite=cfg.suite,
        method=cell.method,
        base=cell.base,
        sigma=cell.sigma,
        dataset=cfg.dataset,
        dataset_label=session.dataset.label,
        split=cfg.split,
        n0=cfg.n0,
        n=cfg.n,
        alpha=cfg.alpha,
        seed=cfg.seed,
        radii=list(cfg.radii),
        config_hash=cell.chash,
        config=cell.key,
        status="partial",  # "running" is read from the lock
        subset_size=cell.subset_size,
        data_fingerprint=session.data_fingerprint(),
        stage_sigmas=_stage_sigmas(cell.certifier.sigmas(cell.sigma)),
        started=previous.started if previous else now(),
        updated=now(),
        sessions=(previous.sessions if previous else 0) + 1,
        timings=previous.timings if previous and previous.timings else {"certify_time_s": 0.0, "images": 0},
        run_settings={
            "batch_size": cfg.batch_size,
            "max_images": cfg.max_images,
            "device": str(session.device),
            "data_root": cfg.data_root,
            "results": cfg.results,
            "shard": f"{shard[0]}/{shard[1]}" if shard else None,
            "allow_dirty": allow_dirty,
        },
        **stamp(session.device),
    )


class Runner:
    """Executes a :class:`RunConfig`.

    Args:
        cfg: the resolved configuration.
        fresh: delete the selected cells' records first.
        progress: show tqdm bars.
        shard: ``(k, N)``: certify only the images at positions ``k, k + N, ...`` of the subset's order, into
            ``records-<k>of<N>.jsonl``; N processes (or GPUs) with k = 0..N-1 together make the whole run, and
            readers merge their files. Records do not depend on the sharding.
        session: the session to run in (default: a new one of ``cfg``; a user's own model brings its own).
    """

    def __init__(
        self,
        cfg: RunConfig,
        fresh: bool = False,
        progress: bool = True,
        shard: tuple[int, int] | None = None,
        allow_dirty: bool = False,
        session: Session | None = None,
    ):
        check_shard(shard, fresh)
        self.cfg, self.fresh, self.show, self.shard, self.allow_dirty = cfg, fresh, progress, shard, allow_dirty
        self.session = session or Session(cfg)
        self.progress = Progress(0, show=False)

    def run(self) -> list:
        """Certify every planned cell's images left; return the run directories."""
        session = self.session
        check_writable(session.results)
        check_writable(session.cache_dir, "--cache-dir", "cache directory")
        cells = session.plan()
        for cell in cells:  # a certificate the cell's method refuses fails now, not after its fit
            _ = cell.certifier
        work = []
        for cell in cells:
            directory = cell.directory(session.results, self.cfg.suite)
            if self.fresh:
                for path in directory.glob("records*.jsonl"):
                    path.unlink()
            writer = RecordWriter(directory, f"{self.shard[0]}of{self.shard[1]}" if self.shard else None)
            mine = cell.indices[self.shard[0] :: self.shard[1]] if self.shard else cell.indices
            work.append((cell, writer, [i for i in mine if i not in writer.done]))
        # Build every base now, and read the training data if a fit is to be made: a missing or corrupt checkpoint
        # or image fails before the first record is written.
        for base in dict.fromkeys(cell.base for cell, _, todo in work if todo):
            session.build_base(base)
        if session.must_train([cell for cell, _, todo in work if todo]):
            session.data("train")
        self.progress = Progress(sum(len(todo) for _, _, todo in work), show=self.show)
        for cell, writer, todo in work:
            if todo:
                self.run_cell(cell, writer, todo)
        return [cell.directory(session.results, self.cfg.suite) for cell in cells]

    def run_cell(self, cell: Cell, writer: RecordWriter, todo: list[int]) -> None:
        session, directory = self.session, writer.directory
        previous = read_run_info(directory)
        info = start_info(self.cfg, self.session, cell, previous, self.shard, self.allow_dirty)
        if writer.done and previous and previous.data_fingerprint not in (None, info.data_fingerprint):
            raise BenchmarkError(
                f"{directory}: its records were certified on other data (fingerprint {previous.data_fingerprint}, "
                f"here {info.data_fingerprint}): point --data-root at the data it used, or rerun with --fresh"
            )
        method, fit = session.fit(cell)
        before = fit_states(previous.fit) if previous else None
        if writer.done and before and fit_states(fit) and before != fit_states(fit):
            # a refit on another machine is not bit-identical: never extend records of one state with another
            raise BenchmarkError(
                f"{directory}: its {len(writer.done)} records came from fitted state {before[:12]}, but this fit is "
                f"{fit_states(fit)[:12]}: restore that state under {session.store.published_root}/{cell.method}"
                " (python -m benchmark publish-fits) or rerun with --fresh"
            )
        info.fit, info.cost, info.notes = fit, cost(method), method.report(cell.sigma)
        if is_denoiser(method):
            info.measurements = denoising_error(method, session.eval_data(), cell.sigma, session.device, self.cfg.seed)
        info.timings["fit_time_s"] = fit.get("fit_time_s", 0.0)
        # one wrapped noisy classifier per noise level the certificate votes over (one, but for a cascade)
        classifiers = [
            (s, build_engine(method.noisy_classifier(s), session.device, session.precision, self.cfg.engine))
            for s in cell.certifier.sigmas(cell.sigma)
        ]
        write_run_info(directory, info)
        self.certify_images(cell, classifiers, writer, todo, info)

    def certify_images(
        self, cell: Cell, classifiers: list, writer: RecordWriter, todo: list[int], info: RunInfo
    ) -> None:
        cfg, session, progress = self.cfg, self.session, self.progress
        data, label_of_row = session.eval_data(), f"{cell.base}/{cell.method} sigma={cell.sigma:g}"
        bar, claims = progress.bar(todo, label_of_row), Claims(writer.directory / "claims.lock")
        pack = cell.certifier.pack  # images certified together (their records do not depend on it)
        samples, seconds = 0, 0.0
        try:
            for start in range(0, len(todo), pack):
                group = _claim(todo[start : start + pack], claims, writer, progress, bar)
                if not group:
                    continue
                try:
                    records = certify_group(cfg, cell, classifiers, data, group, session.device)
                    for record in records:
                        writer.append(record)
                finally:
                    for idx in group:
                        claims.release(idx)
                for record in records:
                    samples, seconds = samples + record.n_used, seconds + record.time_s
                    bar.update(1)
                    progress.image(
                        bar, label_of_row, (len(writer.done), len(cell.indices)), record.time_s, samples / seconds
                    )
        finally:
            writer.close()
            claims.close()
            bar.close()
            finish(cell, writer, info)
            progress.row_end(
                label_of_row,
                info.status,
                (info.images_done, len(cell.indices)),
                samples / seconds if seconds else float("nan"),
            )


def _claim(group: list[int], claims: Claims, writer: RecordWriter, progress: Progress, bar) -> list[int]:
    """The images of ``group`` this process now holds and nobody has finished; the others are skipped."""
    mine = []
    for idx in group:
        # Another process on this cell may hold the image, or have finished it since this one started.
        if not claims.claim(idx):
            progress.skip()
            bar.update(1)
            continue
        # identical runs append to one file: the image may have been finished since this one started
        if idx in writer.refresh():
            claims.release(idx)
            progress.skip()
            bar.update(1)
            continue
        mine.append(idx)
    return mine


def protocol(cfg: RunConfig) -> dict:
    """What a run's certificate is given for every image: the suite's sample sizes, alpha, batch size and grid."""
    return {"n0": cfg.n0, "n": cfg.n, "alpha": cfg.alpha, "batch_size": cfg.batch_size, "radii": cfg.radii}


def noise(cfg: RunConfig, indices, device) -> list:
    """The generators that draw all the noise of images ``indices`` in a run of ``cfg`` (one per image)."""
    return [image_generator(cfg.seed, int(idx), device) for idx in indices]


def certify_group(cfg: RunConfig, cell: Cell, classifiers: list, data, indices: list[int], device) -> list[Record]:
    """The records of images ``indices`` under the cell's certificate, certified together, each image's noise from
    its own generator (so each record is the one the image gets alone); see :func:`timed_records`."""

    def certify(xs, idxs):
        return cell.certifier.certify_many(classifiers, xs, generators=noise(cfg, idxs, device), **protocol(cfg))

    return timed_records(
        certify,
        data,
        indices,
        device,
        method=cell.method,
        config_hash=cell.chash,
        dataset=cfg.dataset,
        split=cfg.split,
        sigma=cell.sigma,
        seed=cfg.seed,
        n0=cfg.n0,
        n=cfg.n,
        alpha=cfg.alpha,
    )


def finish(cell: Cell, writer: RecordWriter, info: RunInfo) -> None:
    """run.json's totals and status, from the records of every shard, session and process on the cell, so
    processes that each rewrite run.json when they stop agree, and the last one leaves the whole run's."""
    merged = read_records(writer.directory)
    info.timings.update(certify_time_s=sum(r.time_s for r in merged), images=len(merged))
    if merged:
        info.timings["certify_s_per_image"] = certify_s_per_image(merged)
    info.updated = now()
    info.images_done = len(merged)
    info.status = "complete" if set(cell.indices) <= {r.idx for r in merged} else "partial"
    # The disk that stopped the run may refuse this too: readers then see "partial" from the lock.
    with contextlib.suppress(OSError):
        write_run_info(writer.directory, info)
