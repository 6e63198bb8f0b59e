"""The package's shape, as the README's "How the code is laid out" states it: folders are layers whose imports run
one way (down), and no module, class or function outgrows one responsibility."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Lower layers first; a unit imports only units of lower layers (the three of one layer never import each other).
LAYERS = [
    {"errors"},
    {"files"},
    {"config", "data", "certificates"},
    {"train"},
    {"bases"},
    {"method"},
    {"run"},
    {"evaluate"},
    {"report"},
    {"zoo", "site"},
    {"cli"},
    {"__main__", "__init__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}
LIMITS = {"module": 300, "class": 150, "function": 60}


def _unit(path: Path) -> str:
    """The top-level unit of a file under benchmark/: its subpackage, or the module's own name."""
    rel = path.relative_to(ROOT / "benchmark")
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> set[str]:
    """The benchmark units ``path`` imports, function-local imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("benchmark."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("benchmark.")}
    return found


def _sources() -> list[Path]:
    return sorted(p for d in ("benchmark", "methods", "baselines") for p in (ROOT / d).rglob("*.py"))


def test_every_unit_of_the_package_has_a_layer():
    units = {_unit(p) for p in (ROOT / "benchmark").rglob("*.py")}
    assert units <= set(RANK), f"give {sorted(units - set(RANK))} a layer in LAYERS (and the README's layout)"


def test_imports_run_down_the_layers():
    """No folder imports one above it or beside it (a cycle between folders needs one of the two)."""
    upward = []
    for path in (ROOT / "benchmark").rglob("*.py"):
        unit = _unit(path)
        for other in _imports(path) - {unit}:
            if RANK[other] >= RANK[unit]:
                upward.append(f"{path.relative_to(ROOT)} imports benchmark.{other}")
    assert not upward, "move the code to the lower layer, or pass what it needs in: " + "; ".join(sorted(upward))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_classes_and_functions_stay_small(path):
    """A module past 300 lines, a class past 150 or a function past 60 holds two responsibilities: split it."""
    text = path.read_text()
    assert len(text.splitlines()) <= LIMITS["module"], f"{path.name}: split it by responsibility"
    for node in ast.walk(ast.parse(text)):
        kind = "class" if isinstance(node, ast.ClassDef) else "function"
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            size = node.end_lineno - node.lineno + 1
            assert size <= LIMITS[kind], f"{path.name}: {kind} {node.name} has {size} lines (at most {LIMITS[kind]})"
