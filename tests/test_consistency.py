"""Results whose metadata disagree are refused, not read as they claim (issue 41, item 4): a run.json describing
another folder, and records of another run (method, hash, n, ...) inside a run's records file."""

from __future__ import annotations

import json

import pytest

from benchmark.cli.parser import main
from benchmark.errors import BenchmarkError
from benchmark.run.records import Record, RunInfo, iter_runs, run_dir, write_run_info

CHASH = "abcdef0123"


def _record(idx: int, **changes) -> dict:
    fields = dict(
        method="gaussian",
        config_hash=CHASH,
        dataset="digits",
        split="test",
        idx=idx,
        sigma=0.25,
        seed=0,
        n0=10,
        n=100,
        alpha=0.001,
        radius=0.2,
        p_a_lower=0.8,
        n_top=90,
        n_used=110,
        time_s=0.1,
        mode="fixed",
    )
    return Record.of(label=1, prediction=1, **{**fields, **changes}).to_json()


def _run(tmp_path, info_changes=None, lines=None):
    results = tmp_path / "results"
    directory = run_dir(results, "s", "gaussian", "small_cnn", 0.25, CHASH)
    directory.mkdir(parents=True)
    info = dict(
        suite="s",
        method="gaussian",
        base="small_cnn",
        sigma=0.25,
        n0=10,
        n=100,
        alpha=0.001,
        seed=0,
        config_hash=CHASH,
        status="complete",
        radii=[0.0, 0.25],
    )
    write_run_info(directory, RunInfo(**{**info, **(info_changes or {})}))
    rows = lines if lines is not None else [_record(0), _record(1)]
    (directory / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return results, directory


def test_consistent_runs_read(tmp_path):
    results, _ = _run(tmp_path)
    (run,) = iter_runs(results)
    assert [r.idx for r in run.records] == [0, 1]


@pytest.mark.parametrize(
    "changes",
    [{"method": "vanilla"}, {"base": "resnet20"}, {"sigma": 0.5}, {"config_hash": "0000000000"}, {"suite": "t"}],
)
def test_a_run_json_describing_another_folder_is_refused(tmp_path, capsys, changes):
    results, _ = _run(tmp_path, info_changes=changes)
    with pytest.raises(BenchmarkError, match="not the folder it is in"):
        list(iter_runs(results))
    assert main(["leaderboard", "--results", str(results), "--out", str(tmp_path / "lb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "run.json describes" in err


@pytest.mark.parametrize(
    "changes",
    [{"method": "vanilla"}, {"config_hash": "0000000000"}, {"n": 1000}, {"alpha": 0.01}, {"seed": 1}, {"sigma": 0.5}],
)
def test_a_record_of_another_run_is_refused(tmp_path, capsys, changes):
    results, _ = _run(tmp_path, lines=[_record(0), _record(1, **changes), _record(2)])
    with pytest.raises(BenchmarkError, match=f"image 1 has another {next(iter(changes))}"):
        list(iter_runs(results))
    assert main(["leaderboard", "--results", str(results), "--out", str(tmp_path / "lb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_imported_log_is_its_own_kind_of_row_and_never_supersedes_a_measured_run(tmp_path):
    """import-tsv of our own method, base and sigma beside our run: ours stays ranked, the log is listed apart as
    imported, and no table prints "nan" for what a log does not record (issue 41, item 8)."""
    from benchmark.run.interop import import_tsv

    results, directory = _run(tmp_path)
    (directory / "run.json").write_text(
        (directory / "run.json").read_text().replace('"dataset": null', '"dataset": "digits"')
    )
    log = tmp_path / "log.tsv"
    log.write_text(
        "idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.3\t1\t0:00:01.5\n1\t1\t0\t0.0\t0\t0:00:01\n"
    )
    import_tsv(log, method="gaussian", sigma=0.25, suite="s", results=results, base="small_cnn")
    assert main(["leaderboard", "--results", str(results), "--out", str(tmp_path / "lb")]) == 0
    md, csv = ((tmp_path / "lb" / f"s.{ext}").read_text() for ext in ("md", "csv"))
    ranked = [line for line in md.splitlines() if line.startswith("| best |")]
    assert len(ranked) == 1 and "| gaussian |" in ranked[0] and "superseded" not in md
    assert "| gaussian | fp32 | imported |" in md
    assert "nan" not in md and "nan" not in csv.replace("nan_", "")
