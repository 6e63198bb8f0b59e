"""The design comparison of ``python -m benchmark simulate``: known answers on synthetic vote rates, the rule that
chooses, and the command from a run's records to the page (regenerated identically from what it stored)."""

from __future__ import annotations

import json

import pytest
from scipy.stats import norm

from benchmark.certificates.sequential import ADAPTIVE, SEQUENTIAL, Design
from benchmark.cli.parser import main
from benchmark.errors import BenchmarkError
from benchmark.evaluate.simulate import Cell, choose, compare

RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


def cell(rates, sigma=0.25) -> Cell:
    return Cell("m", "b", sigma, tuple(rates), tuple(True for _ in rates))


def test_rates_far_from_every_level_are_decided_alike_and_cheaply():
    """p_A midway between grid levels: every design certifies what fixed n does (gap 0) with far fewer samples."""
    mid = [float(norm.cdf(r / 0.25)) for r in (0.125, 0.375, 0.625)]
    rows = compare([cell(mid)], {"sequential": SEQUENTIAL, "adaptive": ADAPTIVE}, [20_000], 100, 0.001, RADII, 2)
    assert all(r["gap"] == 0.0 and r["fewer"] > 5 for r in rows), rows
    assert rows[0]["table"] == pytest.approx([100.0, 200 / 3, 100 / 3, 0.0, 0.0])


def test_near_threshold_rates_cost_a_timid_futility_rule_most():
    near = [float(norm.cdf(0.5 / 0.25)) - d for d in (0.001, 0.002, 0.003)]
    timid, bold = Design(futility_beta=0.01), Design(futility_beta=0.5)
    rows = {
        r["design"]: r for r in compare([cell(near)], {"timid": timid, "bold": bold}, [50_000], 100, 0.001, RADII, 2)
    }
    assert rows["bold"]["mean"] < 0.5 * rows["timid"]["mean"], rows
    assert rows["timid"]["top10_share"] <= 1.0 and rows["timid"]["median"] > 1000


def test_the_rule_takes_the_cheapest_design_within_the_gap():
    def row(design, method, mean, gap, n_max=100):
        return {"design": design, "method": method, "n_max": n_max, "mean": mean, "gap": gap}

    rows = [
        row("a", "g", 50, 0.5),
        row("a", "p", 50, 0.5),
        row("a", "g", 10, 0.0, n_max=10),
        row("b", "g", 30, 1.5),
        row("b", "p", 30, 2.5),  # cheaper, but too far from fixed n on p
        row("c", "g", 40, 1.0),
        row("c", "p", 45, 1.9),
        row("c", "x", 1, 9.0),  # x: not chosen on
    ]
    assert choose(rows, ["g", "p"], 2.0) == "c"
    assert choose(rows, ["g", "p"], 3.0) == "b"
    with pytest.raises(BenchmarkError, match="no design stays within 0.1 points"):
        choose(rows, ["g", "p"], 0.1)


def test_simulate_writes_the_comparison_and_regenerates_the_page_from_it(run_args, tmp_path, capsys):
    assert main(["run", *run_args, "--methods", "vanilla,gaussian", "--sigma", "0.25"]) == 0
    args = ["simulate", "--suite", run_args[1], "--results", str(tmp_path / "results"), "--out", str(tmp_path / "p")]
    rule = ["--choose-on", "gaussian", "--n-max", "200,400", "--reps", "1", "--max-gap", "100", "--rates", "test"]
    assert main([*args, *rule]) == 0
    stored = json.loads((tmp_path / "results" / "tiny" / "simulate" / "designs.json").read_text())
    assert stored["choice"] in stored["designs"] and stored["git"] and stored["packages"]
    assert {r["method"] for r in stored["rows"] if r.get("held_out")} == {"vanilla"}
    page = (tmp_path / "p" / "certificates.md").read_text()
    assert f"Choice: **{stored['choice']}**" in page and "| vanilla | 0.25 | sequential |" in page
    assert main([*args, "--report-only"]) == 0
    again = (tmp_path / "p" / "certificates.md").read_text()
    assert again.split("\n", 3)[3] == page.split("\n", 3)[3]  # all but the command that generated it
    assert main(["simulate", "--suite", run_args[1], "--results", str(tmp_path / "none"), "--report-only"]) == 2
    assert "no simulation stored" in capsys.readouterr().err


def test_the_design_is_chosen_on_validation_votes_that_resume_and_the_test_rates_check_it(run_args, tmp_path):
    assert main(["run", *run_args, "--methods", "vanilla,gaussian", "--sigma", "0.25"]) == 0
    results, cache = str(tmp_path / "results"), str(tmp_path / "cache")
    args = ["simulate", "--suite", run_args[1], "--results", results, "--cache-dir", cache, "--allow-dirty"]
    rule = ["--choose-on", "gaussian", "--n-max", "200", "--reps", "1", "--max-gap", "100", "--sigma", "0.25"]
    assert main([*args, *rule, "--val-images", "20", "--out", str(tmp_path / "p")]) == 0
    votes_path = tmp_path / "results/tiny/simulate/val_votes/gaussian/small_cnn/sigma_0.25.json"
    votes = json.loads(votes_path.read_text())
    assert len(votes["n_top"]) == 20 and all(0 <= k <= 100 for k in votes["n_top"])
    # validation images only: none of them is a certified test image's index in the validation split's numbering
    assert len(set(votes["key"]["images"])) == 20 and votes["key"]["n"] == 100
    stored = json.loads((tmp_path / "results/tiny/simulate/designs.json").read_text())
    assert stored["rates"] == "val" and stored["val_images"] == 20
    # every method's test rates are the held-out check, the method chosen on included
    assert {r["method"] for r in stored["rows"] if r.get("held_out")} == {"vanilla", "gaussian"}
    assert "validation images" in (tmp_path / "p/certificates.md").read_text()
    # cut short after 10 images: the count resumes and gives the very same counts
    votes_path.write_text(json.dumps({**votes, **{k: votes[k][:10] for k in ("n_top", "prediction", "label")}}))
    assert main([*args, *rule, "--val-images", "20", "--out", str(tmp_path / "p")]) == 0
    assert json.loads(votes_path.read_text()) == votes
    # another key (more images) counts afresh
    assert main([*args, *rule, "--val-images", "30", "--out", str(tmp_path / "p")]) == 0
    assert len(json.loads(votes_path.read_text())["n_top"]) == 30
