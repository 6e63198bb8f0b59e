"""Bad input: one line naming the problem and the fix, exit 2, no traceback, no results file touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli.parser import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--methods", "gausian"], "did you mean gaussian"),
        (["--methods", "nope"], "unknown method"),
        (["--sigma", "0"], "sigma must be > 0"),
        (["--sigma", "-0.5"], "sigma must be > 0"),
        (["--n0", "0"], "n0 must be"),
        (["--n", "0"], "n must be"),
        (["--alpha", "1.5"], "alpha must lie"),
        (["--alpha", "0"], "alpha must lie"),
        (["--sigma", "abc"], "expected numbers"),
        (["--bases", "resnet2"], "did you mean resnet20"),
        (["--shard", "2/2"], "0 <= K < N"),
        (["--shard", "half"], "expected K/N"),
        (["--shard", "0/2", "--fresh"], "run --fresh once first"),
        (["--sigam", "0.5"], "unrecognized arguments: --sigam 0.5 (see 'python -m benchmark --help')"),
        (["--max-images", "x"], "(see 'python -m benchmark run --help')"),
    ],
)
def test_bad_run_arguments(run_args, tmp_path, capsys, extra, needle):
    assert main(["run", *run_args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_unknown_suite(capsys):
    assert main(["run", "--suite", "quik"]) == 2
    assert "did you mean quick" in capsys.readouterr().err


def test_missing_data_root(run_args, tmp_path, capsys):
    code = main(["run", *run_args[2:], "--suite", "cifar10-cpu", "--data-root", str(tmp_path / "nowhere")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--data-root" in err and "\n" not in err.strip()
    assert not (tmp_path / "results").exists()


def test_results_not_writable(run_args, tmp_path, capsys):
    if os.geteuid() == 0:
        locked = Path("/proc/version")  # a file: nothing can be created below it, even as root
    else:
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
    args = list(run_args)
    args[args.index("--results") + 1] = str(locked / "results")
    assert main(["run", *args]) == 2
    assert "not writable" in capsys.readouterr().err


def test_hash_mismatched_checkpoint(tmp_path, run_args, capsys):
    """A corrupt copy of the ResNet-20 weights is refused by its SHA-256 before anything is written."""
    bad = tmp_path / "weights"
    bad.mkdir()
    (bad / "resnet20-12fca82f.th").write_bytes(b"not a checkpoint")
    suite = tmp_path / "c.toml"
    suite.write_text(
        'name = "c"\ndataset = "cifar10"\nsigmas = [0.25]\nbases = ["resnet20"]\nmethods = ["vanilla"]\n'
        f'[base_settings.resnet20]\nweights_dir = "{bad}"\n'
    )
    data = tmp_path / "cifar"
    for split in ("train", "test"):
        (data / split / "a").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (32, 32)).save(data / "test" / "a" / "0.png")
    Image.new("RGB", (32, 32)).save(data / "train" / "a" / "0.png")
    args = list(run_args)
    args[args.index("--suite") + 1] = str(suite)
    assert main(["run", *args, "--data-root", str(data)]) == 2
    err = capsys.readouterr().err
    assert "SHA-256" in err and "delete it" in err
    assert not (tmp_path / "results").exists()


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    """The real entry point: exit status 2 and a single stderr line."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark", "run", "--methods", "vanila", "--results", str(tmp_path / "r")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "did you mean vanilla" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "gaussian" in out and "digits" in out and "quick" in out
