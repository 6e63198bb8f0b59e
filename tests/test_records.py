"""Records: append-only, torn last line dropped, resume without duplicates, shards merged."""

from __future__ import annotations

import json

import pytest

from benchmark.errors import BenchmarkError
from benchmark.files import write_atomic
from benchmark.report.labels import envelope_sources, unfinished
from benchmark.run.records import Record, RecordWriter, Run, RunInfo, read_records, writing


def _record(idx: int) -> Record:
    return Record.of(
        label=3,
        prediction=3,
        method="m",
        config_hash="h",
        dataset="digits",
        split="test",
        idx=idx,
        sigma=0.25,
        seed=0,
        n0=10,
        n=100,
        alpha=0.001,
        radius=0.123456789012345,
        p_a_lower=0.9,
        n_top=95,
        n_used=110,
        time_s=0.5,
        mode="fixed",
    )


def test_append_and_resume(tmp_path):
    w = RecordWriter(tmp_path / "run")
    for i in (0, 5, 10):
        w.append(_record(i))
    w.close()
    w2 = RecordWriter(tmp_path / "run")
    assert w2.done == {0, 5, 10}
    rows = read_records(tmp_path / "run")
    assert [r.idx for r in rows] == [0, 5, 10]
    assert rows[0].radius == 0.123456789012345  # full precision, not Cohen's {:.3}
    assert rows[0] == _record(0)  # one serialisation path, both ways


def test_torn_last_line_is_dropped(tmp_path):
    d = tmp_path / "run"
    w = RecordWriter(d)
    w.append(_record(0))
    w.append(_record(1))
    w.close()
    path = d / "records.jsonl"
    torn = path.read_bytes() + b'{"idx": 2, "rad'  # killed mid-write, or being written right now
    path.write_bytes(torn)
    assert [r.idx for r in read_records(d)] == [0, 1]
    assert path.read_bytes() == torn  # a reader never modifies the file: its writer may be mid-line
    w = RecordWriter(d)
    assert path.read_bytes().endswith(b"\n")  # the next writer of the file cuts the torn bytes before appending
    w.append(_record(2))
    w.close()
    assert [json.loads(line)["idx"] for line in path.read_text().splitlines()] == [0, 1, 2]


def test_corrupt_middle_line_is_an_error(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "records.jsonl").write_text('{"idx": 0}\nnot json\n{"idx": 1}\n')
    with pytest.raises(BenchmarkError, match="corrupt"):
        read_records(d)


def test_shards_are_merged(tmp_path):
    d = tmp_path / "run"
    for shard, indices in (("0", [0, 2]), ("1", [1, 3])):
        w = RecordWriter(d, shard=shard)
        for i in indices:
            w.append(_record(i))
        w.close()
    assert [r.idx for r in read_records(d)] == [0, 1, 2, 3]


def test_a_shard_writer_leaves_other_shards_files_alone(tmp_path):
    d = tmp_path / "run"
    w = RecordWriter(d, shard="1of2")
    w.append(_record(1))
    w.close()
    other = d / "records-1of2.jsonl"
    being_written = other.read_bytes() + b'{"idx": 3, "ra'
    other.write_bytes(being_written)
    w = RecordWriter(d, shard="0of2")  # starting beside a running shard
    w.append(_record(0))
    w.close()
    assert other.read_bytes() == being_written
    assert [r.idx for r in read_records(d)] == [0, 1]


@pytest.mark.parametrize("recorded", ["running", "partial", "complete", "imported"])
def test_running_only_while_a_writer_lives(tmp_path, recorded):
    """A live writer's lock says "running" (run.json says "partial" from the start, and older files "running");
    once no process has a records file of the run open, readers say "partial". Other statuses are as recorded."""
    d = tmp_path / "run"
    w = RecordWriter(d, shard="1of2")
    w.append(_record(1))
    other = RecordWriter(d, shard="0of2")
    other.append(_record(0))
    other.close()  # one shard done, the other still writing
    assert writing(d)
    info = RunInfo(suite="s", method="m", base="b", sigma=0.25, status=recorded)
    unfinished = recorded in ("running", "partial")
    assert Run(d, info, read_records(d)).status == ("running" if unfinished else recorded)
    w.close()
    assert not writing(d)
    assert Run(d, info, read_records(d)).status == ("partial" if unfinished else recorded)


def test_a_filesystem_without_locks_still_takes_records(tmp_path, monkeypatch):
    import errno
    import fcntl

    def refuse(handle, flags):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    w = RecordWriter(tmp_path / "run")
    w.append(_record(3))
    assert not writing(tmp_path / "run")  # unknowable there: reads as not running
    w.close()
    assert [r.idx for r in read_records(tmp_path / "run")] == [3]


@pytest.mark.parametrize("line", ["{}", "[1, 2]", '{"idx": 0, "label": 1}'])
def test_a_line_that_is_not_a_record_is_named(tmp_path, line):
    d = tmp_path / "run"
    d.mkdir()
    good = json.dumps(_record(0).to_json())
    (d / "records.jsonl").write_text(f"{good}\n{line}\n{good}\n")
    with pytest.raises(BenchmarkError, match=r"line 2 is not a record"):
        read_records(d)


def test_older_versions_are_refused_until_migrate_rewrites_them_with_their_values(tmp_path, capsys):
    """Readers take today's schema only and name ``migrate``; it rewrites a line without ``mode`` (fixed-n CERTIFY),
    a cascade's fields beside the common ones (into ``details``) and run.json's "report" (now "measurements"),
    values unchanged, and leaves files already in today's form byte for byte."""
    from benchmark.cli.parser import main

    run = tmp_path / "results" / "s" / "m" / "b" / "sigma_0.25" / "h"
    run.mkdir(parents=True)
    today = _record(0).to_json()
    no_mode = {k: v for k, v in _record(1).to_json().items() if k != "mode"}
    cascade = {**_record(2).to_json(), "mode": "cascade", "stage": 1, "sigma_used": 0.5}
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (today, no_mode, cascade)))
    info = {"suite": "s", "method": "m", "base": "b", "sigma": 0.25, "report": {"noisy_mse": 0.2}, "source": "x"}
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(BenchmarkError, match="older version.*migrate"):
        read_records(run)
    with pytest.raises(BenchmarkError, match="older version.*migrate"):
        RunInfo.from_json(info, run / "run.json")
    assert main(["migrate", "--results", str(tmp_path / "results")]) == 0
    records = read_records(run)
    assert [r.mode for r in records] == ["fixed", "fixed", "cascade"]
    assert records[2].details == {"stage": 1, "sigma_used": 0.5} and records[1].radius == today["radius"]
    assert (run / "records.jsonl").read_text().splitlines()[0] == json.dumps(today)  # today's line untouched
    migrated = RunInfo.from_json(json.loads((run / "run.json").read_text()))
    assert migrated.measurements == {"noisy_mse": 0.2} and migrated.extra == {"source": "x"}
    before = {p: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert main(["migrate", "--results", str(tmp_path / "results")]) == 0  # a second time: nothing to do
    assert "today's schema" in capsys.readouterr().out and before == {p: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(BenchmarkError, match="not a run.json"):
        RunInfo.from_json({"suite": "s"}, tmp_path / "run.json")


def _write_many(path, payload: bytes, start, rounds: int) -> None:
    start.wait()
    for _ in range(rounds):
        write_atomic(path, lambda tmp: tmp.write_bytes(payload))


def test_concurrent_atomic_writes_of_one_file(tmp_path):
    """Two processes that cache the same file at once (two queues on one cache) must both succeed, and the file
    must always be one writer's whole content."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    start = ctx.Barrier(2)
    path = tmp_path / "cache" / "blob.pt"
    payloads = [bytes([i]) * 2**20 for i in (1, 2)]
    procs = [ctx.Process(target=_write_many, args=(path, p, start, 40)) for p in payloads]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert path.read_bytes() in payloads
    assert [f.name for f in path.parent.iterdir()] == ["blob.pt"]  # no temporary left behind


def test_failed_atomic_write_leaves_nothing(tmp_path):
    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(tmp_path / "x.json", broken)
    assert list(tmp_path.iterdir()) == []


def test_unfinished_rows_say_so_and_envelopes_name_their_rows():
    assert unfinished("complete", 200) == "" and unfinished("running") == " (running)"
    assert unfinished("partial", 36) == " (partial, 36 images)" and unfinished("running", 1) == " (running, 1 image)"
    parts = [(0.5, "complete", 200), (0.25, "running", 9)]
    assert envelope_sources(parts) == "0.25 (running, 9 images), 0.5"


def test_migrate_rewrites_nothing_if_one_file_cannot_be_migrated_and_refuses_a_live_run(tmp_path):
    """A line migrate cannot read stops it before any file is rewritten (one line naming it); a run a live process
    is writing is refused, since its open file would keep taking records the rewritten one never sees."""
    from benchmark.run.migrate import migrate

    old = {k: v for k, v in _record(0).to_json().items() if k != "mode"}
    runs = [tmp_path / "results" / "s" / "m" / "b" / "sigma_0.25" / h for h in ("a", "b")]
    for run in runs:
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"suite": "s", "method": "m", "base": "b", "sigma": 0.25}))
        (run / "records.jsonl").write_text(json.dumps(old) + "\n")
    (runs[1] / "records.jsonl").write_text(json.dumps(old) + "\n" + json.dumps({**old, "surprise": 1}) + "\n")
    before = {p: p.read_bytes() for run in runs for p in run.iterdir()}
    with pytest.raises(BenchmarkError, match="line 2 cannot be migrated.*nothing was rewritten"):
        migrate(tmp_path / "results")
    assert before == {p: p.read_bytes() for run in runs for p in run.iterdir()}
    (runs[1] / "records.jsonl").write_text(json.dumps(old) + "\n")
    # run a: records already in today's form, only its run.json to migrate, and a live writer on it
    (runs[0] / "records.jsonl").write_text(json.dumps(_record(0).to_json()) + "\n")
    info = {"suite": "s", "method": "m", "base": "b", "sigma": 0.25, "report": {"noisy_mse": 0.1}}
    (runs[0] / "run.json").write_text(json.dumps(info))
    live = RecordWriter(runs[0])
    live._open()  # a run appending to it right now
    with pytest.raises(BenchmarkError, match="being written by a live run"):
        migrate(tmp_path / "results")
    live.close()
    assert len(migrate(tmp_path / "results")) == 2


def test_a_writer_sees_images_another_file_of_the_run_finished_since_it_started(tmp_path):
    """A sharded process beside an unsharded one on the same cell (or two different splits): what either appended
    is done for the other, so an image is not certified twice; only the new bytes are read."""
    d = tmp_path / "run"
    shard, plain = RecordWriter(d, shard="0of2"), RecordWriter(d)
    plain.append(_record(5))
    shard.append(_record(6))
    assert {5, 6} <= shard.refresh() and {5, 6} <= plain.refresh()
    plain.append(_record(7))
    assert 7 in shard.refresh() and shard.refresh() == {5, 6, 7}
    shard.close(), plain.close()
