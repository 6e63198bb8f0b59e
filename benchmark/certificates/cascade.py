"""Cascaded (multi-scale) CERTIFY: Jeong & Shin (NeurIPS 2023), "Multi-scale diffusion denoised smoothing",
Algorithm of ``certify.py`` in jh-jeong/smoothing-multiscale (../shared/REFERENCES.md section 4), built from this
harness' sampler and bounds.

The cascaded classifier at x is the smoothed classifier of the first noise level, tried from the largest sigma_1 to
the smallest sigma_K, at which some class has probability at least p0; it abstains if none has. Per stage k (on
fresh noise from the image's generator): ``n0`` selection samples pick c_k, then ``n`` estimation samples count
every class. With the stage's bounds:

* lower bound on p(c_k) >= p0: certify c_k at this stage, R = sigma_k (Phi^-1(p_low) - Phi^-1(p0)), capped by every
  earlier stage j (which abstained confidently) at -R_neg_j, R_neg_j = sigma_j (Phi^-1(u_j) - Phi^-1(p0)) with u_j
  the largest upper bound on p(c) at stage j over the classes c != c_k;
* the upper bounds of all classes below p0: this stage abstains confidently; go on to the next smaller sigma;
* otherwise (undecided): abstain. Abstain too when every stage abstained.

Why the cap makes it sound: within ||delta|| < R, Phi^-1 of every smoothed probability moves by at most
||delta|| / sigma (Salman et al. 2019, Lemma 2). So p(c_k) stays above p0 at stage k, and at each earlier stage j
every class other than c_k stays below p0: such a stage either abstains or outputs c_k itself. Either way the
cascade outputs c_k everywhere in the ball, provided the bounds used hold.

The failure probability (deviation from the released code): it gives each stage its own alpha / (k + 1) for the
top class only, which sums to 1.83 alpha over three stages and leaves the runner-up bounds of the cap (Goodman's
asymptotic multinomial interval) outside the budget. Here the bounds are exact and share alpha by the union bound:
with K stages there are 2K - 1 groups of statements (a lower bound at each stage; upper bounds on every class at
each stage but the last, whose uppers nothing uses), each group gets alpha / (2K - 1), and within an upper-bound
group each of the C classes gets alpha / ((2K - 1) C) for a one-sided Clopper-Pearson bound (Bonferroni: exact,
where Goodman's interval is asymptotic). All statements hold together with probability at least 1 - alpha, and on
that event every certificate the cascade can return is correct, whichever path the samples take: the overall
failure probability is at most alpha (tests/test_cascade.py checks it by simulation, and that the same check fails
a cascade without the cap).

A second deviation: a stage abstains confidently only when the upper bounds of *all* classes are below p0; the
released code tests the selected class's bound alone. The n0 selection samples can pick a class that is not the
top one, and the cap needs every class other than the certified one below p0 at that stage, so checking one class
would let a stage pass on to a smaller sigma while another class could still reach p0 there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from scipy.stats import beta, norm

from benchmark.certificates.certifier import Certifier
from benchmark.certificates.smoothing import (
    ABSTAIN,
    Certificate,
    _check,
    clopper_pearson_lower,
    max_radius,
    sample_counts,
)


def clopper_pearson_upper(k: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson upper bound on a binomial proportion."""
    return 1.0 if k >= n else float(beta.ppf(1.0 - alpha, k + 1, n - k))


def stage_alphas(num_stages: int, alpha: float) -> tuple[list[float], list[float]]:
    """Per stage: the level of the lower bound on the selected class, and of the upper-bound group over all classes
    (0 for the last stage: nothing uses it); they sum to ``alpha`` (module docstring)."""
    share = alpha / (2 * num_stages - 1)
    return [share] * num_stages, [share] * (num_stages - 1) + [0.0]


@dataclass(frozen=True)
class Stage:
    """What one stage of the cascade measured: its sigma, the selected class, the bounds and the samples drawn."""

    sigma: float
    selected: int
    p_low: float
    n_top: int
    uppers: tuple[float, ...]
    samples: int

    def upper_other(self, cls: int) -> float:
        """The largest upper bound over the classes other than ``cls``."""
        return max((u for c, u in enumerate(self.uppers) if c != cls), default=0.0)


def decide_cascade(stages: Sequence[Stage], p0: float) -> tuple[int, float, int | None, float | None]:
    """The cascade's decision over the stages measured so far (largest sigma first), as a pure function of them.

    Returns:
        (prediction or ABSTAIN, radius, index of the deciding stage or None, the cap r_neg from the earlier stages
        (the largest; binding when -r_neg is below the stage's own radius) or None); the
        caller stops measuring once the last stage is not a confident abstention.
    """
    earlier: list[Stage] = []
    for k, stage in enumerate(stages):
        if stage.p_low >= p0:
            radius = stage.sigma * (norm.ppf(stage.p_low) - norm.ppf(p0))
            caps = [s.sigma * (norm.ppf(max(s.upper_other(stage.selected), 1e-300)) - norm.ppf(p0)) for s in earlier]
            r_neg = max(caps) if caps else None
            if r_neg is not None:
                radius = min(radius, -r_neg)
            if radius <= 0.0:
                return ABSTAIN, 0.0, k, r_neg
            return stage.selected, float(radius), k, r_neg
        if max(stage.uppers) >= p0:  # undecided at this scale
            return ABSTAIN, 0.0, k, None
        earlier.append(stage)
    return ABSTAIN, 0.0, None, None


def measure_stage(
    counts_of: Callable[[int], torch.Tensor], sigma: float, n0: int, n: int, low_alpha: float, up_alpha: float
) -> Stage:
    """One stage: ``counts_of(m)`` classifies m fresh noisy samples at this stage's sigma and returns class counts."""
    selected = int(counts_of(n0).argmax())
    counts = counts_of(n).cpu().tolist()
    n_top = int(counts[selected]) if selected < len(counts) else 0
    per_class = up_alpha / len(counts) if up_alpha > 0 else 0.0
    uppers = tuple(clopper_pearson_upper(int(c), n, per_class) if per_class > 0 else 1.0 for c in counts)
    return Stage(float(sigma), selected, clopper_pearson_lower(n_top, n, low_alpha), n_top, uppers, n0 + n)


def certify_cascade(
    stage_classifiers: Sequence[tuple[float, Callable]],
    x: torch.Tensor,
    n0: int,
    n: int,
    alpha: float,
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    p0: float = 0.5,
) -> Certificate:
    """Cascaded CERTIFY of one image ``x`` over ``stage_classifiers``: (sigma, classifier of noisy [0,1] images)
    pairs, in any order (tried from the largest sigma down). Its ``details`` hold the deciding ``stage`` (0 = the
    largest sigma; absent when every stage abstained), the ``sigma_used`` it certified at (absent on abstain) and
    the cap ``r_neg`` applied (absent: none); ``n_used`` counts the samples drawn over all stages."""
    ordered = sorted(stage_classifiers, key=lambda pair: -pair[0])
    if not ordered:
        raise ValueError("a cascade needs at least one (sigma, classifier) stage")
    for sigma, _ in ordered:
        _check(sigma, n, alpha, n0)
    if not 0.5 <= p0 < 1.0:  # below 1/2 a class reaching p0 need not be the top class: no certificate
        raise ValueError(f"p0 must lie in [0.5, 1), got {p0!r}")
    lows, ups = stage_alphas(len(ordered), alpha)
    stages: list[Stage] = []
    for (sigma, classifier), low_alpha, up_alpha in zip(ordered, lows, ups, strict=True):
        stages.append(
            measure_stage(
                lambda m, c=classifier, s=sigma: sample_counts(c, x, s, m, batch_size, generator),
                sigma,
                n0,
                n,
                low_alpha,
                up_alpha,
            )
        )
        last = stages[-1]
        if last.p_low >= p0 or max(last.uppers) >= p0:  # decided or undecided: no further stage is needed
            break
    prediction, radius, k, r_neg = decide_cascade(stages, p0)
    used = sum(s.samples for s in stages)
    deciding = stages[k] if k is not None else stages[-1]
    details = {
        "stage": k,
        "sigma_used": deciding.sigma if prediction != ABSTAIN else None,
        "r_neg": None if r_neg is None else float(r_neg),
    }
    return Certificate(
        prediction,
        radius,
        deciding.p_low,
        deciding.n_top,
        n,
        used,
        mode="cascade",
        details={key: v for key, v in details.items() if v is not None},
    )


class CascadeCertifier(Certifier):
    """The cascade (module docstring) as a certificate plug-in: a method's config names it (``certificate =
    "cascade"``) with its noise levels ``sigmas`` and ``p0``. The cell stands at the smallest sigma of the set (run
    when that sigma is selected) and votes over the noisy classifiers of every level. Alpha: shared by the union
    bound over the 2K - 1 groups of bounds, so the cascade fails with probability at most alpha.

    Its records' ``details``: the deciding ``stage`` (0: the largest sigma; absent when no stage decided),
    ``sigma_used`` (the sigma it certified at; absent on abstain) and the binding cap ``r_neg`` (absent: none)."""

    name = "cascade"
    run_level = False

    def __init__(self, stage_sigmas: Sequence[float], p0: float = 0.5):
        self.stage_sigmas = tuple(sorted(float(s) for s in stage_sigmas))
        self.p0 = p0

    @classmethod
    def from_config(cls, method_config) -> CascadeCertifier:
        return cls(method_config.sigmas, method_config.p0)

    def cell_sigmas(self, suite_sigmas: Sequence[float]) -> list[float]:
        return [self.stage_sigmas[0]] if self.stage_sigmas[0] in suite_sigmas else []

    def sigmas(self, sigma: float) -> tuple[float, ...]:
        return self.stage_sigmas

    def certify(self, classifiers, x, *, n0, n, alpha, batch_size, generator, radii=()) -> Certificate:
        return certify_cascade(classifiers, x, n0, n, alpha, batch_size, generator, p0=self.p0)

    @classmethod
    def r_max(cls, sigmas: Sequence[float], n: int, alpha: float) -> float:
        # the largest sigma reaches farthest, at its first stage's share of alpha
        return max_radius(max(sigmas), n, alpha / (2 * len(sigmas) - 1))

    @classmethod
    def migrate(cls, row: dict) -> dict:
        """Records written before certificates owned their details carried these fields beside the common ones."""
        moved = {k: row[k] for k in ("stage", "sigma_used", "r_neg") if k in row}
        if not moved:
            return row
        rest = {k: v for k, v in row.items() if k not in moved}
        return {**rest, "details": {k: v for k, v in moved.items() if v is not None}}

    @classmethod
    def row_label(cls, sigmas: str | None) -> str:
        return f" (cascade over sigma {sigmas})"

    @classmethod
    def row_notes(cls, records) -> str | None:
        """Where the certified images were decided: per sigma, the share of all images certified there, and the
        share certified there *correctly* (a stage that certifies a wrong class still ends the cascade)."""
        used = [(d or {}).get("sigma_used") for d in records["details"]]
        correct = list(records["correct"])
        parts = []
        for sigma in sorted({s for s in used if s is not None}, reverse=True):
            here = [c for s, c in zip(used, correct, strict=True) if s == sigma]
            parts.append(
                f"{100 * len(here) / len(used):.1f}% at {sigma:g} ({100 * sum(here) / len(used):.1f}% correctly)"
            )
        return ", ".join(parts) or "none certified"
