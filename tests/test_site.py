"""The static site (``python -m benchmark site``) built from the committed results: every page is written, the same
results give byte-identical files, every link resolves inside the site, the leaderboard tables are sortable and
carry the markdown leaderboard's own cells, and numbers reported elsewhere stay apart from measured ones."""

from __future__ import annotations

import filecmp
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from benchmark.cli.parser import main
from benchmark.config.suite import snapshots
from benchmark.report.table import leaderboard_rows
from benchmark.site.build import build_site
from benchmark.site.markdown import inline, to_html
from benchmark.site.suite import committed_cards
from tests.test_report_pure import forbidden, imported

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
SUITE = "cifar10-cpu"
SOURCE = "Fixture et al. 2099 (not a real paper)"


def fixture_card(snapshot, command: str) -> dict:
    """A card in the schema of ``benchmark.report.cards`` for the ranked gaussian row, with one number reported
    elsewhere whose source names it as a fixture."""
    return {
        "card_version": 1,
        "suite": snapshot.name,
        "method": "gaussian",
        "paper": "Cohen et al. 2019",
        "summary": "the whole base, fine-tuned on Gaussian-noised inputs",
        "base": "resnet20",
        "sigma": 0.25,
        "certificate": "fixed",
        "precision": "bf16",
        "engine": "eager",
        "n_images": 200,
        "n0": 100,
        "n": 10_000,
        "alpha": 0.001,
        "fit": {"hash": "7cba35796a", "state_sha256": "ab" * 32, "bytes": 1_084_512, "path": "results/checkpoints/x"},
        "trainable_params": 272_474,
        "trainable_pct": 100.0,
        "cost": {"fit_time_s": 436.2, "certify_s_per_image": 5.32, "samples_per_image": 10_100.0},
        "certified_accuracy": [{"radius": 0.0, "value": 0.75, "lo": 0.684, "hi": 0.808}],
        "acr": {"value": 0.291, "lo": 0.252, "hi": 0.329},
        "vs_best": "tied",
        "config_hash": "0123456789",
        "reproduce": "python -m benchmark run --suite cifar10-cpu --methods gaussian --sigma 0.25",
        "reported_elsewhere": [
            {
                "source": SOURCE,
                "setting": "CIFAR-10, ResNet-110, n = 100,000",
                "certified_accuracy": {"0.25": 93.7, "0.5": 81.9},
                "acr": None,
                "note": "their table 1",
            }
        ],
        "generated_by": command,
    }


def cascade_style_card(snapshot, command: str) -> dict:
    """The same row at sigma 0.5 in the form the cards module writes for any row: its fitted states listed (one per
    fit a cascade composes), the data, the commit, and each reported number with the kind of its source."""
    card = fixture_card(snapshot, command) | {
        "sigma": 0.5,
        "dataset": "CIFAR-10 (JPEG q75 copy)",
        "git_commit": "f" * 40,
    }
    card["fit"] = {
        "states": [{"method": "gaussian", "hash": "2bb14775aa", "state_sha256": "cd" * 32, "bytes": 9, "path": None}],
        "stored_bytes": 1_084_512,
    }
    card["reported_elsewhere"] = [
        card["reported_elsewhere"][0] | {"label": "paper", "references_section": "9(z)", "sigma": 0.5}
    ]
    return card


def cards(results: Path, snapshot, command: str) -> list[dict]:
    return [fixture_card(snapshot, command), cascade_style_card(snapshot, command)]


@pytest.fixture(scope="module")
def snaps():
    return snapshots([SUITE])


@pytest.fixture(scope="module")
def rows(snaps) -> list[dict]:
    return leaderboard_rows(RESULTS, snaps[SUITE])[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory, snaps) -> Path:
    out = tmp_path_factory.mktemp("site") / "a"
    assert build_site(RESULTS, out, snaps, cards) == out / "index.html"
    return out


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


class _Parsed(HTMLParser):
    """Links, ids and sortable headers of one page."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.types: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[k] for k in ("href", "src") if k in attrs]
        self.ids |= {attrs["id"]} if "id" in attrs else set()
        self.types += [attrs["data-type"]] if tag == "th" and "data-type" in attrs else []


def test_every_page_is_written(site, rows):
    names = {p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()}
    methods = {f"{SUITE}/methods/{m}.html" for m in {r["method"] for r in rows}}
    pages = {f"{SUITE}/{k}.html" for k in ("attack", "audit", "perf", "certificates")}
    assert names == {"index.html", "site.css", "site.js", *methods, *pages}
    for page in _pages(site):
        text = page.read_text()
        assert "<title>" in text and "Generated by <code>python -m benchmark site</code>" in text, page
        assert str(RESULTS) not in text and str(site) not in text, f"{page}: an absolute path makes output differ"


def test_the_same_results_give_the_same_bytes_and_stale_pages_go(site, snaps, tmp_path):
    """CI regenerates the site and diffs it: a timestamp, a set's order or an absolute path would break that."""
    other = tmp_path / "elsewhere"
    (other / SUITE / "methods").mkdir(parents=True)
    stale = other / SUITE / "methods" / "gone.html"
    stale.write_text('<meta name="generator" content="smoothbench site">')
    (other / "mine.html").write_text("<p>not the generator's: kept</p>")
    build_site(RESULTS, other, snaps, cards)
    assert not stale.exists() and (other / "mine.html").exists()
    (other / "mine.html").unlink()
    compared = filecmp.dircmp(site, other)
    assert not compared.diff_files and not compared.left_only and not compared.right_only
    for sub in compared.subdirs.values():
        assert not sub.diff_files and not sub.left_only and not sub.right_only
        for deeper in sub.subdirs.values():
            assert not deeper.diff_files and not deeper.left_only and not deeper.right_only


def test_every_link_resolves_inside_the_site(site):
    """Relative links only (they resolve under file://), each to a file of the site and, with a fragment, to an
    element of that page; no resource from outside (the site must stand on its own)."""
    ids = {page: _Parsed(page.read_text()).ids for page in _pages(site)}
    checked = 0
    for page in _pages(site):
        for link in _Parsed(page.read_text()).links:
            if link.startswith("data:"):
                continue
            assert not re.match(r"^[a-z]+:|^//|^/", link), f"{page.name}: {link} is not a relative link"
            path, _, fragment = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            assert target.is_file() and target.is_relative_to(site.resolve()), f"{page.name}: {link} is missing"
            assert not fragment or fragment in ids.get(target, set()), f"{page.name}: no id {fragment} in {path}"
            checked += 1
    assert checked > 100


def test_the_leaderboard_is_sortable_and_carries_the_markdown_cells(site, rows):
    text = (site / "index.html").read_text()
    assert '<table class="sortable">' in text and '<script src="site.js" defer></script>' in text
    assert "num" in _Parsed(text).types and "text" in _Parsed(text).types
    ranked = [r for r in rows if r["ranked"]]
    # each ranked row's ACR is a raw sort value, and its interval cell is the markdown leaderboard's
    for r in ranked:
        assert f'data-sort="{r["acr"]!r}"' in text
    committed = (ROOT / "leaderboards" / f"{SUITE}.md").read_text()
    gaussian = next(line for line in committed.splitlines() if line.startswith("| tied | gaussian [bf16] |"))
    for cell in gaussian.split(" | ")[2:8]:
        assert f">{cell}</td>" in text, cell
    assert text.count('<span class="mark best">best</span>') == len({(r["base"], r["sigma"]) for r in ranked})
    assert "Other runs of these cells, not ranked:" in text and "superseded" in text


def test_reported_numbers_stay_apart_from_measured_ones(site, rows):
    page = (site / SUITE / "methods" / "gaussian.html").read_text()
    blocks = re.findall(r'<section class="elsewhere".*?</section>', page, flags=re.S)
    rest = re.sub(r'<section class="elsewhere".*?</section>', "", page, flags=re.S)
    assert len(blocks) == 2 and page.count('<table class="fields">') == 2
    for block in blocks:
        assert "Reported elsewhere (not measured here)" in block and SOURCE in block and "r=0.25: 93.7" in block
    assert SOURCE not in rest and not re.search(r"(?<![\d.])(93\.7|81\.9)(?!\d)", rest)
    for fields in re.findall(r'<table class="fields">.*?</table>', page, flags=re.S):
        assert "elsewhere" not in fields and SOURCE not in fields, "the block sits outside the measured table"
    assert "(paper, sheet 9(z))" in blocks[1] and "<code>gaussian</code>: hash <code>2bb14775aa</code>" in page
    assert ">CIFAR-10 (JPEG q75 copy)</td>" in page and "f" * 40 in page  # a field laid out, one listed as it is
    assert SOURCE not in (site / "index.html").read_text()
    curves = sum(r["ranked"] for r in rows if r["method"] == "gaussian")  # one curve and band per ranked row
    assert curves >= 2 and page.count("<polyline") == curves and page.count('fill-opacity="0.15"') == curves
    assert "<h2>Paired comparisons</h2>" in page and "peft_lora [bf16] - gaussian [bf16]" in page


def test_the_site_reads_no_suite_file_or_registry():
    """Like the reports, the site is a function of the results and the snapshots it is given (the CLI makes them)."""
    files = sorted((ROOT / "benchmark" / "site").glob("*.py"))
    found = [f"{p.name}: {m}" for p in files for m in imported(p.read_text(), "benchmark.site") if forbidden(m)]
    assert len(files) >= 5 and not found, found


def test_markdown_subset():
    text = "# Title `x`\n\nA **bold `code` run** and [doc](other.md), [web](https://e.org) ![plot](a.png).\n\n"
    text += "- one\n  more\n- two\n\n| a | b |\n|---|---|\n| 1 <2> | `|` |\n\n```\n**raw**\n```\n"
    html = to_html(text)
    assert "<h1>Title <code>x</code></h1>" in html
    assert "<strong>bold <code>code</code> run</strong>" in html
    assert "doc" in html and "other.md" not in html and '<a href="https://e.org">web</a>' in html
    assert "a.png" not in html
    assert "<ul><li>one more</li><li>two</li></ul>" in html
    assert '<th scope="col">a</th>' in html and "<td>1 &lt;2&gt;</td>" in html
    assert "<pre><code>**raw**</code></pre>" in html
    assert inline("a & b") == "a &amp; b"


def test_the_command_builds_the_site_or_says_what_is_wrong(tmp_path, capsys):
    assert main(["site", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "s")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["site", "--results", str(tmp_path / "empty"), "--out", str(tmp_path / "s")]) == 2
    assert "no runs found" in capsys.readouterr().err
    assert main(["site", "--results", str(RESULTS), "--suite", "nope", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no runs of suite 'nope'" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()
    assert main(["site", "--results", str(RESULTS), "--suite", SUITE, "--out", str(tmp_path / "s")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 's' / 'index.html'}\n"
    # the model cards are shown once benchmark.report.cards is in the checkout
    shown = "<h2>Model cards</h2>" in (tmp_path / "s" / SUITE / "methods" / "gaussian.html").read_text()
    assert shown == (committed_cards() is not None)
