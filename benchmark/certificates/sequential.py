"""Sequential CERTIFY: the same certificate as CERTIFY, decided with far fewer samples for most images.

Selection is CERTIFY's (``n0`` samples, the top class c_A). Then c_A's votes are counted at looks fixed in advance,
t_i = 100 * round(2^(i/2)) (deduplicated, below ``n_max``) and ``n_max``: 14 looks at n_max = 10,000. At look i the
one-sided Clopper-Pearson lower bound on p_A at level alpha_i is taken, with alpha_i = 0.2 alpha / (K - 1) before
the last look and 0.8 alpha at it, so the alphas sum to alpha; the running maximum of the bounds is kept. By the
union bound over the K looks, all K bounds hold together with probability at least 1 - alpha, so the maximum does
too, and stopping early only lowers what is claimed: the certificate is as valid as CERTIFY's at the same alpha.

A grid level r_j (a radius of the suite's grid) is certified once the bound reaches Phi(r_j / sigma). Sampling
stops at the first look where the next level up is futile: no higher level exists, or even the optimistic final
count, the votes so far plus the remaining samples at the one-sided beta = 0.01 upper bound of the rate so far,
stays below the count the last look would need for it. The certificate reports the radius sigma * Phi^-1(bound)
and the number of samples used. With ``grow_eps`` set, sampling also goes on while one more look could raise the
radius itself by more than ``grow_eps`` (so ACR is not cut by early stops), at the cost of more samples.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from scipy.stats import beta, norm

from benchmark.certificates.smoothing import (
    ABSTAIN,
    Certificate,
    _check,
    clopper_pearson_lower,
    radius_from_p,
    sample_counts,
)

BETA = 0.01


def looks(n_max: int, first: int = 100) -> list[int]:
    """The sample counts at which the bound is taken: first * round(2^(i/2)) below ``n_max``, then ``n_max``."""
    points, i = [], 0
    while (t := first * round(2 ** (i / 2))) < n_max:
        if not points or t > points[-1]:
            points.append(t)
        i += 1
    return [*points, n_max]


def look_alphas(k: int, alpha: float) -> list[float]:
    """alpha_i per look: 0.2 alpha shared by the looks before the last, 0.8 alpha at the last (sums to alpha)."""
    if k == 1:
        return [alpha]
    return [0.2 * alpha / (k - 1)] * (k - 1) + [0.8 * alpha]


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


def decide(
    draw: Callable[[int], int],
    sigma: float,
    n_max: int,
    alpha: float,
    radii: Sequence[float],
    alphas: Sequence[float] | None = None,
    grow_eps: float | None = None,
) -> tuple[float, int, int]:
    """The sequential decision on the top class's votes; ``draw(m)`` returns its votes among m new samples;
    ``alphas``: the level of each look (default :func:`look_alphas`: valid only if they sum to at most alpha).

    Returns:
        (running maximum of the lower bounds on p_A, votes counted, samples counted).
    """
    points = looks(n_max)
    alphas = look_alphas(len(points), alpha) if alphas is None else list(alphas)
    levels = sorted(float(norm.cdf(r / sigma)) for r in radii)  # Phi(r / sigma): the bound each level needs
    final_alpha = alphas[-1]
    best, k, t = 0.0, 0, 0
    for point, a in zip(points, alphas, strict=True):
        k += draw(point - t)
        t = point
        best = max(best, clopper_pearson_lower(k, t, a))
        if t == n_max:
            break
        higher = [p for p in levels if p > best]
        optimistic = k + _upper(k, t, BETA) * (n_max - t)
        needed = _needed(higher[0], n_max, final_alpha) if higher else None
        level_open = needed is not None and optimistic >= needed
        grows = grow_eps is not None and best > 0.5 and _could_grow(k, t, best, sigma, grow_eps, final_alpha, n_max)
        if not (level_open or grows):
            break
    return best, k, t


def _could_grow(k: int, t: int, best: float, sigma: float, eps: float, alpha: float, n_max: int) -> bool:
    """Whether the final look, at the rate so far, would raise the radius by more than ``eps``."""
    projected = clopper_pearson_lower(round(k / t * n_max), n_max, alpha)
    return projected > best and sigma * (norm.ppf(projected) - norm.ppf(best)) > eps


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
) -> Certificate:
    """Sequential CERTIFY (module docstring) of one image ``x`` ([C,H,W] in [0,1]); abstains when the bound never
    reaches 1/2. The certificate's ``n`` is the estimation samples used, ``n_used`` adds the selection samples."""
    _check(sigma, n_max, alpha, n0)
    selection = sample_counts(classifier, x, sigma, n0, batch_size, generator)
    c_a = int(selection.argmax())

    def draw(m: int) -> int:
        counts = sample_counts(classifier, x, sigma, m, batch_size, generator)
        return int(counts[c_a]) if c_a < len(counts) else 0

    bound, k, t = decide(draw, sigma, n_max, alpha, radii, grow_eps=grow_eps)
    n_used = int(selection.sum()) + t
    if bound < 0.5:
        return Certificate(ABSTAIN, 0.0, bound, k, t, n_used, "sequential")
    return Certificate(c_a, radius_from_p(sigma, bound), bound, k, t, n_used, "sequential")


__all__ = ["certify_sequential", "decide", "look_alphas", "looks"]
