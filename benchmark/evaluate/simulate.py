"""``python -m benchmark simulate``: sequential designs compared by simulation on committed vote rates.

Each ranked fixed-n run of a suite gives, per image, the rate at which the noisy classifier voted for its top
class (``n_top / n``) and whether that class is the label. Treating the rates as the images' true p_A, a design's
decision (:func:`benchmark.certificates.sequential.decision`, the code the certificates run) is replayed on
binomial draws, and so is fixed-n CERTIFY at ``n_max``: per design, the mean and median samples per image
(selection included), the share of all samples the costliest tenth of the images take, and the certified accuracy
at each grid radius beside fixed n's on the same draws (the largest gap over the grid, averaged over repetitions).

The rule that picks the ``adaptive`` design is fixed before the simulation runs (:func:`choose`): among the
candidates whose mean gap to fixed n stays within ``max_gap`` points at every cell and n_max, the one with the
fewest samples at the largest n_max, summed over the cells. The rates it chooses on are the ``choose_on``
methods' (gaussian and peft_lora by default): on validation images (``--rates val``, the default; counted by
:mod:`benchmark.evaluate.votes`), a design being a setting chosen away from the test images, with every method's
test rates as the held-out check; or on their test rates (``--rates test``, how the first choice was made), with
every other single-sigma method's rates as the held-out check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import norm

from benchmark.certificates.sequential import ADAPTIVE, SEQUENTIAL, Design, decide
from benchmark.certificates.smoothing import clopper_pearson_lower
from benchmark.config.suite import snapshot
from benchmark.errors import BenchmarkError
from benchmark.run.ranking import ranked_runs
from benchmark.run.records import latest_runs


def candidates() -> dict[str, Design]:
    """The designs compared: today's ``sequential``, the chosen ``adaptive`` and a grid over the futility level,
    alpha's final share and the spacing of the looks."""
    grid = {
        f"beta={b:g} final={f:g} growth={g:g}": Design(growth=g, final_share=f, futility_beta=b)
        for b in (0.01, 0.05, 0.1, 0.2, 0.3, 0.5)
        for f in (0.8, 0.5)
        for g in (0.5, 1.0)
    }
    named = {"sequential": SEQUENTIAL, "adaptive": ADAPTIVE}
    return named | {k: d for k, d in grid.items() if d not in named.values()}


@dataclass(frozen=True)
class Cell:
    """The vote rates of one ranked run: ``rates`` (p_A per image) and ``correct`` (its top class is the label)."""

    method: str
    base: str
    sigma: float
    rates: tuple[float, ...]
    correct: tuple[bool, ...]


def vote_rates(results: Path, suite: str, base: str, methods: list[str] | None = None) -> list[Cell]:
    """The cells of the suite's ranked fixed-n runs on ``base`` (only ``methods``, if given)."""
    rules = snapshot(suite, families={})
    runs = ranked_runs(latest_runs(results, suite), rules.preferred_precision, rules.whole_subset_only)
    cells = []
    for run in runs:
        if run.info.base != base or (methods and run.info.method not in methods):
            continue
        records = sorted(run.records, key=lambda r: r.idx)
        if not records or any(r.mode != "fixed" for r in records):
            continue
        rates = tuple(r.n_top / r.n for r in records)
        correct = tuple(r.prediction == r.label for r in records)
        cells.append(Cell(run.info.method, base, float(run.info.sigma), rates, correct))
    if not cells:
        raise BenchmarkError(f"no ranked fixed-n runs of {suite} on {base} under {results}: certify them first")
    return cells


def _certified(bound: float, sigma: float, radii) -> np.ndarray:
    """Which grid radii a bound on p_A certifies (r = 0 needs a bound above 1/2, as CERTIFY's abstention)."""
    return np.array([bound > 0.5 and bound >= norm.cdf(r / sigma) for r in radii])


def simulate(cell: Cell, design: Design, n_max: int, n0: int, alpha: float, radii, reps: int, seed: int):
    """Per repetition: samples per image and the certified-accuracy tables of ``design`` and of fixed n. As in a
    run, fixed n's samples continue the design's stream (both draw an image's noise from one generator): its count
    is the design's votes plus those of the samples the design did not draw. Each (repetition, image) has its
    own seeded stream, the same for every design."""
    samples = np.zeros((reps, len(cell.rates)))
    tables = {"design": np.zeros((reps, len(radii))), "fixed": np.zeros((reps, len(radii)))}
    for rep in range(reps):
        for i, (p, correct) in enumerate(zip(cell.rates, cell.correct, strict=True)):
            rng = np.random.default_rng([seed, rep, i])
            bound, k, t = decide(
                lambda m, r=rng, q=p: int(r.binomial(m, q)), cell.sigma, n_max, alpha, radii, design=design
            )
            fixed = clopper_pearson_lower(k + int(rng.binomial(n_max - t, p)), n_max, alpha)
            samples[rep, i] = n0 + t
            tables["design"][rep] += correct * _certified(bound, cell.sigma, radii)
            tables["fixed"][rep] += correct * _certified(fixed, cell.sigma, radii)
    return samples, {k: 100 * v / len(cell.rates) for k, v in tables.items()}


def compare(
    cells: list[Cell], designs: dict[str, Design], n_maxes, n0: int, alpha: float, radii, reps: int, seed: int = 0
) -> list[dict]:
    """One row per (cell, n_max, design): samples, their spread over images, and the gap to fixed n."""
    rows = []
    for cell in cells:
        for n_max in n_maxes:
            for name, design in designs.items():
                samples, tables = simulate(cell, design, n_max, n0, alpha, radii, reps, seed)
                table, fixed_table = tables["design"], tables["fixed"]
                per_image = samples.mean(axis=0)
                top = np.sort(per_image)[::-1][: max(1, len(per_image) // 10)]
                rows.append(
                    {
                        "method": cell.method,
                        "sigma": cell.sigma,
                        "n_max": n_max,
                        "design": name,
                        "mean": float(samples.mean()),
                        "median": float(np.median(samples)),
                        "top10_share": float(top.sum() / per_image.sum()),
                        "fewer": float((n0 + n_max) / samples.mean()),
                        "gap": float(np.abs(table - fixed_table).max(axis=1).mean()),
                        "table": table.mean(axis=0).tolist(),
                        "fixed_table": fixed_table.mean(axis=0).tolist(),
                    }
                )
    return rows


def choose(rows: list[dict], choose_on: list[str], max_gap: float) -> str:
    """The design the rule of the module docstring picks from the rows of the ``choose_on`` methods."""
    mine = [r for r in rows if r["method"] in choose_on]
    largest = max(r["n_max"] for r in mine)
    names = sorted({r["design"] for r in mine})
    within = [d for d in names if all(r["gap"] <= max_gap for r in mine if r["design"] == d)]
    if not within:
        raise BenchmarkError(f"no design stays within {max_gap} points of fixed n: widen --max-gap")
    cost = {d: sum(r["mean"] for r in mine if r["design"] == d and r["n_max"] == largest) for d in within}
    return min(within, key=lambda d: (cost[d], d))


def run_simulation(
    results: Path,
    suite: str,
    base: str,
    choose_on: list[str],
    n_maxes: list[int],
    reps: int,
    max_gap: float,
    n0: int,
    alpha: float,
    radii,
    val: list[Cell] | None = None,
) -> dict:
    """The whole comparison: every candidate on the ``choose_on`` methods' rates, the rule's choice, and today's
    and the chosen design on every other method's rates (the held-out check). With ``val`` (the ``choose_on``
    methods' rates on validation images, :mod:`benchmark.evaluate.votes`) the choice is made on those, and every
    method's test rates, the ``choose_on`` methods' included, are the held-out check."""
    cells = vote_rates(results, suite, base)
    chosen_on = val if val is not None else [c for c in cells if c.method in choose_on]
    if not chosen_on:
        raise BenchmarkError(f"no ranked run of {', '.join(choose_on)} on {base}: nothing to choose on")
    designs = candidates()
    rows = compare(chosen_on, designs, n_maxes, n0, alpha, radii, reps)
    choice = choose(rows, choose_on, max_gap)
    held_out = cells if val is not None else [c for c in cells if c.method not in choose_on]
    check = {"sequential": SEQUENTIAL, choice: designs[choice]}
    rows += [r | {"held_out": True} for r in compare(held_out, check, [max(n_maxes)], n0, alpha, radii, reps)]
    return {
        "suite": suite,
        "base": base,
        "rates": "test" if val is None else "val",
        "val_images": None if val is None else len(val[0].rates),
        "choose_on": choose_on,
        "n_max": n_maxes,
        "reps": reps,
        "max_gap": max_gap,
        "n0": n0,
        "alpha": alpha,
        "radii": list(radii),
        "choice": choice,
        "designs": {k: vars(d) for k, d in designs.items()},
        "rows": rows,
    }
