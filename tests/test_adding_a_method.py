"""The README's "Adding a method", as a new user follows it: its code block, as written, becomes a module; its one
registry line registers it; the contract checks, the quick suite and the Methods table then take it with no other
file edited. Also: the README's Methods table is what the registry generates."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest

from benchmark.cli import commands
from benchmark.cli.parser import main
from benchmark.config.hashing import to_jsonable
from benchmark.config.registry import METHODS
from benchmark.config.run_config import build_run_config
from benchmark.config.suite import methods_rows
from benchmark.report.methods_table import METHODS_END, METHODS_START, methods_block
from benchmark.run.plan import check_names, method_config
from benchmark.run.records import latest_runs
from tests.test_contract import check_method_contract

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> tuple[str, str, str]:
    """The section's Python block, and the name and ``module:Class`` target of its registry line."""
    section = README.read_text().split("## Adding a method\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    line = re.search(r'`"(\w+)": "([\w.]+:\w+)"` to `METHODS` in `benchmark/config/registry.py`', section)
    assert line, 'the section must give the registry line to add, as `"name": "module:Class"`'
    return code, *line.groups()


@pytest.fixture
def example(tmp_path):
    """The README's method, written to a module of its own and registered under its name (undone afterwards)."""
    code, name, target = readme_example()
    module, cls_name = f"readme_{target.split(':')[0].rsplit('.', 1)[-1]}", target.split(":")[1]
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / f"{module}.py").write_text(code)
    sys.path.insert(0, str(folder))
    METHODS.register(name, f"{module}:{cls_name}")
    try:
        yield name
    finally:
        METHODS.unregister(name)
        sys.path.remove(str(folder))
        sys.modules.pop(module, None)


@pytest.mark.parametrize("family", ["cnn", "vit"])
def test_the_readme_method_passes_the_contract(example, family, tmp_path):
    check_method_contract(example, family, tmp_path)


def test_the_readme_method_runs_in_the_quick_suite_with_its_own_settings(example, tmp_path, monkeypatch):
    cls = METHODS.get(example)
    cfg = build_run_config("quick", {})
    assert example in check_names(cfg), "the quick suite must run every registered method"
    assert method_config(cfg, example, "small_cnn", 0.25) == cls.Config.quick()
    # the quick suite as it stands, but its base pretrained for 2 steps an epoch (the method is under test here, and
    # the 30 full epochs would take minutes); the method's own fit keeps its Config.quick() budget
    monkeypatch.setattr(
        commands, "build_run_config", lambda suite, values: cheap_base(build_run_config(suite, values))
    )
    results = tmp_path / "results"
    argv = [
        "run",
        "--suite",
        "quick",
        "--methods",
        example,
        "--sigma",
        "0.25",
        "--max-images",
        "3",
        "--n",
        "100",
        "--results",
        str(results),
        "--out",
        str(tmp_path / "lb"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    ]
    assert main(argv) == 0
    (run,) = latest_runs(results, "quick")
    assert run.info.method == example and run.info.status == "complete" and len(run.records) == 3
    recorded = json.loads((run.directory / "run.json").read_text())["config"]["method_config"]
    assert recorded == to_jsonable(cls.Config.quick())
    assert (tmp_path / "lb" / "quick.md").read_text().count(example) >= 1


def cheap_base(cfg):
    settings = {
        name: {**table, "train": {**table.get("train", {}), "max_steps_per_epoch": 2}}
        for name, table in cfg.base_settings.items()
    }
    return dataclasses.replace(cfg, base_settings=settings)


def test_the_readme_method_gets_a_row_in_the_methods_table(example):
    cls = METHODS.get(example)
    assert f"| `{example}` | {cls.summary} | {cls.paper} |" in methods_block(methods_rows()).splitlines()


def test_the_readme_methods_table_is_the_generated_one():
    text = README.read_text()
    assert METHODS_START in text and METHODS_END in text
    committed = METHODS_START + text.split(METHODS_START, 1)[1].split(METHODS_END, 1)[0] + METHODS_END
    stale = "README.md's Methods table is stale: run python -m benchmark leaderboard"
    assert committed == methods_block(methods_rows()), stale
