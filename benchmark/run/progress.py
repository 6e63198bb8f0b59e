"""What a run tells its user while it works: a bar per row on a terminal; without one (CI logs, nohup, a queue),
a line per finished row and one every few minutes; both with the time left in the whole run at the rate measured
so far in this process."""

from __future__ import annotations

import math
import sys
import time

from tqdm.auto import tqdm


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class Progress:
    """Args:
    images_left: images the run has to certify, over all its rows.
    show: report at all (``--quiet`` turns the bars and lines off).
    every_s: seconds between lines within a row when there is no terminal.
    stream: where to write (standard error).
    """

    def __init__(self, images_left: int, show: bool = True, every_s: float = 180.0, stream=None):
        self.stream = stream or sys.stderr
        self.bars = show and self.stream.isatty()
        self.lines = show and not self.bars
        self.images_left, self.every_s = images_left, every_s
        self.spent_s, self.done = 0.0, 0
        self.last_line = time.monotonic()

    def bar(self, todo: list[int], label: str):
        return tqdm(todo, desc=label, unit="img", disable=not self.bars, file=self.stream)

    def time_left(self) -> float:
        """Seconds left in the run at this process's mean time per image so far (NaN before the first image)."""
        return self.spent_s / self.done * self.images_left if self.done else float("nan")

    def image(self, bar, label: str, row: tuple[int, int], seconds: float, samples_s: float) -> None:
        """One image certified: ``row`` is (images done, images of the row)."""
        self.done, self.images_left, self.spent_s = self.done + 1, self.images_left - 1, self.spent_s + seconds
        bar.set_postfix(samples_s=f"{samples_s:,.0f}", run_left=duration(self.time_left()))
        if self.lines and time.monotonic() - self.last_line >= self.every_s:
            self.say(
                f"{label}: {row[0]}/{row[1]} images, {samples_s:,.0f} samples/s, "
                f"~{duration(self.time_left())} left in the run"
            )

    def skip(self) -> None:
        """An image another process certified (or is certifying)."""
        self.images_left -= 1

    def row_end(self, label: str, status: str, row: tuple[int, int], samples_s: float) -> None:
        if self.lines:
            self.say(
                f"{label}: {status}, {row[0]}/{row[1]} images, {samples_s:,.0f} samples/s; "
                f"~{duration(self.time_left())} left in the run"
            )

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self.last_line = time.monotonic()
