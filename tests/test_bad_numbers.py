"""Bad numbers to the newer commands end in one line naming the flag, a non-zero exit and nothing written
(issue 41, items 5 and 7); before, some wrote a misleading row (PGD-0) or sliced a list with 0 or -190."""

from __future__ import annotations

import pytest

from benchmark.cli.parser import main
from tests.test_faults import error_line


@pytest.fixture
def args(run_args) -> list[str]:
    return [a for a in run_args if a != "--quiet"]  # the evaluations show no progress bars to silence


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--steps", "0"], "--steps must be >= 1"),
        (["--eps", "nan"], "--eps and --step must be finite numbers > 0"),
        (["--eps", "inf"], "--eps and --step must be finite numbers > 0"),
        (["--eps", "0"], "--eps and --step must be finite numbers > 0"),
        (["--step", "nan"], "--eps and --step must be finite numbers > 0"),
        (["--sigma", "nan"], "--sigma must be >= 0"),
    ],
)
def test_attack_refuses_bad_numbers_before_any_work(args, tmp_path, capsys, flags, match):
    assert main(["attack", *args, "--methods", "vanilla", *flags]) == 2
    assert match in error_line(capsys)
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("count", ["0", "-190"])
def test_audit_refuses_a_count_of_images_that_is_not_positive(args, tmp_path, capsys, count):
    assert main(["audit", *args, "--methods", "vanilla", "--max-images", count]) == 2
    assert "--max-images must be >= 1" in error_line(capsys) and not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--images", "0"], "--images and --slow-images must be >= 1"),
        (["--slow-images", "-1"], "--images and --slow-images must be >= 1"),
        (["--method", "multiscale_gaussian"], "votes over several noise levels"),
    ],
)
def test_perf_refuses_bad_counts_and_a_cascade(args, tmp_path, capsys, flags, match):
    assert main(["perf", *args, *flags]) == 2
    assert match in error_line(capsys) and not (tmp_path / "lb").exists()


@pytest.mark.parametrize("command", ["attack", "audit"])
def test_an_out_that_is_a_file_is_refused_before_the_records_are_written(args, tmp_path, capsys, command):
    blocker = tmp_path / "lb"
    blocker.write_text("a file where the pages would go")
    assert main([command, *args, "--methods", "vanilla"]) == 2
    assert "--out" in error_line(capsys) and not (tmp_path / "results").exists()
    assert blocker.read_text() == "a file where the pages would go"


def test_audit_without_a_run_refuses_before_building_anything(args, tmp_path, capsys):
    """No ranked run to audit: one line naming the command that makes one, and no base trained or cached first."""
    assert main(["audit", *args, "--methods", "vanilla", "--sigma", "0.25"]) == 2
    assert "no ranked vanilla run" in error_line(capsys) and not (tmp_path / "cache").exists()
