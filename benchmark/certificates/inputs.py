"""What the public certify and predict accept, and what they leave as they found it.

An image is a float tensor ``[C,H,W]`` with every pixel finite and in [0, 1] (the unit every radius is in); anything
else is refused with one line naming what was given and what is expected, before a single sample is drawn (a NaN
pixel would otherwise be certified like any other image). A classifier module's train/eval modes are restored after
the call: the inference engine puts it in eval mode to vote, which must not leak into the caller's training loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def check_image(x: object) -> None:
    """A ValueError naming the fault unless ``x`` is a float ``[C,H,W]`` tensor of finite pixels in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor image [C,H,W] in [0,1], got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float image in [0,1], got dtype {x.dtype}: convert with x.float() / 255")
    if x.dim() != 3:
        hint = ": pass one image, e.g. x[0]" if x.dim() == 4 else ""
        raise ValueError(f"x must be one image [C,H,W], got shape {tuple(x.shape)}{hint}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x has NaN or infinite pixels: certify only finite images in [0,1]")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"x must lie in [0,1] (pixel units of every radius), got values in [{low:g}, {high:g}]")


@contextlib.contextmanager
def keeping_modes(classifier: object) -> Iterator[None]:
    """Restore every submodule's train/eval mode of ``classifier`` (if it is a module) on exit."""
    modes = [(m, m.training) for m in classifier.modules()] if isinstance(classifier, torch.nn.Module) else []
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)
