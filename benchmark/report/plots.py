"""Certified-accuracy-vs-radius plots of a leaderboard's ranked rows (PNG, matplotlib's Agg backend).

Per base and sigma: one figure per method family (one hue per family, a line style per method) and one figure of
each family's best row (by ACR); per base, the envelope over sigma of the single-sigma rows, and one figure per
cascade beside the single-sigma rows of the method it composes. Only ranked rows are drawn (one complete run
per base, method and sigma); a row's precision is named in the legend only where a figure mixes precisions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from benchmark.config.snapshot import SuiteSnapshot
from benchmark.files import inside, safe_name
from benchmark.report.metrics import certified_accuracy, envelope

Family = Callable[[str], str]  # method -> its family (the snapshot's), which sets its hue
STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
FAMILY_HUES = {
    "baseline": "tab:gray",
    "peft": "tab:blue",
    "denoiser": "tab:orange",
    "adapter": "tab:purple",
    "cascade": "tab:red",
    "other": "tab:green",
}


def _axes(title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    ax.set_xlabel("l2 radius ([0,1] pixel units)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    return plt, fig, ax


def _draw(rows: Sequence[dict], grid: np.ndarray, path: Path, title: str, by_family: bool, family: Family) -> Path:
    """One figure: a curve per row, hue by ``family`` (method -> family); line style by method within a family (or
    by family)."""
    mixed = len({r["precision"] for r in rows}) > 1
    plt, fig, ax = _axes(title if mixed else f"{title} [{rows[0]['precision']}]")
    seen: dict[str, int] = {}
    for row in sorted(rows, key=lambda r: (family(r["method"]), r["method"])):
        fam = family(row["method"])
        seen[fam] = seen.get(fam, -1) + 1
        style = STYLES[sorted(FAMILY_HUES).index(fam) % len(STYLES)] if by_family else STYLES[seen[fam] % len(STYLES)]
        name = row["method"] + (f" [{row['precision']}]" if mixed else "") + (f" ({fam})" if by_family else "")
        ax.plot(grid, certified_accuracy(row["records"], grid), label=name, color=FAMILY_HUES[fam], linestyle=style)
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def write_plots(rows: Sequence[dict], radii: Sequence[float], out_dir: Path, snapshot: SuiteSnapshot) -> list[Path]:
    """The figures of the module docstring for one suite's leaderboard ``rows``; stale figures of the suite's
    folder are removed (denoised previews, made by their own command, stay)."""
    suite, family = snapshot.name, snapshot.family
    ranked = [r for r in rows if r["ranked"]]
    folder = inside(out_dir, out_dir / safe_name(suite, "suite"))
    for stale in folder.glob("*.png") if folder.is_dir() else []:
        if not stale.name.startswith("denoised_"):
            stale.unlink()
    written: list[Path] = []
    for base in sorted({r["base"] for r in ranked}):
        base_rows = [r for r in ranked if r["base"] == base]
        grid = _grid([r for r in base_rows if not r.get("stage_sigmas")] or base_rows)
        stem = safe_name(base, "base")
        for sigma in sorted({r["sigma"] for r in base_rows}):
            sig_rows = [r for r in base_rows if r["sigma"] == sigma]
            for fam in sorted({family(r["method"]) for r in sig_rows}):
                members = [r for r in sig_rows if family(r["method"]) == fam]
                title = f"{suite} / {base} / sigma = {sigma:g} / {fam}"
                path = folder / f"{stem}_sigma_{sigma:g}_{fam}.png"
                written.append(_draw(members, grid, path, title, False, family))
            best = [
                max((r for r in sig_rows if family(r["method"]) == f), key=lambda r: r["acr"])
                for f in sorted({family(r["method"]) for r in sig_rows})
            ]
            title = f"{suite} / {base} / sigma = {sigma:g} / best of each family (by ACR)"
            written.append(_draw(best, grid, folder / f"{stem}_sigma_{sigma:g}_best.png", title, True, family))
        singles = [r for r in base_rows if not r.get("stage_sigmas")]
        if singles:
            written.append(_envelope(singles, grid, folder / f"{stem}_envelope.png", f"{suite} / {base}", family))
        for cascade in (r for r in base_rows if r.get("stage_sigmas")):
            path = folder / f"{stem}_{safe_name(cascade['method'])}.png"
            title = f"{suite} / {base} / {cascade['method']}"
            written.append(_cascade(cascade, singles, _grid([cascade]), path, title, family))
    return written


def _grid(rows: Sequence[dict]) -> np.ndarray:
    """Radii from 0 to just past the largest radius the rows can certify (R_max), else past the largest certified."""
    tops = [r["r_max"] for r in rows if r["r_max"] is not None and np.isfinite(r["r_max"])]
    top = max(tops) if tops else max(float(r["records"]["radius"].max()) for r in rows) or 1.0
    return np.linspace(0.0, top * 1.02, 300)


def _cascade(row: dict, singles: Sequence[dict], grid: np.ndarray, path: Path, title: str, family: Family) -> Path:
    """A cascade beside the single-sigma rows of the method it composes, at the sigmas of its set."""
    levels = {float(s) for s in row["stage_sigmas"].split("/")}
    composed = set((row.get("composes") or "").split(","))
    fits = set((row.get("composed_fits") or "").split(","))
    parts = sorted((r for r in singles if r["method"] in composed and r["sigma"] in levels), key=lambda r: r["sigma"])
    mixed = len({r["precision"] for r in [row, *parts]}) > 1
    plt, fig, ax = _axes(f"{title} (sigma {row['stage_sigmas']}) beside its stages")
    ax.plot(
        grid,
        certified_accuracy(row["records"], grid),
        color=FAMILY_HUES["cascade"],
        linewidth=2.2,
        label=f"{row['method']} (sigma {row['stage_sigmas']})" + (f" [{row['precision']}]" if mixed else ""),
    )
    for i, part in enumerate(parts):
        # a row of the composed method whose fit is not the stage's (another DDPM, another precision) says so
        other = "" if part.get("fit_hash") is None or part["fit_hash"] in fits else " (another fit than the stage's)"
        ax.plot(
            grid,
            certified_accuracy(part["records"], grid),
            color=FAMILY_HUES[family(part["method"])],
            linestyle=STYLES[(i + 1) % len(STYLES)],
            label=f"{part['method']} sigma {part['sigma']:g}{other}" + (f" [{part['precision']}]" if mixed else ""),
        )
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def _envelope(rows: Sequence[dict], grid: np.ndarray, path: Path, title: str, family: Family) -> Path:
    sigmas = ", ".join(f"{s:g}" for s in sorted({r["sigma"] for r in rows}))
    precisions = {r["precision"] for r in rows}
    precision = f" [{precisions.pop()}]" if len(precisions) == 1 else " (precision per row: see the tables)"
    plt, fig, ax = _axes(f"{title} / envelope over sigma {sigmas}{precision}")
    seen: dict[str, int] = {}
    for method in sorted({r["method"] for r in rows}, key=lambda m: (family(m), m)):
        fam = family(method)
        seen[fam] = seen.get(fam, -1) + 1
        curves = [certified_accuracy(r["records"], grid) for r in rows if r["method"] == method]
        ax.plot(
            grid, envelope(curves), label=method, color=FAMILY_HUES[fam], linestyle=STYLES[seen[fam] % len(STYLES)]
        )
    ax.legend(fontsize=8)
    return save_figure(plt, fig, path)


def save_figure(plt, fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
