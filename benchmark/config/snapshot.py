"""What a report needs to know of a suite and of the methods, frozen into one value: the reports take it as an
argument, so a table is a function of the results folder and this snapshot, never of whatever suite files and method
classes the checkout holds when it is regenerated. :func:`benchmark.config.suite.snapshot` builds one from a suite
file and the registry; a test or another checkout may write one by hand.

This module reads nothing (no suite file, no registry): ``benchmark.report`` imports it, and only it, from config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SuiteSnapshot:
    """How one suite's results are ranked, compared and coloured.

    Args:
        name: the suite.
        preferred_precision: the precision whose complete run a table ranks first in a cell.
        certificate: the run-level certificate whose runs the suite ranks (its ``certify``; "fixed" by default).
        published: whether the suite's results are committed and summarised in the README.
        whole_subset_only: whether a ranked run must have a published fit and have certified the suite's whole
            subset (a published suite with a file here; a suite known by no file ranks what it has).
        comparisons: the (A, B) method pairs the leaderboard compares at every base and sigma.
        attack_comparisons: the (A, B) pairs of the attack page, under the adaptive attack.
        families: method name -> family (the plots' hue); a method not named is "other".
        papers: (method, paper, summary) of the registered methods: what a model card says a method is.
    """

    name: str
    preferred_precision: str = "bf16"
    certificate: str = "fixed"
    published: bool = True
    whole_subset_only: bool = False
    comparisons: tuple[tuple[str, str], ...] = ()
    attack_comparisons: tuple[tuple[str, str], ...] = ()
    families: tuple[tuple[str, str], ...] = field(default=())
    papers: tuple[tuple[str, str, str], ...] = field(default=())

    def __post_init__(self):
        # hand-made snapshots may pass lists and a dict; stored as tuples so the value stays immutable and hashable
        object.__setattr__(self, "comparisons", tuple((a, b) for a, b in self.comparisons))
        object.__setattr__(self, "attack_comparisons", tuple((a, b) for a, b in self.attack_comparisons))
        families = self.families.items() if isinstance(self.families, Mapping) else self.families
        object.__setattr__(self, "families", tuple(sorted((str(m), str(f)) for m, f in families)))
        object.__setattr__(self, "papers", tuple(tuple(map(str, row)) for row in self.papers))

    def family(self, method: str) -> str:
        """The family of ``method`` ("other" for a method the snapshot does not name, e.g. an imported one)."""
        return dict(self.families).get(method, "other")

    def paper(self, method: str) -> tuple[str, str]:
        """(paper, summary) of ``method`` ("", "" for a method the registry does not hold, e.g. an external model)."""
        return next(((paper, summary) for m, paper, summary in self.papers if m == method), ("", ""))
