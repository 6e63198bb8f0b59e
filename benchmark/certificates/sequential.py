"""Sequential CERTIFY: the same certificate as CERTIFY, decided with far fewer samples for most images.

Selection is CERTIFY's (``n0`` samples, the top class c_A). Then c_A's votes are counted at looks fixed in advance
by a :class:`Design`: t_i = first * round(2^(i * growth)) (deduplicated, below ``n_max``) and ``n_max``. At look i
the one-sided Clopper-Pearson lower bound on p_A at level alpha_i is taken, with alpha_i = (1 - final_share) alpha
/ (K - 1) before the last look and final_share * alpha at it, so the alphas sum to alpha; the running maximum of
the bounds is kept.

Validity. Let p be c_A's vote probability (c_A is fixed by the selection samples, which are independent of the
rest). Imagine the stream of estimation samples continued to ``n_max``; the event E_i = {p < L_i}, with L_i the
bound at look i, concerns the first t_i samples only, and t_i and alpha_i are fixed before any sample is drawn, so
P(E_i) <= alpha_i exactly as for CERTIFY with n = t_i. By the union bound, P(some E_i) <= sum alpha_i = alpha.
Outside that event every bound, so their running maximum, lies below p, whatever rule chooses when to stop: the
stopping rule (below) only decides which of the L_i are ever computed, and stopping early can only lower the
maximum. Hence the radius sigma * Phi^-1(max L_i) is certified with probability at least 1 - alpha, as
CERTIFY's is; abstaining when the maximum stays below 1/2 is CERTIFY's rule too.

Stopping rule. A grid level r_j (a radius of the suite's grid) is certified once the bound reaches Phi(r_j /
sigma). Sampling stops at the first look where the next level up is futile: no higher level exists, or the
optimistic final count, the votes so far plus the remaining samples at the one-sided ``futility_beta`` upper
bound of the rate so far, stays below the count the last look would need for it. A small ``futility_beta``
(today's ``sequential``: 0.01) samples on while the level is barely possible, which costs most on images whose
p_A sits near a level; a larger one (``adaptive``) gives such an image up at the level below sooner, which costs
at most a near-threshold image certified one level lower than fixed n would (a matter of agreement with fixed n,
never of validity). With ``grow_eps`` set, sampling also goes on while one more look could raise the radius itself
by more than ``grow_eps`` (so ACR is not cut by early stops), at the cost of more samples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import torch
from scipy.stats import beta, norm

from benchmark.certificates.sampling import packed_counts
from benchmark.certificates.smoothing import (
    ABSTAIN,
    Certificate,
    _check,
    clopper_pearson_lower,
    radius_from_p,
)


@dataclass(frozen=True)
class Design:
    """A sequential test: where the looks are, how alpha is shared over them, and when a level is futile.

    Attributes:
        first: the first look (samples after selection).
        growth: log2 of the ratio between consecutive looks (0.5: each look about sqrt(2) times the last).
        final_share: the share of alpha spent at the last look (the rest shared equally by the earlier ones).
        futility_beta: the one-sided level of the optimistic upper bound on the rate that the stopping rule uses.
    """

    first: int = 100
    growth: float = 0.5
    final_share: float = 0.8
    futility_beta: float = 0.01

    def looks(self, n_max: int) -> list[int]:
        """The sample counts at which the bound is taken: first * round(2^(i * growth)) below ``n_max``, then
        ``n_max``."""
        points, i = [], 0
        while (t := self.first * round(2 ** (i * self.growth))) < n_max:
            if not points or t > points[-1]:
                points.append(t)
            i += 1
        return [*points, n_max]

    def alphas(self, k: int, alpha: float) -> list[float]:
        """alpha_i per look: ``final_share`` of alpha at the last, the rest shared by the others (sums to alpha)."""
        if k == 1:
            return [alpha]
        return [(1 - self.final_share) * alpha / (k - 1)] * (k - 1) + [self.final_share * alpha]


SEQUENTIAL = Design()  # the ``sequential`` certificate (its records were made with it; never changed)
# The ``adaptive`` certificate: the design ``python -m benchmark simulate`` chose on validation vote rates
# (leaderboards/certificates.md). The first choice, on the test images' rates, was final_share=0.5,
# futility_beta=0.2; on validation images it strays 2.5 points from fixed n, past the rule's 2.
ADAPTIVE = Design(final_share=0.8, futility_beta=0.1)


def looks(n_max: int, first: int = 100) -> list[int]:
    """The looks of today's design (see :meth:`Design.looks`)."""
    return Design(first=first).looks(n_max)


def look_alphas(k: int, alpha: float) -> list[float]:
    """alpha_i of today's design: 0.2 alpha shared by the looks before the last, 0.8 alpha at the last."""
    return SEQUENTIAL.alphas(k, alpha)


def _upper(k: int, t: int, level: float) -> float:
    return 1.0 if k >= t else float(beta.ppf(1.0 - level, k + 1, t - k))


@functools.lru_cache(maxsize=4096)
def _needed(p: float, n: int, alpha: float) -> int | None:
    """The fewest votes out of ``n`` whose lower bound at ``alpha`` reaches ``p`` (None: not even all n)."""
    if clopper_pearson_lower(n, n, alpha) < p:
        return None
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if clopper_pearson_lower(mid, n, alpha) >= p:
            hi = mid
        else:
            lo = mid + 1
    return lo


Decision = Generator[int, int, tuple[float, int, int]]


def decision(
    sigma: float,
    n_max: int,
    alpha: float,
    radii: Sequence[float],
    design: Design = SEQUENTIAL,
    alphas: Sequence[float] | None = None,
    grow_eps: float | None = None,
) -> Decision:
    """The sequential decision on the top class's votes as a coroutine: it yields how many new samples it wants and
    is sent c_A's votes among them; it returns (running maximum of the lower bounds on p_A, votes, samples).
    ``alphas``: the level of each look (default the design's; valid only if they sum to at most alpha)."""
    points = design.looks(n_max)
    alphas = design.alphas(len(points), alpha) if alphas is None else list(alphas)
    levels = sorted(float(norm.cdf(r / sigma)) for r in radii)  # Phi(r / sigma): the bound each level needs
    final_alpha = alphas[-1]
    best, k, t = 0.0, 0, 0
    for point, a in zip(points, alphas, strict=True):
        k += yield point - t
        t = point
        best = max(best, clopper_pearson_lower(k, t, a))
        if t == n_max:
            break
        higher = [p for p in levels if p > best]
        optimistic = k + _upper(k, t, design.futility_beta) * (n_max - t)
        needed = _needed(higher[0], n_max, final_alpha) if higher else None
        level_open = needed is not None and optimistic >= needed
        grows = grow_eps is not None and best > 0.5 and _could_grow(k, t, best, sigma, grow_eps, final_alpha, n_max)
        if not (level_open or grows):
            break
    return best, k, t


def decide(
    draw: Callable[[int], int],
    sigma: float,
    n_max: int,
    alpha: float,
    radii: Sequence[float],
    alphas: Sequence[float] | None = None,
    grow_eps: float | None = None,
    design: Design = SEQUENTIAL,
) -> tuple[float, int, int]:
    """:func:`decision` driven by ``draw(m)``, which returns c_A's votes among m new samples."""
    steps = decision(sigma, n_max, alpha, radii, design, alphas, grow_eps)
    try:
        wanted = next(steps)
        while True:
            wanted = steps.send(draw(wanted))
    except StopIteration as done:
        return done.value


def _could_grow(k: int, t: int, best: float, sigma: float, eps: float, alpha: float, n_max: int) -> bool:
    """Whether the final look, at the rate so far, would raise the radius by more than ``eps``."""
    projected = clopper_pearson_lower(round(k / t * n_max), n_max, alpha)
    return projected > best and sigma * (norm.ppf(projected) - norm.ppf(best)) > eps


def certificate_of(c_a: int, bound: float, k: int, t: int, n0_used: int, sigma: float, mode: str) -> Certificate:
    """The certificate of a finished decision: c_A with the radius of the bound, or an abstention below 1/2; its
    ``n`` is the estimation samples used, ``n_used`` adds the selection samples."""
    if bound < 0.5:
        return Certificate(ABSTAIN, 0.0, bound, k, t, n0_used + t, mode)
    return Certificate(c_a, radius_from_p(sigma, bound), bound, k, t, n0_used + t, mode)


@torch.no_grad()
def certify_sequential(
    classifier,
    x: torch.Tensor,
    sigma: float,
    n0: int,
    n_max: int,
    alpha: float,
    radii: Sequence[float],
    batch_size: int = 1000,
    generator: torch.Generator | None = None,
    grow_eps: float | None = None,
    design: Design = SEQUENTIAL,
    mode: str = "sequential",
) -> Certificate:
    """Sequential CERTIFY (module docstring) of one image ``x`` ([C,H,W] in [0,1]) under ``design``; abstains when
    the bound never reaches 1/2."""
    (cert,) = certify_sequential_many(
        classifier, [x], sigma, n0, n_max, alpha, radii, batch_size, [generator], grow_eps, design, mode
    )
    return cert


@torch.no_grad()
def certify_sequential_many(
    classifier,
    xs: Sequence[torch.Tensor],
    sigma: float,
    n0: int,
    n_max: int,
    alpha: float,
    radii: Sequence[float],
    batch_size: int,
    generators: Sequence[torch.Generator | None],
    grow_eps: float | None = None,
    design: Design = SEQUENTIAL,
    mode: str = "sequential",
) -> list[Certificate]:
    """Sequential CERTIFY of several images at once: each round packs every undecided image's next request (its
    selection samples, then its next look) into full forward passes (:func:`packed_counts`). Each image's noise
    comes from its own generator in the order it alone would draw it, so its certificate is the one it gets
    certified alone, whatever the images beside it or the batch size."""
    _check(sigma, n_max, alpha, n0)
    if len(xs) != len(generators):
        raise ValueError(f"one generator per image: {len(xs)} images, {len(generators)} generators")
    steps: list[Decision | None] = [None] * len(xs)  # None: still selecting
    wanted = {i: n0 for i in range(len(xs))}
    c_a, selected, done = [0] * len(xs), [0] * len(xs), {}
    while wanted:
        order = sorted(wanted)
        counts = packed_counts(classifier, [(xs[i], sigma, wanted[i], generators[i]) for i in order], batch_size)
        for i, votes in zip(order, counts, strict=True):
            if steps[i] is None:  # the selection samples: c_A, then the decision's first request
                c_a[i], selected[i] = int(votes.argmax()), int(votes.sum())
                steps[i] = decision(sigma, n_max, alpha, radii, design, grow_eps=grow_eps)
                wanted[i] = next(steps[i])
                continue
            try:
                wanted[i] = steps[i].send(int(votes[c_a[i]]) if c_a[i] < len(votes) else 0)
            except StopIteration as finished:
                del wanted[i]
                done[i] = certificate_of(c_a[i], *finished.value, selected[i], sigma, mode)
    return [done[i] for i in range(len(xs))]


__all__ = [
    "SEQUENTIAL",
    "Design",
    "certify_sequential",
    "certify_sequential_many",
    "decide",
    "decision",
    "look_alphas",
    "looks",
]
