"""The certificate plug-in point: a :class:`Certifier` certifies one image with the noisy classifier(s) of a run's
cell and returns a :class:`~benchmark.certificates.smoothing.Certificate`.

Which one a cell uses: a method's ``Config`` may name its own certificate (a class attribute ``certificate``, e.g.
"cascade", built from that config by :meth:`Certifier.from_config`); otherwise the run's ``certify`` setting
("fixed" or "sequential") decides. The harness asks a certifier three things and never its name: at which of the
suite's sigmas a cell stands (:meth:`Certifier.cell_sigmas`), over which noise levels it votes
(:meth:`Certifier.sigmas`), and the certificate itself. Reports ask the certifier named in a record's ``mode`` how
far its records can reach (:meth:`Certifier.r_max`) and what its rows add to a table (:meth:`Certifier.row_notes`),
as pure functions of records. A certifier's extra record fields live in the certificate's ``details`` (written
only when present, so fixed-n records keep their form).

Each certifier states its alpha accounting in its docstring: the probability, over the noise, that it returns a
class with a radius that is not certified is at most the run's alpha.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch

from benchmark.certificates.sequential import ADAPTIVE, SEQUENTIAL, Design, certify_sequential_many
from benchmark.certificates.smoothing import Certificate, certify_counts, max_radius

Classifier = Callable[[torch.Tensor], torch.Tensor]


class Certifier:
    """A certificate procedure (module docstring). Subclasses set ``name`` (the records' ``mode``) and implement
    :meth:`certify`."""

    name: ClassVar[str]
    run_level: ClassVar[bool] = True  # a run may ask for it by name (False: only a method's config names it)
    pack: ClassVar[int] = 1  # images a run hands :meth:`certify_many` at once

    @classmethod
    def from_config(cls, method_config) -> Certifier:
        """The certifier a method's config asks for (its own settings, e.g. a cascade's noise levels)."""
        return cls()

    @classmethod
    def key_items(cls) -> dict:
        """What a run's record key holds of this certificate beyond its name: the settings that change its records
        and may change under the same name (none by default). Keys start with ``certify_``: no fit depends on them."""
        return {}

    def cell_sigmas(self, suite_sigmas: Sequence[float]) -> list[float]:
        """The sigmas of the suite at which a cell of this certificate stands: each of them by default."""
        return list(suite_sigmas)

    def sigmas(self, sigma: float) -> tuple[float, ...]:
        """The noise levels whose noisy classifiers a cell at ``sigma`` votes over, in the order :meth:`certify`
        takes them: the cell's own sigma by default."""
        return (float(sigma),)

    def certify(
        self,
        classifiers: Sequence[tuple[float, Classifier]],
        x: torch.Tensor,
        *,
        n0: int,
        n: int,
        alpha: float,
        batch_size: int,
        generator: torch.Generator,
        radii: Sequence[float] = (),
    ) -> Certificate:
        """The certificate of one image ``x`` ([C,H,W] in [0,1]) from ``(sigma, classifier)`` pairs, one per level of
        :meth:`sigmas`; all noise from ``generator``; ``radii``: the suite's grid (the levels a sequential test
        decides)."""
        raise NotImplementedError

    def certify_many(
        self,
        classifiers: Sequence[tuple[float, Classifier]],
        xs: Sequence[torch.Tensor],
        *,
        generators: Sequence[torch.Generator],
        n0: int,
        n: int,
        alpha: float,
        batch_size: int,
        radii: Sequence[float] = (),
    ) -> list[Certificate]:
        """The certificates of several images, each with its own generator; each is the one :meth:`certify` gives
        the image alone (a certifier that packs images into shared forward passes overrides this)."""
        sizes = {"n0": n0, "n": n, "alpha": alpha, "batch_size": batch_size, "radii": radii}
        return [self.certify(classifiers, x, generator=g, **sizes) for x, g in zip(xs, generators, strict=True)]

    # -- what reports ask, from records alone ---------------------------------------------------------------------
    @classmethod
    def r_max(cls, sigmas: Sequence[float], n: int, alpha: float) -> float:
        """The largest radius the certificate can give with ``n`` samples over ``sigmas`` (all votes for one class)."""
        return max_radius(max(sigmas), n, alpha)

    @classmethod
    def migrate(cls, row: dict) -> dict:
        """A record line of this certificate written by an older version, in today's form (``migrate`` calls it);
        as it is by default."""
        return row

    @classmethod
    def row_label(cls, sigmas: str | None) -> str:
        """What a table adds to the method's name of a row of this certificate (``sigmas``: the noise levels it
        voted over, "0.25/0.5/1", or None for one)."""
        return ""

    @classmethod
    def row_notes(cls, records) -> str | None:
        """What a table row of this certificate's records adds beside the numbers (``records``: rows of the results
        frame, with their ``details``); None: nothing."""
        return None


class FixedCertifier(Certifier):
    """CERTIFY of Cohen et al. (2019) with fixed ``n0`` selection and ``n`` estimation samples: one one-sided
    Clopper-Pearson bound at level alpha, so the certificate fails with probability at most alpha."""

    name = "fixed"

    def certify(self, classifiers, x, *, n0, n, alpha, batch_size, generator, radii=()) -> Certificate:
        ((sigma, classifier),) = classifiers
        return certify_counts(classifier, x, sigma, n0, n, alpha, batch_size, generator)


class SequentialCertifier(Certifier):
    """Sequential CERTIFY (:mod:`benchmark.certificates.sequential`): the same selection, c_A's votes bounded at
    looks fixed in advance with alpha shared over the looks by the union bound (0.2 alpha before the last look,
    0.8 alpha at it), so all bounds hold together with probability at least 1 - alpha; ``n`` is the most it
    draws. Several images are certified together, their looks packed into full forward passes."""

    name = "sequential"
    design: ClassVar[Design] = SEQUENTIAL
    pack: ClassVar[int] = 8  # images certified together by a run (their records do not depend on it)

    def certify(self, classifiers, x, *, n0, n, alpha, batch_size, generator, radii=()) -> Certificate:
        (cert,) = self.certify_many(
            classifiers, [x], generators=[generator], n0=n0, n=n, alpha=alpha, batch_size=batch_size, radii=radii
        )
        return cert

    def certify_many(self, classifiers, xs, *, generators, n0, n, alpha, batch_size, radii=()) -> list[Certificate]:
        ((sigma, classifier),) = classifiers
        return certify_sequential_many(
            classifier, xs, sigma, n0, n, alpha, radii, batch_size, generators, design=self.design, mode=self.name
        )


class AdaptiveCertifier(SequentialCertifier):
    """Adaptive sequential CERTIFY: the validity argument of ``sequential`` (a union bound over looks fixed in
    advance) with the design :data:`benchmark.certificates.sequential.ADAPTIVE`, chosen by simulation on validation
    vote rates (``python -m benchmark simulate``; ``leaderboards/certificates.md``): it gives an image whose p_A sits
    just below a grid level up at the level below sooner, which is where ``sequential`` spends most of its samples
    at n = 100,000. Its design is in the record key (a design chosen again is another configuration)."""

    name = "adaptive"
    design = ADAPTIVE

    @classmethod
    def key_items(cls) -> dict:
        return {"certify_design": dict(vars(cls.design))}
