"""Model cards: one per ranked row, generated from the results, measured numbers and published ones kept apart."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.config.suite import snapshot, snapshots
from benchmark.report.cards import build_cards, card_name, write_cards
from benchmark.report.table import leaderboard_rows

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> tuple[Path, Path]:
    from tests.conftest import TINY_SUITE

    tmp = tmp_path_factory.mktemp("cards")
    suite = tmp / "tiny.toml"
    suite.write_text(TINY_SUITE.format())
    common = ["--results", str(tmp / "results"), "--cache-dir", str(tmp / "cache")]
    argv = [
        "run",
        "--suite",
        str(suite),
        "--methods",
        "vanilla,gaussian",
        "--quiet",
        "--allow-dirty",
        "--no-leaderboard",
    ]
    subprocess.run([sys.executable, "-m", "benchmark", *argv, *common], check=True, cwd=ROOT, capture_output=True)
    subprocess.run([sys.executable, "-m", "benchmark", "publish-fits", *common], check=True, cwd=ROOT)
    return tmp / "results", tmp


def test_one_card_per_ranked_row_with_what_the_row_measured(tiny_results):
    results, _ = tiny_results
    snap = snapshot("tiny")
    rows, radii = leaderboard_rows(results, snap)
    cards = build_cards(results, snap, "cmd")
    ranked = [r for r in rows if r["ranked"]]
    assert [(c["method"], c["sigma"]) for c in cards] == [(r["method"], r["sigma"]) for r in ranked]
    for c, row in zip(cards, ranked, strict=True):
        assert [a["radius"] for a in c["certified_accuracy"]] == radii
        assert all(a["lo"] <= a["value"] <= a["hi"] <= 100 for a in c["certified_accuracy"])
        assert [a["value"] for a in c["certified_accuracy"]] == [round(100 * row[f"acc@{r:g}"], 4) for r in radii]
        assert c["acr"]["lo"] <= c["acr"]["value"] <= c["acr"]["hi"] and c["acr"]["value"] == row["acr"]
        assert (c["n0"], c["n"], c["alpha"], c["certificate"], c["precision"]) == (20, 100, 0.001, "fixed", "fp32")
        assert c["reproduce"].startswith(f"python -m benchmark run --suite tiny --methods {c['method']} ")
    gaussian = next(c for c in cards if c["method"] == "gaussian")
    (state,) = gaussian["fit"]["states"]
    published = results / "checkpoints/gaussian" / state["hash"] / "state.safetensors"
    assert hashlib.sha256(published.read_bytes()).hexdigest() == state["state_sha256"]
    assert state["bytes"] == published.stat().st_size and gaussian["paper"].startswith("Cohen")
    assert next(c for c in cards if c["method"] == "vanilla")["fit"]["states"] == []  # nothing trained


def test_published_numbers_stay_apart_and_labelled(tiny_results):
    results, _ = tiny_results
    gaussian = next(c for c in build_cards(results, snapshot("tiny"), "cmd") if c["method"] == "gaussian")
    # the tiny suite's dataset (digits) has no published numbers; a CIFAR-10 row gets Cohen's, labelled
    assert gaussian["reported_elsewhere"] == []
    committed = ROOT / "leaderboards/cards/cifar10-cpu/gaussian--resnet20--sigma_0.25.json"
    card = json.loads(committed.read_text())
    assert card["reported_elsewhere"] and all(e["source"] and e["label"] for e in card["reported_elsewhere"])
    measured = {round(a["value"] * 100, 1) for a in card["certified_accuracy"]}
    assert any(set(e["certified_accuracy"].values()) - measured for e in card["reported_elsewhere"])


def test_cards_are_rewritten_whole_and_deterministically(tiny_results):
    results, tmp = tiny_results
    out = tmp / "out"
    stale = out / "cards/tiny/old--row--sigma_9.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    folder = write_cards(results, out, snapshot("tiny"), "cmd")
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert not stale.exists() and len(first) == 4
    write_cards(results, out, snapshot("tiny"), "cmd")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first


def test_every_committed_ranked_row_has_its_card():
    snap = snapshots(["cifar10-cpu"])["cifar10-cpu"]
    rows, _ = leaderboard_rows(ROOT / "results", snap)
    names = {card_name({"method": r["method"], "base": r["base"], "sigma": r["sigma"]}) for r in rows if r["ranked"]}
    assert names == {p.name for p in (ROOT / "leaderboards/cards/cifar10-cpu").glob("*.json")}


def test_each_committed_cards_command_plans_its_rows_configuration():
    """The ``reproduce`` command, parsed as ``run`` parses it, resolves to the card's config hash."""
    from benchmark.cli.commands import overrides
    from benchmark.cli.parser import build_parser
    from benchmark.config.run_config import build_run_config
    from benchmark.run.plan import cell

    for path in sorted((ROOT / "leaderboards/cards/cifar10-cpu").glob("*.json")):
        card = json.loads(path.read_text())
        args = build_parser().parse_args(card["reproduce"].split()[3:])
        cfg = build_run_config(args.suite, overrides(args))
        (sigma,) = cfg.sigmas
        assert cell(cfg, card["method"], card["base"], sigma, cfg.precision).chash == card["config_hash"], path.name
