"""locuslab/smoothing TSV import and export."""

from __future__ import annotations

import pytest

from benchmark.cli.parser import main
from benchmark.run.interop import format_time, parse_time
from benchmark.run.records import latest_runs

COHEN_LOG = (
    "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
    "0\t3\t3\t0.524\t1\t0:00:15.123456\n"
    "20\t8\t8\t0.977\t2\t0:00:15.000001\n"
    "40\t8\t-1\t0.0\t2\t14.5\n"
    "60\t0\t6\t0.25\t2\t0:00:15\n"
)


def test_parse_time():
    assert parse_time("12.5") == 12.5
    assert parse_time("0:02:31.500000") == pytest.approx(151.5)
    assert parse_time("1 day, 0:00:01") == 86401
    assert parse_time(format_time(3.25)) == pytest.approx(3.25)


def test_import_recomputes_correct_and_tabulates(tmp_path):
    """The DDS certify.py wrote a running total in `correct`; the import recomputes predict == label."""
    log = tmp_path / "sigma_0.25"
    log.write_text(COHEN_LOG)
    results = tmp_path / "results"
    args = [
        "import-tsv",
        str(log),
        "--method",
        "dds",
        "--sigma",
        "0.25",
        "--suite",
        "pub",
        "--n",
        "100000",
        "--alpha",
        "0.001",
        "--results",
        str(results),
    ]
    assert main(args) == 0
    assert main(args) == 0  # re-import: no duplicates
    (run,) = latest_runs(results, "pub")
    assert [r.correct for r in run.records] == [1, 1, 0, 0]
    assert [r.prediction for r in run.records] == [3, 8, -1, 6]
    assert run.info.extra == {"source": str(log)} and run.info.status == "imported"
    assert main(["leaderboard", "--results", str(results), "--out", str(tmp_path / "lb")]) == 0
    csv = (tmp_path / "lb" / "pub.csv").read_text().splitlines()
    header, row = csv[0].split(","), csv[1].split(",")
    assert float(row[header.index("acc@0.5")]) == 0.5  # images 0 and 20 certified beyond 0.5


def test_round_trip(tmp_path, run_args):
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25"]) == 0
    results = run_args[run_args.index("--results") + 1]
    out = tmp_path / "exported.tsv"
    assert (
        main(
            [
                "export-tsv",
                "--suite",
                "tiny",
                "--method",
                "vanilla",
                "--sigma",
                "0.25",
                "--results",
                results,
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert out.read_text().splitlines()[0].split("\t") == ["idx", "label", "predict", "radius", "correct", "time"]
    r2 = tmp_path / "r2"
    assert (
        main(
            ["import-tsv", str(out), "--method", "vanilla", "--sigma", "0.25", "--suite", "tiny", "--results", str(r2)]
        )
        == 0
    )
    (orig,) = latest_runs(__import__("pathlib").Path(results), "tiny")
    (back,) = latest_runs(r2, "tiny")
    keys = ("idx", "label", "prediction", "radius", "correct")
    assert [[getattr(r, k) for k in keys] for r in orig.records] == [
        [getattr(r, k) for k in keys] for r in back.records
    ]
    assert [r.time_s for r in back.records] == pytest.approx([r.time_s for r in orig.records], abs=1e-6)
