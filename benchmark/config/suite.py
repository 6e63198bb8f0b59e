"""Suite files: ``benchmark/config/suites/<name>.toml`` (or a path), read as raw tables; whether a suite's results
are published; the method pairs a suite asks to compare; and :func:`snapshot`, all of that (with the methods'
families) frozen for the reports, which read no suite file themselves."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from benchmark.config.snapshot import SuiteSnapshot
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
    )
    if not ok:
        raise BenchmarkError(
            f"suite {suite!r}: {key} must be a list of [method, other method] pairs, e.g. "
            f'[["caf", "gaussian"]], got {value!r}'
        )
    return list(dict.fromkeys((a, b) for a, b in value))


def suite_certificate(suite: str) -> str:
    """The run-level certificate a suite certifies and ranks with (its ``certify`` key; "fixed" by default): rows of
    another run-level certificate are listed beside, unranked. A method with its own certificate (a cascade) keeps
    it whatever this is."""
    table = load_suite(suite)[1] if suite in suite_names() else {}
    return str(table.get("certify", "fixed"))


def preferred_precision(suite: str) -> str:
    """The precision whose runs a suite ranks first: its ``preferred_precision`` key, else its fixed precision, else
    bf16 (the precision most committed rows were certified in where a suite says "auto")."""
    table = load_suite(suite)[1] if suite in suite_names() else {}
    return str(
        table.get("preferred_precision")
        or (table.get("precision") if table.get("precision") != "auto" else "")
        or "bf16"
    )


def method_families() -> dict[str, str]:
    """Every registered method's family (its class's ``family``), read from the registry here so that no report
    imports a method class."""
    from benchmark.config.registry import METHODS  # lazily: it imports every method's module

    return {name: METHODS.get(name).family for name in METHODS.in_order()}


def methods_rows() -> list[tuple[str, str, str]]:
    """``(name, summary, paper)`` of every registered method, in registration order (the README's Methods table)."""
    from benchmark.config.registry import METHODS  # lazily, as in method_families

    return [(name, METHODS.get(name).summary, METHODS.get(name).paper) for name in METHODS.in_order()]


def snapshot(
    suite: str, families: dict[str, str] | None = None, papers: list[tuple[str, str, str]] | None = None
) -> SuiteSnapshot:
    """What the reports of ``suite`` need, from its file (if it has one here) and the registry (or ``families``).
    A suite known by no file (results made elsewhere) ranks by the defaults: bf16 first, every complete run, no
    comparison pairs, and counts as published."""
    known = suite in suite_names()
    return SuiteSnapshot(
        name=suite,
        preferred_precision=preferred_precision(suite),
        certificate=suite_certificate(suite),
        published=is_published(suite),
        whole_subset_only=known and is_published(suite),
        comparisons=tuple(suite_pairs(suite)),
        attack_comparisons=tuple(suite_pairs(suite, "attack_comparisons")),
        families=method_families() if families is None else families,
        papers=tuple((m, paper, summary) for m, summary, paper in (methods_rows() if papers is None else papers)),
    )


def snapshots(suites: list[str]) -> dict[str, SuiteSnapshot]:
    """:func:`snapshot` of each of ``suites``, keyed by name (the registry read once)."""
    families = method_families() if suites else {}
    papers = methods_rows() if suites else []
    return {name: snapshot(name, families, papers) for name in suites}
