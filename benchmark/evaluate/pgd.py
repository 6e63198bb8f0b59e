"""Empirical attacks: the one PGD, in [0, 1] pixel units, used by adversarial training, ``attack`` and ``audit``.

* :func:`pgd`: projected gradient ascent on a per-example loss inside an l-infinity or l2 ball around ``x``, with a
  random start and restarts (Madry et al. 2018), clamped to the image box [0, 1]. The loss is whatever the caller
  differentiates: the attack is *adaptive* when that loss runs through every trained part of the classifier
  (prompts, adapters, denoisers), as it always does here unless a caller asks for another model on purpose (the
  non-adaptive attack of ``prompt_at``).
* :func:`smoothed_loss`: minus the log of the Monte-Carlo *soft* smoothed classifier's probability of a class,
  -log( (1/m) sum_i softmax(f(x + delta_i))_c ), the SmoothAdv objective (Salman et al. 2019), whose gradient is an
  expectation over noise (EOT); with ``m`` fresh draws per step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchmark.certificates.smoothing import add_noise

Loss = Callable[[torch.Tensor], torch.Tensor]  # x_adv [B,...] -> per-example loss [B] to maximise


def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def _per_example(value, x: torch.Tensor) -> torch.Tensor:
    """A scalar, or one value per example, as a tensor that broadcasts against ``x`` [B, ...]."""
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    return t.view(-1, *([1] * (x.dim() - 1))) if t.dim() else t


def project(delta: torch.Tensor, norm: str, eps) -> torch.Tensor:
    """``delta`` projected onto the ``norm`` ball of radius ``eps`` (per example when ``eps`` is a tensor)."""
    eps_t = _per_example(eps, delta)
    if norm == "linf":
        return torch.maximum(torch.minimum(delta, eps_t), -eps_t)
    if norm == "l2":
        return delta * torch.clamp(eps_t / _norms(delta), max=1.0)
    raise ValueError(f"norm must be linf or l2, got {norm!r}")


def random_start(x: torch.Tensor, norm: str, eps, generator: torch.Generator | None) -> torch.Tensor:
    """A uniform point of the ball (l-infinity), or a random direction at a uniform fraction of the radius (l2)."""
    eps_t = _per_example(eps, x)
    if norm == "linf":
        return (2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1) * eps_t
    direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    scale = torch.rand((len(x),), generator=generator, device=x.device, dtype=x.dtype).view_as(_norms(direction))
    return direction / _norms(direction) * scale * eps_t


def pgd(
    loss: Loss,
    x: torch.Tensor,
    *,
    norm: str,
    eps,
    step,
    steps: int,
    restarts: int = 1,
    generator: torch.Generator | None = None,
    start: bool = True,
) -> torch.Tensor:
    """The point of the ``norm`` ball of radius ``eps`` around ``x`` (intersected with [0, 1]) where ``loss`` is
    largest among ``restarts`` PGD runs of ``steps`` steps of size ``step`` (sign of the gradient for l-infinity,
    normalised gradient for l2). ``eps`` and ``step`` may be per-example tensors (an audit's radii)."""
    if steps < 0 or restarts < 1:
        raise ValueError("steps must be >= 0 and restarts >= 1")
    x = x.detach()
    step_t = _per_example(step, x)
    best, best_loss = x.clone(), torch.full((len(x),), -float("inf"), device=x.device)
    for _ in range(restarts):
        delta = random_start(x, norm, eps, generator) if start else torch.zeros_like(x)
        delta = (x + delta).clamp(0, 1) - x
        for _ in range(steps):
            delta.requires_grad_(True)
            with torch.enable_grad():
                grad = torch.autograd.grad(loss(x + delta).sum(), delta)[0]
            with torch.no_grad():
                move = grad.sign() if norm == "linf" else grad / _norms(grad)
                delta = project(delta + step_t * move, norm, eps)
                delta = (x + delta).clamp(0, 1) - x
        if restarts == 1:  # nothing to choose among: spare the loss's extra forward pass
            return (x + delta).detach()
        with torch.no_grad():
            final = loss(x + delta).detach()
            better = final > best_loss
            best[better] = (x + delta)[better]
            best_loss = torch.where(better, final, best_loss)
    return best.detach()


def cross_entropy(model: torch.nn.Module, y: torch.Tensor) -> Loss:
    """The usual untargeted loss of a deterministic classifier."""
    return lambda x_adv: F.cross_entropy(model(x_adv).float(), y, reduction="none")


def smoothed_loss(
    model: torch.nn.Module,
    c: torch.Tensor,
    sigma: float,
    m: int,
    generator: torch.Generator | None,
    noise: torch.Tensor | None = None,
) -> Loss:
    """SmoothAdv's objective against class ``c`` of the soft smoothed classifier, with ``m`` fresh noise draws per
    call, or the fixed draws ``noise`` [m, B, ...] (SmoothAdv's training attack keeps them over its steps)."""

    def loss(x_adv: torch.Tensor) -> torch.Tensor:
        batch = x_adv.repeat_interleave(m, dim=0)
        noisy = add_noise(batch, sigma, generator) if noise is None else batch + noise.transpose(0, 1).flatten(0, 1)
        probs = F.softmax(model(noisy).float(), dim=1).view(len(x_adv), m, -1)
        return -torch.log(probs.mean(dim=1).gather(1, c.view(-1, 1)).squeeze(1).clamp_min(1e-12))

    return loss
