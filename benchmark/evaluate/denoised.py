"""What a denoiser method shows its base: the images and denoisers of ``python -m benchmark preview-denoised``, as
fitted for the suite's rows; :func:`benchmark.report.previews.denoised_preview` draws them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch

from benchmark.config.registry import METHODS
from benchmark.config.run_config import RunConfig, build_run_config
from benchmark.data.datasets import subset_indices
from benchmark.errors import BenchmarkError
from benchmark.run.measure import is_denoiser
from benchmark.run.session import Session


class Preview(NamedTuple):
    """One denoiser's grid: ``denoise(z, sigma)`` at each of ``cfg.sigmas`` on ``images``, titled ``title``."""

    cfg: RunConfig
    name: str
    images: torch.Tensor
    denoise: Callable[[torch.Tensor, float], torch.Tensor]
    title: str


def denoised_previews(suite: str, values: dict, count: int) -> Iterator[Preview]:
    """A :class:`Preview` per denoiser among ``values["methods"]`` (default: the suite's), on ``count`` images of the
    test subset, each yielded once its fits are found (published or cached fits of either precision) or made."""
    cfg = build_run_config(suite, values)
    names = [m for m in METHODS.resolve(values["methods"] or cfg.methods) if is_denoiser(METHODS.get(m))]
    if not names:
        raise BenchmarkError(f"no denoiser among the methods of suite {cfg.suite!r}: name one with --methods")
    session = Session(cfg)
    # The preview denoises in fp32 whatever the fit's precision, so a denoiser fitted under the other precision
    # (say bf16 on another machine, then published) is shown rather than fitted again here.
    other = Session(build_run_config(suite, values | {"precision": "fp32" if session.precision == "bf16" else "bf16"}))
    data = session.eval_data()
    picked = subset_indices(len(data), cfg.start, cfg.skip, count, cfg.seed)
    images = torch.stack([data[i][0] for i in picked]).to(session.device)
    base = cfg.bases[0]
    for name in names:
        methods, sources = {}, []
        for sigma in cfg.sigmas:
            for s in (session, other):
                if (method := s.stored(s.cell(name, base, sigma))) is not None:
                    break
            else:
                s, method = session, session.fit(session.cell(name, base, sigma))[0]
            methods[sigma] = method
            sources.append(f"{sigma:g}: {s.precision}")
        title = f"{cfg.suite}: what {base} sees through {name}"
        if methods[cfg.sigmas[0]].needs_fit():
            title += f" (fits by sigma, {'; '.join(sources)})"
        denoise = lambda z, s, methods=methods: methods[s].denoise(z, s)  # noqa: E731
        yield Preview(cfg, name, images, denoise, title)
