"""``attack`` and ``audit`` on the results pipeline of ``run`` (:mod:`benchmark.run.jsonl`): a killed process
resumes to what an uncut one writes, identical processes started together do each image once, and a damaged
records file is refused with one line naming it, by the command and by ``leaderboard`` alike."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.cli.parser import main
from tests.test_faults import error_line
from tests.test_run import ROOT

AUDIT = ["--methods", "gaussian", "--sigma", "0.25", "--steps", "2", "--samples", "2", "--predict-n", "100"]
ATTACK = ["--methods", "vanilla", "--max-images", "6", "--steps", "1", "--batch-images", "2"]


def _common(run_args: list[str]) -> list[str]:
    return [a for a in run_args if a != "--quiet"]  # attack and audit take no --quiet


def _certify(run_args: list[str]) -> None:
    """The ranked gaussian run an audit needs."""
    assert main(["run", *run_args, "--methods", "gaussian", "--sigma", "0.25", "--no-leaderboard"]) == 0


def _command(kind: str, run_args: list[str], *extra: str) -> list[str]:
    return [kind, *_common(run_args), *(AUDIT if kind == "audit" else ATTACK), *extra]


def _records(results: Path, kind: str) -> Path:
    (path,) = (results / "tiny" / kind).glob("*/*/sigma_*/*/records.jsonl")
    return path


def _rows(path: Path) -> list[dict]:
    """Every line's row without its timing (the only field a rerun may change)."""
    return [{k: v for k, v in json.loads(line).items() if k != "time_s"} for line in path.read_text().splitlines()]


def _prepare(kind: str, run_args: list[str]) -> None:
    if kind == "audit":
        _certify(run_args)


# --- a killed process resumes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["attack", "audit"])
def test_a_torn_last_line_resumes_to_the_uncut_records(kind, run_args, tmp_path):
    """Killed mid-write: whole lines and half of the next. The rerun cuts the torn bytes and redoes that image,
    instead of gluing its record onto them (which lost it)."""
    _prepare(kind, run_args)
    assert main(_command(kind, run_args)) == 0
    path = _records(tmp_path / "results", kind)
    whole = path.read_text()
    lines = whole.splitlines(keepends=True)
    assert len(lines) >= 3
    path.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    assert main(_command(kind, run_args)) == 0
    assert _rows(path) == [{k: v for k, v in json.loads(line).items() if k != "time_s"} for line in lines]


def test_an_attack_killed_by_sigkill_resumes_to_the_uncut_records(run_args, tmp_path):
    """A real SIGKILL of a running attack, then a torn half line on top; the rerun gives what an uncut attack in
    another results directory (the same fit, from the shared cache) gives."""
    slow = ["--sigma", "0.25", "--eot", "8", "--votes", "50", "--max-images", "8", "--batch-images", "1"]
    reference = [a if a != str(tmp_path / "results") else str(tmp_path / "uncut") for a in run_args]
    assert main(_command("attack", reference, *slow)) == 0
    expected = _rows(_records(tmp_path / "uncut", "attack"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmark", *_command("attack", run_args, *slow)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    path = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((tmp_path / "results" / "tiny" / "attack").glob("*/*/sigma_*/*/records.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 2:
            path = found[0]
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert path is not None and proc.returncode == -signal.SIGKILL, "the attack ended before it could be killed"
    with open(path, "a") as fh:
        fh.write('{"idx": 99, "label": 1, "cle')
    assert main(_command("attack", run_args, *slow)) == 0
    assert sorted(_rows(path), key=lambda r: r["idx"]) == sorted(expected, key=lambda r: r["idx"])


# --- identical processes at once -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["attack", "audit"])
def test_two_identical_processes_at_once_do_each_image_once(kind, run_args, tmp_path):
    _prepare(kind, run_args)
    slow = {
        "attack": [
            "--sigma",
            "0.25",
            "--eot",
            "16",
            "--votes",
            "200",
            "--max-images",
            "16",
            "--batch-images",
            "1",
            "--steps",
            "4",
        ],
        "audit": ["--steps", "20", "--samples", "32", "--predict-n", "4000"],
    }[kind]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "benchmark", *_command(kind, run_args, *slow)]
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in "ab"
    ]
    errors = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    path = _records(tmp_path / "results", kind)
    done = [row["idx"] for row in _rows(path)]
    meta = json.loads((path.parent / f"{kind}.json").read_text())
    images = meta["images"] if kind == "attack" else len(meta["images"])
    assert len(done) == len(set(done)) == images  # one line per image, not two
    assert meta["argv"][2:4] == ["benchmark", kind] and meta["git"] and meta["packages"]["torch"]


# --- damaged files -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["attack", "audit"])
@pytest.mark.parametrize(
    "line, says", [("not json", "is corrupt"), ("42", "is not a record"), ('{"foo": 1}', "is not a record")]
)
def test_a_damaged_line_is_one_error_in_the_command_and_the_leaderboard(kind, line, says, run_args, tmp_path, capsys):
    _certify(run_args)  # the leaderboard needs a run beside the attack
    assert main(_command(kind, run_args)) == 0
    path = _records(tmp_path / "results", kind)
    first, *rest = path.read_text().splitlines(keepends=True)
    path.write_text(first + line + "\n" + "".join(rest))  # a middle line: never mistaken for a torn tail
    capsys.readouterr()
    assert main(_command(kind, run_args)) == 2
    assert f"{path} line 2 {says}" in error_line(capsys)
    assert main(["leaderboard", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "lb2")]) == 2
    assert f"{path} line 2 {says}" in error_line(capsys)


def test_evaluation_folders_are_built_by_run_dir():
    """The committed attack and audit folders are exactly where run_dir puts them: results read unchanged."""
    from benchmark.run.records import run_dir

    results = ROOT / "results"
    metas = [*results.glob("*/attack/*/*/sigma_*/*/attack.json"), *results.glob("*/audit/*/*/sigma_*/*/audit.json")]
    assert metas
    for path in metas:
        meta = json.loads(path.read_text())
        kind = path.stem
        assert (
            run_dir(
                results, meta["suite"], meta["method"], meta["base"], meta["sigma"], path.parent.name, evaluation=kind
            )
            == path.parent
        )
