"""The command line stays a thin layer: small modules and functions, and each shared flag declared once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from benchmark.cli.parser import build_parser, main
from benchmark.config.run_config import PRECISIONS

CLI = Path(__file__).resolve().parents[1] / "benchmark" / "cli"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60

# The commands that fit or certify, each with the suite argument it needs to parse.
PRECISION_COMMANDS = {
    "run": ["--suite", "quick"],
    "tune": ["--suite", "quick"],
    "perf": ["--suite", "quick"],
    "attack": ["--suite", "quick", "--methods", "vanilla"],
    "audit": ["--suite", "quick", "--methods", "vanilla"],
    "pretrain": ["--suite", "quick"],
}


def _modules() -> list[Path]:
    modules = sorted(CLI.glob("*.py"))
    assert modules, f"no modules under {CLI}"
    return modules


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.name)
def test_every_cli_module_and_function_is_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name} has more than {MAX_MODULE_LINES} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def test_precision_is_declared_once_with_the_config_choices():
    declared = [p.name for p in _modules() for _ in range(p.read_text().count('"--precision"'))]
    assert declared == ["args.py"], declared
    for name in PRECISION_COMMANDS:
        (action,) = [
            a
            for a in build_parser()._subparsers._group_actions[0].choices[name]._actions
            if "--precision" in a.option_strings
        ]
        assert tuple(action.choices) == PRECISIONS and action.default is None


@pytest.mark.parametrize("command", sorted(PRECISION_COMMANDS))
@pytest.mark.parametrize("precision", PRECISIONS)
def test_precision_is_accepted(command, precision):
    args = build_parser().parse_args([command, *PRECISION_COMMANDS[command], "--precision", precision])
    assert args.precision == precision


@pytest.mark.parametrize("command", sorted(PRECISION_COMMANDS))
def test_a_bad_precision_is_one_line_and_exit_2(command, capsys):
    assert main([command, *PRECISION_COMMANDS[command], "--precision", "fp16"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "argument --precision: invalid choice: 'fp16'" in err
    assert f"(see 'python -m benchmark {command} --help')" in err
