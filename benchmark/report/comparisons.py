"""Paired comparisons that a suite names: for each pair [A, B] of its ``comparisons`` key, at every base and sigma
where both have a ranked row, A - B on the images both certified.

Per radius: the difference of certified accuracy in points with its paired 95% bootstrap interval and the exact
McNemar p-value; and the ACR difference with its paired interval (:mod:`benchmark.report.stats`). The ranked tables say
only whether a row is tied with the best one; these sections answer the questions a method's issue asks of it (e.g.
``caf`` against ``gaussian`` and ``peft_lora``) with the same paired statistics, so no prose has to rank two rows
whose interval contains 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmark.report.metrics import certified, certified_radius
from benchmark.report.stats import paired_difference, paired_difference_interval


def compare_pair(row: dict, other: dict, radii: Sequence[float]) -> dict | None:
    """``row`` - ``other`` on the images both certified (None when they share none)."""
    a, b = (x["records"].set_index("idx") for x in (row, other))
    common = a.index.intersection(b.index).sort_values()
    if len(common) == 0:
        return None
    a, b = a.loc[common], b.loc[common]
    out = {"method": row["method"], "other": other["method"], "images": len(common), "radii": {}}
    for r in radii:
        out["radii"][r] = paired_difference(certified(a, r), certified(b, r))
    x, y = certified_radius(a), certified_radius(b)
    out["acr"] = (float(np.mean(x - y)), *paired_difference_interval(x, y))
    out["unlike"] = unlike(row, other)
    return out


def unlike(row: dict, other: dict) -> list[str]:
    """What besides the method differs between two rows a reader would take for like-for-like: the precision they
    were certified in, and a cascade composing other fits than the single-sigma row it is read against."""
    found = []
    if row.get("precision") and other.get("precision") and row["precision"] != other["precision"]:
        found.append(f"precision {row['precision']} vs {other['precision']}")
    for cascade, single, names in ((row, other, "AB"), (other, row, "BA")):
        composed = cascade.get("composed_fits")
        alone = not single.get("composed_fits") and not single.get("stage_sigmas")  # a single-sigma row
        if composed and alone and single.get("fit_hash") not in (None, *composed.split(",")):
            found.append(f"{names[0]} composes fit {composed}, not {names[1]}'s {single['fit_hash']}")
    return found


def pair_results(ranked: Sequence[dict], radii: Sequence[float], pairs: Sequence[tuple[str, str]]) -> list[dict]:
    """The comparisons among ``ranked`` (the ranked rows of one base and sigma) that the pairs name, in their order."""
    by_method = {r["method"]: r for r in ranked}
    found = [compare_pair(by_method[a], by_method[b], radii) for a, b in pairs if a in by_method and b in by_method]
    return [f for f in found if f is not None]


def _cell(diff: float, lo: float, hi: float, p: float | None = None, scale: float = 100.0) -> str:
    fmt = "{:+.1f}" if scale == 100.0 else "{:+.3f}"
    text = f"{fmt.format(scale * diff)} [{fmt.format(scale * lo)}, {fmt.format(scale * hi)}]"
    return text + (f" p={p:.2g}" if p is not None else "")


def pairs_markdown(
    ranked: Sequence[dict], radii: Sequence[float], pairs: Sequence[tuple[str, str]], name_of=None
) -> list[str]:
    """The markdown section of one base and sigma (no lines when none of the suite's pairs has both rows)."""
    found = pair_results(ranked, radii, pairs)
    if not found:
        return []

    def label(method: str) -> str:
        return (name_of(method) if name_of else None) or method

    lines = [
        "Paired comparisons named by the suite: A - B on the images both certified; certified accuracy in points "
        "with its paired 95% bootstrap interval and exact McNemar p; ACR with its paired interval. An interval "
        'containing 0: the two are not distinguishable here. "Not alike": what else differs between A and B.',
        "",
        "| A - B | images | " + " | ".join(f"r={r:g}" for r in radii) + " | ACR | not alike |",
        "|" + "---|" * (len(radii) + 4),
    ]
    for f in found:
        cells = [
            f"{label(f['method'])} - {label(f['other'])}",
            str(f["images"]),
            *(_cell(*f["radii"][r]) for r in radii),
            _cell(*f["acr"], scale=1.0),
            "; ".join(f["unlike"]) or "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]
