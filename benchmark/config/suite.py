"""Suite files: ``benchmark/config/suites/<name>.toml`` (or a path), read as raw tables; whether a suite's results
are published; the method pairs a suite asks to compare."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from benchmark.errors import BenchmarkError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SUITES_DIR = Path(__file__).resolve().parent / "suites"


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def load_suite(name_or_path: str) -> tuple[str, dict[str, Any]]:
    """Read a suite by name (``benchmark/config/suites/<name>.toml``) or by path; return its name and raw table."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.is_file()):
        path = SUITES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        close = difflib.get_close_matches(name_or_path, suite_names(), n=2)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise BenchmarkError(f"unknown suite {name_or_path!r}: {hint}known suites: {', '.join(suite_names())}")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise BenchmarkError(f"suite file {path} is not valid TOML ({err}): fix the file") from None
    return table.get("name", path.stem), table


def is_published(suite: str) -> bool:
    """Whether a suite's results belong in the repository and the README summary (suite key ``published``,
    default true). The smoke-scale ``quick`` suite says false: its results stay local, so the README's first
    command leaves the checkout as it found it. A suite known by no file here counts as published."""
    if suite not in suite_names():
        return True
    return _published(*load_suite(suite))


def _published(name: str, table: dict[str, Any]) -> bool:
    value = table.get("published", True)
    if not isinstance(value, bool):
        raise BenchmarkError(f"suite {name!r}: published must be true or false, got {value!r}")
    return value


def suite_pairs(suite: str, key: str = "comparisons") -> list[tuple[str, str]]:
    """The (A, B) method pairs of a suite's ``comparisons`` key, or of another such key (``attack_comparisons``);
    none for a suite with no file or no key."""
    if suite not in suite_names():
        return []
    name, table = load_suite(suite)
    return parse_pairs(table.get(key, []), name, key)


def parse_pairs(value, suite: str, key: str = "comparisons") -> list[tuple[str, str]]:
    """``comparisons`` (or ``key``) as (A, B) pairs, or a one-line error naming what is wrong."""
    ok = isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(m, str) and m for m in p) and p[0] != p[1]
        for p in value
    )  # fmt: skip
    if not ok:
        raise BenchmarkError(f"suite {suite!r}: {key} must be a list of [method, other method] pairs, e.g. "
                             f'[["caf", "gaussian"]], got {value!r}')  # fmt: skip
    return list(dict.fromkeys((a, b) for a, b in value))
