"""The published numbers (benchmark/report/reported.toml): they load, name registered methods, keep their schema, and
hold what ../shared/REFERENCES.md states (spot checks across its sections)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from benchmark.config.registry import METHODS
from benchmark.report.reported import (
    DATASETS,
    LABELS,
    ReportedNumbersError,
    _entry,
    reported_methods,
    reported_numbers,
)

ROOT = Path(__file__).resolve().parents[1]


def _all() -> list[tuple[str, dict]]:
    return [(m, e) for m in reported_methods() for e in reported_numbers(m)]


def test_the_file_loads_and_names_only_registered_methods():
    methods = reported_methods()
    assert {"gaussian", "dncnn_stab", "dncnn_surrogate", "diffusion"} <= set(methods)
    unregistered = [m for m in methods if m not in METHODS.names()]
    assert not unregistered, f"not in benchmark.config.registry.METHODS: {unregistered}"


def test_every_entry_is_well_formed():
    entries = _all()
    assert len(entries) >= 20
    for method, e in entries:
        where = f"{method}: {e['source']} ({e['dataset']}, sigma {e['sigma']})"
        assert e["label"] in LABELS and e["dataset"] in DATASETS, where
        assert e["source"] and e["setting"] and e["references_section"], where
        assert e["certified_accuracy"], where
        for radius, pct in e["certified_accuracy"].items():
            assert radius == f"{float(radius):g}" and float(radius) >= 0, where
            assert isinstance(pct, float) and 0 <= pct <= 100, where
        assert e["sigma"] is None or e["sigma"] > 0, where
        assert e["acr"] is None or e["acr"] >= 0, where
        assert isinstance(e["note"], str), where


def _one(method: str, dataset: str, source: str, sigma: float | None) -> dict:
    found = [e for e in reported_numbers(method, dataset) if source in e["source"] and e["sigma"] == sigma]
    assert len(found) == 1, (method, dataset, source, sigma, found)
    return found[0]


def test_spot_checks_against_references():
    # Section 1(b): Cohen et al., CIFAR-10 ResNet-110, sigma 0.25, 500 images [data]
    cohen = _one("gaussian", "cifar10", "locuslab/smoothing", 0.25)
    assert cohen["label"] == "data" and cohen["acr"] == pytest.approx(0.429)
    assert cohen["certified_accuracy"] == {"0": 74.8, "0.25": 60.0, "0.5": 42.8, "0.75": 26.6, "1": 0.0} | {
        r: 0.0 for r in ("1.5", "2", "2.5", "3")
    }
    # Section 1(b): ImageNet sigma 1.0 at r = 3 [data]
    assert _one("gaussian", "imagenet", "locuslab/smoothing", 1.0)["certified_accuracy"]["3"] == 12.2
    # Section 2(b): denoised smoothing, CIFAR-10 white-box and ImageNet R-50 black-box envelopes [repo-doc]
    white = _one("dncnn_stab", "cifar10", "'ours white-box'", None)
    assert white["label"] == "repo-doc" and white["certified_accuracy"]["0.25"] == 56
    black = _one("dncnn_surrogate", "imagenet", "'ours black-box'", None)
    assert list(black["certified_accuracy"].values()) == [48, 31, 19, 12, 7, 4]
    # Section 3(b): DDS best over sigma on ImageNet [2nd]
    dds = _one("diffusion", "imagenet", "DMAE Table 1", None)
    assert dds["label"] == "2nd" and dds["certified_accuracy"] == {
        "0.5": 71.1,
        "1": 54.3,
        "1.5": 38.1,
        "2": 29.5,
        "3": 13.1,
    }
    # Section 4(b): the cascade at r = 0.5 on CIFAR-10 [2nd]
    assert reported_numbers("multiscale", "cifar10")[0]["certified_accuracy"] == {"0.5": 40.5}


def test_unknown_methods_and_datasets_give_nothing():
    assert reported_numbers("no_such_method") == []
    assert reported_numbers("gaussian", "digits") == []
    assert reported_numbers("caf") == []  # registered, but nothing published that REFERENCES could verify


def test_the_dataset_filter_and_copies():
    both = reported_numbers("gaussian")
    cifar, imagenet = reported_numbers("gaussian", "cifar10"), reported_numbers("gaussian", "imagenet")
    assert cifar and imagenet and len(cifar) + len(imagenet) == len(both)
    cifar[0]["certified_accuracy"]["0"] = -1.0
    assert reported_numbers("gaussian", "cifar10")[0]["certified_accuracy"]["0"] != -1.0


GOOD = {
    "source": "s",
    "label": "data",
    "references_section": "1(b)",
    "dataset": "cifar10",
    "setting": "x",
    "certified_accuracy": {"0": 50.0},
}


@pytest.mark.parametrize(
    "change",
    [
        {"source": ""},
        {"label": "U"},
        {"dataset": "mnist"},
        {"certified_accuracy": {"0": 101.0}},
        {"certified_accuracy": {"0": -1}},
        {"certified_accuracy": {"1.0": 50.0}},
        {"certified_accuracy": {"r1": 50.0}},
        {"certified_accuracy": {}},
        {"sigma": 0},
        {"acr": "0.4"},
        {"typo_field": 1},
    ],
    ids=str,
)
def test_a_malformed_entry_is_refused(change):
    assert _entry("here", GOOD)["certified_accuracy"] == {"0": 50.0}
    with pytest.raises(ReportedNumbersError, match="here"):
        _entry("here", {**GOOD, **change})
    with pytest.raises(ReportedNumbersError, match="missing"):
        _entry("here", {k: v for k, v in GOOD.items() if k != "setting"})


def test_the_file_ships_as_package_data():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["benchmark"]
    shipped = {p for pattern in data for p in (ROOT / "benchmark").glob(pattern)}
    assert ROOT / "benchmark" / "report" / "reported.toml" in shipped
