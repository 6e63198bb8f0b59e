"""The paired comparisons a suite names: known answers on hand-made rows, their place in the leaderboard page, and
the one-line error for a malformed ``comparisons`` key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from benchmark.config.suite import parse_pairs
from benchmark.errors import BenchmarkError
from benchmark.report.comparisons import compare_pair, pair_results, pairs_markdown
from benchmark.report.stats import mcnemar_p

RADII = (0.0, 0.5)


def row(method: str, outcomes: list[tuple[int, float]], idx=None) -> dict:
    """A ranked row whose records are (correct, radius) per image."""
    idx = list(range(len(outcomes))) if idx is None else idx
    records = pd.DataFrame({"idx": idx, "correct": [c for c, _ in outcomes], "radius": [r for _, r in outcomes]})
    return {"method": method, "records": records, "ranked": True}


def test_a_pair_is_compared_on_the_images_both_certified():
    a = row("caf", [(1, 0.6), (1, 0.2), (0, 0.9), (1, 0.7), (0, 0.0)])
    # b has one image a lacks (idx 9) and lacks a's idx 4: only 0..3 are paired
    b = row("gaussian", [(1, 0.1), (0, 0.0), (1, 0.3), (1, 0.5), (1, 0.8)], idx=[0, 1, 2, 3, 9])
    found = compare_pair(a, b, RADII)
    assert found["images"] == 4
    # r = 0: a certifies {0, 1, 3}, b {0, 2, 3} -> 3/4 - 3/4 = 0, one discordant image each way
    diff, lo, hi, p = found["radii"][0.0]
    assert diff == 0.0 and lo <= 0.0 <= hi and p == mcnemar_p([1, 1, 0, 1], [1, 0, 1, 1]) == 1.0
    # r = 0.5: a {0, 3}, b {3} -> +1/4
    diff, lo, hi, _ = found["radii"][0.5]
    assert diff == pytest.approx(0.25) and lo <= 0.25 <= hi
    # ACR over the four: a (0.6 + 0.2 + 0.7) / 4, b (0.1 + 0.3 + 0.5) / 4
    assert found["acr"][0] == pytest.approx((1.5 - 0.9) / 4)
    assert compare_pair(a, row("x", [(1, 1.0)], idx=[7]), RADII) is None  # no image in common


def test_only_pairs_with_both_rows_ranked_are_shown_in_the_suites_order():
    rows = [row("gaussian", [(1, 0.5)] * 3), row("caf", [(1, 0.4)] * 3), row("peft_lora", [(0, 0.0)] * 3)]
    pairs = [("caf", "peft_lora"), ("adapt", "gaussian"), ("caf", "gaussian")]
    assert [(f["method"], f["other"]) for f in pair_results(rows, RADII, pairs)] == pairs[::2]
    lines = pairs_markdown(rows, RADII, pairs, {"caf": "caf [fp32]"}.get)
    table = [x for x in lines if x.startswith("| caf")]
    assert table[0].startswith("| caf [fp32] - peft_lora | 3 |") and table[1].startswith("| caf [fp32] - gaussian |")
    assert "+100.0 [+100.0, +100.0] p=0.25" in table[0]  # 3 of 3 against 0 of 3: McNemar 2 * (1/2)^3
    assert pairs_markdown(rows, RADII, [("adapt", "gaussian")]) == []


def test_the_leaderboard_page_carries_the_pairs_of_its_sigma():
    from benchmark.report.leaderboard import markdown

    base = {
        "base": "small_cnn",
        "sigma": 0.25,
        "precision": "fp32",
        "status": "complete",
        "n_images": 3,
        "subset_size": 3,
        "stage_sigmas": None,
        "dataset": "Digits",
        "dataset_name": "digits",
        "updated": "1",
        "r_max": 0.5,
        "n": 100,
        "alpha": 0.001,
        "vs_best": "best",
        "abstain_rate": 0.0,
        "trainable_pct": 1.0,
        "stored_bytes": 1,
        "fit_time_s": 1.0,
        "certify_s_per_image": 1.0,
        "queries": None,
        "notes": None,
        "acr": 0.5,
        "acr_lo": 0.4,
        "acr_hi": 0.6,
        "unranked": "",
    }
    rows = [{**base, **row("gaussian", [(1, 0.5)] * 3)}, {**base, **row("caf", [(1, 0.4)] * 3)}]
    for r in rows:
        r.update({f"acc@{x:g}": 1.0 for x in RADII})
    page = markdown("tiny", rows, RADII, [], Path("."), "cmd", [("caf", "gaussian")])
    # radius 0.4 is certified at 0 but not at 0.5, where gaussian (0.5) is
    line = "| caf - gaussian | 3 | +0.0 [+0.0, +0.0] p=1 | -100.0 [-100.0, -100.0] p=0.25 | -0.100 [-0.100, -0.100] |"
    assert line in page
    assert "Paired comparisons" not in markdown("tiny", rows, RADII, [], Path("."), "cmd")


@pytest.mark.parametrize(
    ("value", "mended"),
    [
        ([["caf"]], [["caf", "gaussian"]]),  # one method: no pair
        ([["caf", "caf"]], [["caf", "gaussian"]]),  # a method against itself
        ("caf,gaussian", [["caf", "gaussian"]]),  # a string, not a list of pairs
        ([["caf", 3]], [["caf", "3"]]),  # a name that is not a string
        ([[]], []),  # an empty pair (no pairs at all is well formed)
        ([["caf", "gaussian"], ["caf", ""]], [["caf", "gaussian"]]),  # one bad pair among good ones
    ],
)
def test_a_malformed_comparisons_key_is_one_error(value, mended):
    """Each malformed value is refused with one error that names the suite, the key and the value itself, while
    the same value with just its fault mended parses to its pairs: it is the fault that is refused."""
    import re

    with pytest.raises(BenchmarkError, match=re.escape("suite 's': attack_comparisons must be a list of")) as err:
        parse_pairs(value, "s", "attack_comparisons")
    assert str(err.value).endswith(f"got {value!r}")
    assert parse_pairs(mended, "s") == [tuple(pair) for pair in mended]


def test_a_repeated_pair_is_kept_once_in_the_suites_order():
    assert parse_pairs([["b", "a"], ["a", "b"], ["b", "a"]], "s") == [("b", "a"), ("a", "b")]
    assert parse_pairs([], "s") == []


@pytest.mark.parametrize("key", ["comparisons", "attack_comparisons"])
def test_a_suite_with_malformed_comparisons_does_not_run(tmp_path, key):
    from benchmark.config.run_config import build_run_config

    path = tmp_path / "bad.toml"
    path.write_text(
        textwrap.dedent(f"""\
        name = "bad"
        dataset = "digits"
        sigmas = [0.25]
        {key} = [["caf"]]
    """)
    )
    with pytest.raises(BenchmarkError, match=f"'bad': {key} must be"):
        build_run_config(str(path), {})
    path.write_text(path.read_text().replace('[["caf"]]', '[["caf", "gaussian"]]'))
    assert build_run_config(str(path), {}).suite == "bad"  # a well-formed pair is a known key, not an error


def test_a_pair_says_what_else_differs_between_its_rows():
    from benchmark.report.comparisons import unlike

    single = {**row("diffusion", [(1, 0.5)]), "precision": "fp32", "fit_hash": "aaa", "composed_fits": None}
    cascade = {**row("multiscale", [(1, 0.9)]), "precision": "bf16", "fit_hash": None, "composed_fits": "bbb,ccc"}
    assert unlike(cascade, single) == ["precision bf16 vs fp32", "A composes fit bbb,ccc, not B's aaa"]
    assert unlike(single, cascade) == ["precision fp32 vs bf16", "B composes fit bbb,ccc, not A's aaa"]
    # the cascade over the very fit of the row it is read against, in the same precision: alike
    assert unlike({**cascade, "precision": "fp32", "composed_fits": "aaa,ccc"}, single) == []
    # two cascades over different fits differ by their method (a calibrated denoiser): nothing else to say
    assert unlike(cascade, {**cascade, "fit_hash": "ddd", "composed_fits": "bbb"}) == []
    # nor a cascade over its own fit (a calibrated denoiser: no composed fits, yet not a single-sigma row)
    calibrated = {**cascade, "fit_hash": "eee", "composed_fits": None, "stage_sigmas": "0.25/0.5/1"}
    assert unlike(calibrated, {**cascade, "stage_sigmas": "0.25/0.5/1"}) == []
    lines = pairs_markdown([cascade, single], RADII, [("multiscale", "diffusion")])
    assert lines[-2].endswith("| precision bf16 vs fp32; A composes fit bbb,ccc, not B's aaa |")
