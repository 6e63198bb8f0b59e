"""Reports are functions of the results folder and an explicit suite snapshot: no module of benchmark/report reads a
suite file or imports a method class, and a report given a snapshot that differs from the suite file follows the
snapshot (so a changed suite file or method class cannot silently re-rank or re-colour committed results)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from benchmark.config.snapshot import SuiteSnapshot
from benchmark.config.suite import method_families, snapshot
from benchmark.report.frame import frame

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "benchmark" / "report"
RESULTS = ROOT / "results"
SUITE = "cifar10-cpu"
# What a report must not import: the suite-file reader, the registry, and method classes (the snapshot type itself,
# benchmark.config.snapshot, is allowed: it reads nothing)
FORBIDDEN = ("benchmark.config.registry", "benchmark.config.suite", "benchmark.method", "methods", "baselines")


def imported(source: str, package: str = "benchmark.report") -> set[str]:
    """Every module an import statement of ``source`` names, anywhere (lazy imports in functions too), with
    ``from a import b`` also counted as ``a.b`` (``from benchmark.config import suite`` imports the reader)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parent = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(x for x in (parent, node.module or "") if x)
            names |= {module, *(f"{module}.{alias.name}" for alias in node.names)}
    return names


def forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def test_the_import_scan_sees_lazy_and_package_imports():
    """The scan below could not fail if it missed the forms the old code used (a lazy import in a function)."""
    lazy = "def family(m):\n    from benchmark.config.registry import METHODS\n    return METHODS.get(m).family\n"
    assert any(forbidden(m) for m in imported(lazy))
    assert any(forbidden(m) for m in imported("from benchmark.config import suite"))
    assert any(forbidden(m) for m in imported("import methods.caf"))
    assert not any(forbidden(m) for m in imported("from benchmark.config.snapshot import SuiteSnapshot"))


def test_no_report_module_reads_suite_files_or_imports_method_classes():
    files = sorted(REPORT.rglob("*.py"))
    assert len(files) >= 10
    found = sorted(f"{p.relative_to(ROOT)}: {m}" for p in files for m in imported(p.read_text()) if forbidden(m))
    assert not found, "reports take a SuiteSnapshot instead: " + "; ".join(found)


def test_a_suite_with_no_file_snapshots_to_the_defaults():
    """Results of a suite known by no file here: bf16 first, every complete run ranked, no pairs, published."""
    assert snapshot("my-own-suite", families={}, papers=[]) == SuiteSnapshot("my-own-suite")
    quick = snapshot("quick", families={})
    assert not quick.published and not quick.whole_subset_only
    assert snapshot(SUITE).family("gaussian") == "baseline" and snapshot(SUITE).family("imported") == "other"
    assert dict(snapshot(SUITE).families) == method_families()


@pytest.fixture(scope="module")
def from_file() -> SuiteSnapshot:
    made = snapshot(SUITE)
    # what the suite file says, so that a snapshot saying otherwise is told apart below
    assert made.preferred_precision == "bf16" and made.whole_subset_only and made.comparisons
    assert made.attack_comparisons == (("adapt", "prompt_at"),)
    return made


def test_the_frame_ranks_by_the_snapshot_not_the_suite_file(from_file):
    other = dataclasses.replace(from_file, preferred_precision="fp32", whole_subset_only=False)
    by_file, by_hand = (frame(RESULTS, SUITE, snapshots={SUITE: s}).drop_duplicates("run") for s in (from_file, other))
    fp32 = [int((df[df.ranked].precision == "fp32").sum()) for df in (by_file, by_hand)]
    assert fp32[1] > fp32[0], fp32
    assert by_file.whole_subset_only.all() and not by_hand.whole_subset_only.any()


def test_the_pages_follow_the_snapshot_and_read_no_suite_file_or_registry(from_file, tmp_path, monkeypatch):
    """No comparison pairs and every method in one family: the pages drop the paired sections and draw one family,
    with the suite-file reader and the registry made to fail if a report still called them."""
    from benchmark.config import registry
    from benchmark.config import suite as suite_files
    from benchmark.report.leaderboard import write_attack_pages, write_leaderboard

    def refuse(*args, **kwargs):
        raise AssertionError("a report read a suite file or the registry")

    for name in (
        "load_suite",
        "suite_names",
        "is_published",
        "suite_pairs",
        "preferred_precision",
        "snapshot",
        "method_families",
    ):
        monkeypatch.setattr(suite_files, name, refuse)
    for name in ("get", "__contains__", "in_order"):
        monkeypatch.setattr(registry.Registry, name, refuse)
    hand = dataclasses.replace(
        from_file, comparisons=(), attack_comparisons=(), families={m: "peft" for m, _ in from_file.families}
    )
    write_leaderboard(RESULTS, tmp_path, hand, "cmd")
    write_attack_pages(RESULTS, tmp_path, hand, "cmd")

    committed = ROOT / "leaderboards"
    paired = "Paired comparisons named by the suite"
    assert paired in (committed / f"{SUITE}.md").read_text()
    assert paired not in (tmp_path / f"{SUITE}.md").read_text()
    attack_pair = "| adapt − prompt_at (adaptive) |"
    assert attack_pair in (committed / f"{SUITE}-attack.md").read_text()
    assert attack_pair not in (tmp_path / f"{SUITE}-attack.md").read_text()
    drawn = {p.name for p in (tmp_path / SUITE).glob("*.png")}
    assert "resnet20_sigma_0.25_baseline.png" in {p.name for p in (committed / SUITE).glob("*.png")}
    assert "resnet20_sigma_0.25_peft.png" in drawn and "resnet20_sigma_0.25_baseline.png" not in drawn
