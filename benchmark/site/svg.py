"""Certified-accuracy-vs-radius curves as inline SVG: one line per row through its measured grid points, over the
band of their 95% Clopper-Pearson intervals. Points are joined by straight lines only to guide the eye; the markers
(with their intervals in a tooltip) are what was measured. Coordinates are rounded to 0.1 px so output is stable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmark.site.html import esc

# Okabe & Ito's colour-blind-safe palette (black last: it reads as an axis next to the others)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH, PLOT_HEIGHT, LEFT, RIGHT, TOP, BOTTOM, LEGEND_LINE = 640, 300, 56, 16, 16, 44, 20


@dataclass(frozen=True)
class Curve:
    """One row's curve: certified accuracy (fractions) and its 95% interval at each radius of the grid."""

    label: str
    values: Sequence[float]
    lo: Sequence[float]
    hi: Sequence[float]


def _x(radius: float, top: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * (radius / top if top else 0.0)


def _y(share: float) -> float:
    return TOP + PLOT_HEIGHT * (1.0 - share)


def _points(radii: Sequence[float], shares: Sequence[float], top: float) -> str:
    return " ".join(f"{_x(r, top):.1f},{_y(s):.1f}" for r, s in zip(radii, shares, strict=True))


def _axes(radii: Sequence[float], top: float) -> list[str]:
    """Grid lines and tick labels: radii at the measured grid, accuracy every 25 points."""
    bottom = _y(0.0)
    parts = ['<g class="axes" font-size="11" fill="#444">']
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(share)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{100 * share:.0f}</text>')
    for radius in radii:
        x = _x(radius, top)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle">{radius:g}</text>')
    parts += [
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.1f}" y="{bottom + 34:.1f}" text-anchor="middle">'
        "l2 radius ([0,1] pixel units)</text>",
        f'<text transform="translate(14 {TOP + PLOT_HEIGHT / 2:.1f}) rotate(-90)" text-anchor="middle">'
        "certified accuracy (%)</text>",
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{PLOT_HEIGHT}" '
        'fill="none" stroke="#999"/>',
        "</g>",
    ]
    return parts


def _curve(curve: Curve, radii: Sequence[float], top: float, colour: str) -> list[str]:
    band = _points(radii, curve.hi, top) + " " + _points(radii[::-1], curve.lo[::-1], top)
    parts = [
        f'<g class="curve" data-label="{esc(curve.label)}">',
        f'<polygon points="{band}" fill="{colour}" fill-opacity="0.15" stroke="none"/>',
        f'<polyline points="{_points(radii, curve.values, top)}" fill="none" stroke="{colour}" stroke-width="2"/>',
    ]
    for r, v, lo, hi in zip(radii, curve.values, curve.lo, curve.hi, strict=True):
        tip = f"{curve.label}: r={r:g}: {100 * v:.1f}% (95% interval {100 * lo:.1f}–{100 * hi:.1f})"
        parts.append(
            f'<circle cx="{_x(r, top):.1f}" cy="{_y(v):.1f}" r="3" fill="{colour}"><title>{esc(tip)}</title></circle>'
        )
    return [*parts, "</g>"]


def curves_svg(curves: Sequence[Curve], radii: Sequence[float], title: str) -> str:
    """One chart of ``curves`` over the radius grid ``radii``, with a legend below the plot."""
    top = max(radii) if radii else 1.0
    height = TOP + PLOT_HEIGHT + BOTTOM + LEGEND_LINE * len(curves)
    parts = [
        f'<svg viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
        *_axes(radii, top),
    ]
    for i, curve in enumerate(curves):
        parts += _curve(curve, radii, top, PALETTE[i % len(PALETTE)])
    for i, curve in enumerate(curves):
        y = TOP + PLOT_HEIGHT + BOTTOM + LEGEND_LINE * i + 12
        colour = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<line x1="{LEFT}" y1="{y - 4}" x2="{LEFT + 24}" y2="{y - 4}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{LEFT + 32}" y="{y}" font-size="12">{esc(curve.label)}</text>'
        )
    return "\n".join([*parts, "</svg>"])
