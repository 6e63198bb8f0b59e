"""How tables and plots name a run: its method, its precision where rows of two meet, and its state if unfinished."""

from __future__ import annotations

from collections.abc import Iterable


def run_label(method: str, precision: str, mixed: bool) -> str:
    """A row's name in tables and plots: the method, with its precision where rows of two precisions meet."""
    return f"{method} [{precision}]" if mixed else method


def unfinished(status: str | None, images: int | None = None) -> str:
    """What follows a row's name while it is not complete (" (running)", " (partial, 36 images)"), so a curve or
    cell of an unfinished row never reads as a final one; nothing for a complete row."""
    if status == "complete":
        return ""
    return f" ({status})" if images is None else f" ({status}, {images} image{'' if images == 1 else 's'})"


def subset_note(status: str | None, images: int, subset_size: int | None) -> str:
    """What follows the name of a complete row of fewer images than its suite's subset (``--max-images``), so it
    does not read like a row over the whole subset: " (20 of 200 images)"."""
    if status != "complete" or not subset_size or images >= subset_size:
        return ""
    return f" ({images} of {subset_size} images)"


def envelope_sources(parts: Iterable[tuple[float, str | None, int | None]]) -> str:
    """The (sigma, status, images) rows an envelope is taken over, e.g. "0.25 (running, 9 images), 0.5"."""
    return ", ".join(f"{sigma:g}{unfinished(status, images)}" for sigma, status, images in sorted(parts))
