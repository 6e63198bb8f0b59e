"""Certified-accuracy-vs-radius plots as pure functions of ``results/`` (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.files import safe_name
from benchmark.labels import envelope_sources, run_label, subset_note, unfinished
from benchmark.metrics import certified_accuracy, envelope, r_max
from benchmark.records import latest_runs


def _axes(title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cycler

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    # Past ten curves the default cycle repeats its colours; a new line style keeps every curve distinct.
    ax.set_prop_cycle(cycler(linestyle=["-", "--", ":"]) * cycler(color=plt.get_cmap("tab10").colors))
    ax.set_xlabel("l2 radius ([0,1] pixel units)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    return plt, fig, ax


def write_plots(results: Path, out_dir: Path, suite: str) -> list[Path]:
    """One PNG per (base, sigma) with a curve per method, and one envelope-over-sigma PNG per base."""
    runs = [r for r in latest_runs(results, suite) if r.records]
    written: list[Path] = []
    folder = out_dir / safe_name(suite)
    for base in sorted({r.info.base for r in runs}):
        base_runs = [r for r in runs if r.info.base == base]
        top = max(r_max(float(r.info.sigma), r.info.n, r.info.alpha) for r in base_runs)
        top = top if np.isfinite(top) else max(float(x.radius) for r in base_runs for x in r.records) or 1.0
        grid = np.linspace(0.0, top * 1.02, 300)
        sigmas = sorted({float(r.info.sigma) for r in base_runs})
        mixed = len({r.precision for r in base_runs}) > 1
        # Curves carry their precision only where a base mixes two; otherwise the title names the one.
        precision = "" if mixed else f" [{base_runs[0].precision}]"

        def name(run, mixed=mixed) -> str:
            return run_label(run.info.method, run.precision, mixed)

        for sigma in sigmas:
            plt, fig, ax = _axes(f"{suite} / {base}{precision} / sigma = {sigma:g}")
            for run in sorted((r for r in base_runs if float(r.info.sigma) == sigma), key=name):
                images = len(run.records)
                status = unfinished(run.status, images) + subset_note(run.status, images, run.info.subset_size)
                ax.plot(grid, certified_accuracy(run.records, grid), label=name(run) + status)
            ax.legend(fontsize=8)
            written.append(save_figure(plt, fig, folder / f"{safe_name(base)}_sigma_{sigma:g}.png"))
        over = ", ".join(f"{s:g}" for s in sigmas)
        plt, fig, ax = _axes(f"{suite} / {base}{precision} / envelope over sigma {over}")
        for label in sorted({name(r) for r in base_runs}):
            members = [r for r in base_runs if name(r) == label]
            curves = [certified_accuracy(r.records, grid) for r in members]
            sources = envelope_sources((float(r.info.sigma), r.status, len(r.records)) for r in members)
            ax.plot(grid, envelope(curves), label=f"{label} (sigma {sources})")
        ax.legend(fontsize=8)
        written.append(save_figure(plt, fig, folder / f"{safe_name(base)}_envelope.png"))
    return written


def save_figure(plt, fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
