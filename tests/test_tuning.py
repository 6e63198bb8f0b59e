"""Recipe search on the validation split: disjoint from what candidates fit on, never the test images."""

from __future__ import annotations

import json

import pytest
import torch

from benchmark.cli.parser import main
from benchmark.data.datasets import Digits
from benchmark.data.splits import labels_of, load_split, stratified_sample
from benchmark.errors import BenchmarkError

SEARCH = """
[tuning.gaussian]
candidates = [{ train = { lr = 1e-3 } }, { train = { lr = 3e-2, epochs = 2 } }]
"""


def test_val_is_a_fixed_stratified_part_of_train_and_tune_train_the_rest(tmp_path):
    spec = Digits()
    train, val, rest = (load_split(spec, s, None, tmp_path) for s in ("train", "val", "tune_train"))
    assert (train.split, val.split, rest.split) == ("train", "val", "tune_train")
    assert len(val) == spec.val_size and len(val) + len(rest) == len(train)
    held = stratified_sample(labels_of(train), spec.val_size)
    assert held == stratified_sample(labels_of(train), spec.val_size)  # fixed
    assert torch.equal(val.tensors[0], train.tensors[0][held])
    shares = torch.bincount(labels_of(val), minlength=10).float() / len(val)
    expected = torch.bincount(labels_of(train), minlength=10).float() / len(train)
    assert torch.allclose(shares, expected, atol=0.01)  # class-stratified


@pytest.mark.parametrize("split", ["test", "val"])
def test_fitting_on_the_test_or_validation_split_is_refused(tmp_path, split):
    from benchmark.config.registry import METHODS
    from benchmark.method import fit_method
    from tests.test_contract import context, tiny_base

    cls = METHODS.get("gaussian")
    method = cls(cls.Config.tiny(), tiny_base("cnn"), context(tmp_path))
    with pytest.raises(BenchmarkError, match=f"fitting on the {split} split is refused"):
        fit_method(method, 0.25, load_split(Digits(), split, None, tmp_path), device=torch.device("cpu"))


def test_tune_fits_candidates_on_train_without_val_and_records_the_search(tiny_suite, tmp_path, capsys):
    tiny_suite.write_text(tiny_suite.read_text() + SEARCH)
    args = [
        "tune",
        "--suite",
        str(tiny_suite),
        "--methods",
        "gaussian",
        "--sigma",
        "0.25",
        "--val-images",
        "30",
        "--samples",
        "20",
        "--results",
        str(tmp_path / "results"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--allow-dirty",
    ]
    assert main(args) == 0
    (path,) = (tmp_path / "results" / "tiny" / "tuning" / "gaussian" / "small_cnn" / "sigma_0.25").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "complete" and len(record["results"]) == 2 and record["fit_split"] == "tune_train"
    assert record["val"]["scored"] == 30 and record["val"]["split_size"] == Digits.val_size
    acrs = [r["scores"]["acr"] for r in record["results"]]
    assert record["chosen"] == max(range(2), key=lambda i: (acrs[i], -i))
    assert record["chosen_settings"] == record["results"][record["chosen"]]["settings"]
    fits = sorted((tmp_path / "cache" / "fits" / "gaussian").glob("*/fit.json"))
    assert len(fits) == 2 and all(json.loads(f.read_text())["fit_key"]["train_split"] == "tune_train" for f in fits)
    assert "chosen candidate" in capsys.readouterr().out
    assert main(args) == 0  # a second search loads the fits instead of refitting them
    assert sorted((tmp_path / "cache" / "fits" / "gaussian").glob("*/fit.json")) == fits
    assert not (tmp_path / "results" / "tiny" / "gaussian").exists()  # no test image was certified


def test_tune_without_a_search_says_what_to_add(tiny_suite, tmp_path, capsys):
    assert (
        main(
            [
                "tune",
                "--suite",
                str(tiny_suite),
                "--methods",
                "gaussian",
                "--allow-dirty",
                "--results",
                str(tmp_path / "r"),
                "--cache-dir",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
    assert "add [tuning.gaussian]" in capsys.readouterr().err


ADAPT_SEARCH = """
[tuning.adapt]
candidates = [{ train = { lr = 1e-4 } }, { train = { lr = 0.5 } }]
"""


def test_tune_at_sigma_0_scores_robust_accuracy(tiny_suite, tmp_path):
    """A method trained without noise (adapt's attack rows) is chosen by robust accuracy under ADAPT's PGD-10."""
    from benchmark.evaluate.tuning import objective

    tiny_suite.write_text(tiny_suite.read_text() + ADAPT_SEARCH)
    args = [
        "tune",
        "--suite",
        str(tiny_suite),
        "--methods",
        "adapt",
        "--sigma",
        "0",
        "--val-images",
        "20",
        "--results",
        str(tmp_path / "results"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--allow-dirty",
    ]
    assert main(args) == 0
    (path,) = (tmp_path / "results" / "tiny" / "tuning" / "adapt" / "small_cnn" / "sigma_0").glob("*.json")
    record = json.loads(path.read_text())
    scores = [r["scores"] for r in record["results"]]
    assert record["status"] == "complete" and all(set(s) == {"robust", "clean"} for s in scores)
    assert all(0.0 <= s["robust"] <= s["clean"] <= 1.0 for s in scores)
    assert record["chosen"] == max(range(2), key=lambda i: (*objective(scores[i]), -i))
    assert objective({"acr": 0.3, "acc@0": 0.5}) == (0.3,)
    assert main([*args[:6], "-1", *args[7:]]) == 2  # a negative sigma is refused in one line
