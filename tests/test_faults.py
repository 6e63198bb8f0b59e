"""Fault injection: damaged fits, names that would leave the results tree, duplicated work, bad input, a full disk.

Each case must end in one line naming the problem and the way out, a non-zero exit and no traceback (``main``
turns only :class:`BenchmarkError` and ``OSError`` into that line: anything else fails the test by raising), and
never in a wrong result: no record is written from a damaged state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from benchmark.cli.parser import main
from benchmark.files import sha256_file
from benchmark.run.records import latest_runs
from tests.test_run import ROOT, _jpeg_cifar_tree, lines_on_disk

ONE = ["--methods", "gaussian", "--sigma", "0.25"]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def _fit_dir(tmp_path: Path) -> Path:
    (fit_dir,) = (tmp_path / "cache" / "fits" / "gaussian").glob("*/")
    return fit_dir


def _restamp(fit_dir: Path) -> None:
    """Make fit.json record the SHA-256 of the state as it now is: a consistent, but wrong, fit."""
    info = json.loads((fit_dir / "fit.json").read_text())
    info["state_sha256"] = sha256_file(fit_dir / "state.safetensors")
    (fit_dir / "fit.json").write_text(json.dumps(info))


def _empty(path: Path) -> None:
    save_file({}, str(path))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _random(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _flipped(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # inside the last tensor's bytes: still a valid file, other weights
    path.write_bytes(bytes(data))


def _wrong_keys(path: Path) -> None:
    save_file({f"other.{k}": v for k, v in load_file(str(path)).items()}, str(path))


@pytest.mark.parametrize(
    "damage,restamp,needle",
    [
        (_empty, True, "is not a gaussian fit"),
        (_wrong_keys, True, "is not a gaussian fit"),
        (_truncated, True, "is not a readable safetensors file"),
        (_random, True, "is not a readable safetensors file"),
        (_flipped, False, "does not match the SHA-256"),
        (_truncated, False, "does not match the SHA-256"),
    ],
    ids=["empty", "wrong-keys", "truncated", "random-bytes", "flipped-bytes", "truncated-unstamped"],
)
def test_a_damaged_fit_never_loads(run_args, tmp_path, capsys, damage, restamp, needle):
    assert main(["run", *run_args, *ONE, "--max-images", "1"]) == 0
    fit_dir = _fit_dir(tmp_path)
    damage(fit_dir / "state.safetensors")
    if restamp:
        _restamp(fit_dir)
    capsys.readouterr()
    assert main(["run", *run_args, *ONE, "--max-images", "2"]) == 2
    err = error_line(capsys)
    assert str(fit_dir / "state.safetensors") in err and needle in err and "delete" in err
    assert lines_on_disk(tmp_path / "results") == 1  # nothing certified from the damaged state


def test_a_corrupt_training_checkpoint_is_named(run_args, tmp_path, capsys):
    assert main(["run", *run_args, *ONE, "--max-images", "1"]) == 0
    fit_dir = _fit_dir(tmp_path)
    for name in ("state.safetensors", "fit.json"):
        (fit_dir / name).unlink()
    (fit_dir / "checkpoint.pt").write_bytes(b"not a pickle")
    capsys.readouterr()
    assert main(["run", *run_args, *ONE, "--max-images", "1", "--fresh"]) == 2
    err = error_line(capsys)
    assert f"training checkpoint {fit_dir / 'checkpoint.pt'}" in err and "delete it" in err


def test_damaged_base_weights_are_named(run_args, tmp_path, capsys):
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "1"]) == 0
    (state,) = (tmp_path / "cache" / "bases").glob("small_cnn-digits/*/state.safetensors")
    _flipped(state)
    capsys.readouterr()
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.5", "--max-images", "1"]) == 2
    assert str(state) in error_line(capsys)


# --- names that would leave the results tree ---------------------------------------------------------------------


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.exists() else set()


@pytest.mark.parametrize("flag", ["--method", "--base", "--suite"])
def test_import_names_cannot_escape(tmp_path, capsys, flag):
    log = tmp_path / "log.tsv"
    log.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\t1.0\n")
    results = tmp_path / "a" / "b" / "results"
    names = {"--method": "vanilla", "--base": "b", "--suite": "s"} | {flag: ".."}
    before = _tree(tmp_path)
    args = ["import-tsv", str(log), "--sigma", "0.25", "--results", str(results)]
    assert main([*args, *(x for k, v in names.items() for x in (k, v))]) == 2
    assert "cannot name a folder" in error_line(capsys)
    assert _tree(tmp_path) == before


def test_a_suite_named_dotdot_is_refused(tiny_suite, run_args, tmp_path, capsys):
    tiny_suite.write_text(tiny_suite.read_text().replace('name = "tiny"', 'name = ".."'))
    assert main(["run", *run_args, "--methods", "vanilla"]) == 2
    assert "suite name '..' cannot name a folder" in error_line(capsys)
    assert not (tmp_path / "results").exists()


def test_publish_fits_refuses_a_crafted_method_name(run_args, tmp_path, capsys):
    assert main(["run", *run_args, *ONE, "--max-images", "1"]) == 0
    (run,) = latest_runs(tmp_path / "results", "tiny")
    info = json.loads((run.directory / "run.json").read_text())
    (run.directory / "run.json").write_text(json.dumps({**info, "method": "../../../../escaped"}))
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main(["publish-fits", "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]) == 2
    assert "cannot name a folder" in error_line(capsys)
    assert _tree(tmp_path) == before


def test_leaderboard_suite_cannot_escape(run_args, tmp_path, capsys):
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "1"]) == 0
    capsys.readouterr()
    out = tmp_path / "x" / "lb"
    assert main(["leaderboard", "--suite", "../x", "--results", str(tmp_path / "results"), "--out", str(out)]) == 2
    assert "cannot name a folder" in error_line(capsys)
    assert not (tmp_path / "x").exists()


def test_run_with_results_elsewhere_leaves_the_committed_leaderboards_alone(run_args, tmp_path, capsys):
    """Without --out, tables go beside --results, never over the checkout's leaderboards/."""
    args = [a for a in run_args if a not in ("--out", str(tmp_path / "lb"))]
    committed = {p: p.read_bytes() for p in (ROOT / "leaderboards").glob("*.*")}
    assert main(["run", *args, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "1"]) == 0
    assert (tmp_path / "leaderboards" / "tiny.md").is_file()
    assert {p: p.read_bytes() for p in (ROOT / "leaderboards").glob("*.*")} == committed
    assert f"tables in {tmp_path / 'leaderboards' / 'tiny'}.md" in capsys.readouterr().out


# --- duplicated work ---------------------------------------------------------------------------------------------


def test_two_identical_runs_at_once_certify_each_image_once(run_args, tmp_path):
    slow = [
        *run_args,
        "--methods",
        "vanilla",
        "--sigma",
        "0.25",
        "--n",
        "20000",
        "--skip",
        "10",
        "--max-images",
        "16",
        "--no-leaderboard",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "benchmark", "run", *slow], cwd=ROOT, env=env) for _ in "ab"]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert lines_on_disk(tmp_path / "results") == 16  # one record line per image, not two
    (run,) = latest_runs(tmp_path / "results", "tiny")
    assert run.status == "complete" and run.info.images_done == 16


def test_repeated_names_and_sigmas_are_one_cell_and_an_empty_list_an_error(run_args, tmp_path, capsys):
    args = [*run_args, "--methods", "vanilla,vanilla", "--bases", "small_cnn,small_cnn", "--sigma", "0.25,0.25"]
    assert main(["run", *args, "--max-images", "2"]) == 0
    assert lines_on_disk(tmp_path / "results") == 2 and len(latest_runs(tmp_path / "results", "tiny")) == 1
    capsys.readouterr()
    assert main(["run", *run_args, "--methods", ""]) == 2
    assert "--methods is empty" in error_line(capsys)


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit,needle",
    [
        (
            lambda s: s.replace("batch_size = 64\nprecision", "batch_size = 11.5\nprecision"),
            "batch_size must be an integer",
        ),
        (lambda s: s.replace("alpha = 0.001", 'alpha = "0.001"'), "alpha must be a number"),
        (lambda s: s.replace("sigmas = [0.25, 0.5]", "sigmas = 0.25"), "sigmas must be a list of numbers"),
        (lambda s: s.replace("n0 = 20", "n0 = 200"), "must not exceed n"),
        (lambda s: s.replace("width = 4\ndepth = 2", "widht = 4\ndepth = 2"), "in [base_settings.small_cnn]"),
        (
            lambda s: s.replace("[method_settings.gaussian]\n", "[method_settings.gaussian]\nversion = 'x'\n"),
            "unknown",
        ),
    ],
    ids=["batch-size-fraction", "alpha-string", "sigmas-scalar", "n0-over-n", "base-settings-typo", "unknown-key"],
)
def test_a_bad_suite_value_names_its_key(tiny_suite, run_args, tmp_path, capsys, edit, needle):
    tiny_suite.write_text(edit(tiny_suite.read_text()))
    assert main(["run", *run_args, "--methods", "gaussian", "--max-images", "1"]) == 2
    assert needle in error_line(capsys)
    assert not (tmp_path / "results").exists()


def test_a_negative_seed_is_refused(run_args, capsys):
    assert main(["run", *run_args, "--seed", "-1"]) == 2
    assert "seed must be" in error_line(capsys)


def test_a_cache_dir_that_is_a_file_and_an_out_that_cannot_be_made_are_found_first(run_args, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    cache = run_args.index("--cache-dir") + 1
    args = [*run_args[:cache], str(blocker), *run_args[cache + 1 :], "--methods", "vanilla", "--max-images", "1"]
    assert main(["run", *args]) == 2
    assert f"cache directory {blocker} is not writable" in error_line(capsys)
    out = run_args.index("--out") + 1
    args = [*run_args[:out], str(blocker / "lb"), *run_args[out + 1 :], "--methods", "vanilla", "--max-images", "1"]
    assert main(["run", *args]) == 2
    assert "leaderboard directory" in error_line(capsys)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("kind", ["garbage", "truncated", "wrong-size"])
def test_a_bad_image_is_named(tiny_suite, tmp_path, capsys, kind):
    import numpy as np
    from PIL import Image

    data = _jpeg_cifar_tree(tmp_path / "cifar")
    bad = data / "test" / "cat" / "1.jpg"
    if kind == "garbage":
        bad.write_bytes(b"\xff\xd8 not a jpeg at all" * 10)
    elif kind == "truncated":
        bad.write_bytes(bad.read_bytes()[:200])
    else:
        Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(bad, quality=75)
    tiny_suite.write_text(tiny_suite.read_text().replace('dataset = "digits"', 'dataset = "cifar10"'))
    args = [
        "--suite",
        str(tiny_suite),
        "--results",
        str(tmp_path / "r"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--data-root",
        str(data),
        "--methods",
        "vanilla",
        "--skip",
        "5",
        "--quiet",
        "--allow-dirty",
    ]
    assert main(["run", *args]) == 2
    assert f"image {bad}" in error_line(capsys)


@pytest.mark.parametrize("line", ["{}", '{"idx": 3}', "[]"])
def test_a_line_that_is_not_a_record_is_one_error_in_run_and_leaderboard(run_args, tmp_path, capsys, line):
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "2"]) == 0
    (path,) = (tmp_path / "results").glob("tiny/vanilla/*/*/*/records.jsonl")
    path.write_text(line + "\n" + path.read_text())
    capsys.readouterr()
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "3"]) == 2
    assert f"{path} line 1 is not a record" in error_line(capsys)
    assert main(["leaderboard", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "lb2")]) == 2
    assert "line 1 is not a record" in error_line(capsys)


def test_a_run_json_missing_keys_is_one_error(run_args, tmp_path, capsys):
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "1"]) == 0
    (path,) = (tmp_path / "results").glob("tiny/vanilla/*/*/*/run.json")
    path.write_text(json.dumps({"status": "complete"}))
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "lb2")]) == 2
    assert f"{path} is not a run.json" in error_line(capsys)


def test_a_full_disk_ends_in_one_line_and_a_partial_run(run_args, tmp_path, capsys, monkeypatch):
    import errno

    from benchmark.run.records import RecordWriter

    real, calls = RecordWriter.append, []

    def append(self, record):
        calls.append(record.idx)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        real(self, record)

    monkeypatch.setattr(RecordWriter, "append", append)
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25"]) == 1
    err = error_line(capsys)
    assert "No space left on device" in err and "rerun the same command to resume" in err
    (run,) = latest_runs(tmp_path / "results", "tiny")
    assert run.info.status == "partial" and len(run.records) == 2


# --- what a user sees --------------------------------------------------------------------------------------------


def test_without_a_terminal_a_run_says_what_it_did(run_args, tmp_path, capsys):
    args = [a for a in run_args if a != "--quiet"]
    assert main(["run", *args, "--methods", "vanilla", "--max-images", "2"]) == 0
    out, err = capsys.readouterr()
    rows = [line for line in err.splitlines() if "images" in line and "left in the run" in line]
    assert len(rows) == 2 and all("complete, 2/2 images" in r and "samples/s" in r for r in rows)
    assert out.strip().splitlines()[-1].startswith(f"done: records under {tmp_path / 'results' / 'tiny'}")


def test_a_row_of_fewer_images_than_the_subset_says_so(run_args, tmp_path):
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "2"]) == 0
    assert "| vanilla (2 of 8 images) |" in (tmp_path / "lb" / "tiny.md").read_text()
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25"]) == 0
    assert "| vanilla |" in (tmp_path / "lb" / "tiny.md").read_text()


def test_a_published_suite_refuses_uncommitted_code_unless_told(run_args, tmp_path, capsys, monkeypatch):
    import benchmark.run.provenance as provenance

    dirty = lambda: {"sha": "abc", "dirty": True}  # noqa: E731
    monkeypatch.setattr(provenance, "git_state", dirty)  # what the check reads and run.json records
    clean = [a for a in run_args if a != "--allow-dirty"]
    assert main(["run", *clean, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "1"]) == 2
    assert "uncommitted code changes" in error_line(capsys) and not (tmp_path / "results").exists()
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "1"]) == 0
    (run,) = latest_runs(tmp_path / "results", "tiny")
    assert run.info.run_settings["allow_dirty"] is True and run.info.git["dirty"] is True


def test_a_run_resumed_on_other_data_is_refused(tiny_suite, tmp_path, capsys):
    data = _jpeg_cifar_tree(tmp_path / "cifar")
    tiny_suite.write_text(tiny_suite.read_text().replace('dataset = "digits"', 'dataset = "cifar10"'))
    args = [
        "run",
        "--suite",
        str(tiny_suite),
        "--results",
        str(tmp_path / "r"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--data-root",
        str(data),
        "--methods",
        "vanilla",
        "--sigma",
        "0.25",
        "--skip",
        "5",
        "--quiet",
        "--allow-dirty",
        "--no-leaderboard",
    ]
    assert main([*args, "--max-images", "2"]) == 0
    (run,) = latest_runs(tmp_path / "r", "tiny")
    assert run.info.data_fingerprint
    other = _jpeg_cifar_tree(tmp_path / "other")  # same layout and names, other pixels (random JPEGs)
    (other / "test" / "cat" / "0.jpg").write_bytes((data / "test" / "dog" / "1.jpg").read_bytes())
    args[args.index(str(data))] = str(other)
    capsys.readouterr()
    assert main([*args, "--max-images", "3"]) == 2
    assert "certified on other data" in error_line(capsys)
