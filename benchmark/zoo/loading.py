"""``load(suite, method, base, sigma)``: a ranked row's smoothed classifier, from its published fit only.

The row's run says what it was certified with: its configuration (hash), precision, engine and the SHA-256 of each
fitted state. The model is rebuilt through a run's own session from the suite's settings, and refused in one line
unless the rebuilt configuration hashes to the run's and every state is the published file whose SHA-256 the run
recorded: a missing, damaged or different fit is an error, never a silent fallback to the local cache or a refit.
With the run's settings, ``certify(x)`` of test image ``i`` (or ``certify(x, idx=i)``) gives the record the run
committed for it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from benchmark.certificates.device import Precision
from benchmark.certificates.engines import ENGINES, build_engine
from benchmark.certificates.registry import certifier_for
from benchmark.certificates.smoothing import predict_from_counts, sample_counts
from benchmark.config.run_config import build_run_config
from benchmark.config.suite import PROJECT_ROOT
from benchmark.errors import BenchmarkError
from benchmark.run.plan import Cell
from benchmark.run.runner import fit_states, noise, protocol
from benchmark.run.session import Session
from benchmark.run.store import Fit, FitStore
from benchmark.zoo.listing import RESULTS, ranked_run


class PublishedFits(FitStore):
    """The fit store as the zoo reads it: published states only (fits, and bases the suite trains), never the local
    cache, and nothing is ever fitted."""

    def _sources(self, name: str, fhash: str, kind: str) -> list[Path]:
        return [self.published_path(name, fhash)]

    def get_or_fit(self, name, fhash, fit_fn, device="cpu", kind="fits") -> Fit:
        found = self.load(name, fhash, device, kind)
        if found is None:
            where = self.published_path(name, fhash)
            raise BenchmarkError(
                f"{name} {fhash} is not published at {where}: restore it with 'git checkout -- {where}', or publish "
                "it from the cache that holds it (python -m benchmark publish-fits); the zoo never fits or falls "
                "back to the local cache"
            )
        return found


def _digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()


class SmoothedModel:
    """A ranked row's smoothed classifier. ``certify`` and ``predict`` default to the suite's protocol (n0, n,
    alpha, certificate, batch size, radius grid) as the row was certified; each is overridable per call.

    Attributes:
        info: the row (suite, method, base, sigma, precision, engine, config hash, fit hashes and SHA-256s).
        noisy_classifiers: ``{sigma: module}``, the plain noisy classifiers (fp32, eval mode; one per noise level
            the certificate votes over: several for a cascade).
    """

    def __init__(self, session: Session, cell: Cell, classifiers: list[tuple[float, nn.Module]], plain, info: dict):
        self.session, self.cell, self.info = session, cell, info
        self.classifiers = classifiers
        self.noisy_classifiers: dict[float, nn.Module] = plain
        self._index: dict[str, int] | None = None

    @property
    def noisy_classifier(self) -> nn.Module:
        """The plain module that maps noisy images in [0, 1] to logits (for attacks and one's own analysis)."""
        if len(self.noisy_classifiers) != 1:
            levels = "/".join(f"{s:g}" for s in self.noisy_classifiers)
            raise BenchmarkError(f"{self.cell.method} votes over sigma {levels}: use noisy_classifiers[sigma]")
        return next(iter(self.noisy_classifiers.values()))

    @property
    def device(self) -> torch.device:
        return self.session.device

    def index_of(self, x: torch.Tensor) -> int | None:
        """The index of image ``x`` in the suite's evaluation split (by its exact pixels), or None: an image of the
        split certified without ``idx`` still gets its own noise stream, so its committed record reproduces."""
        if self._index is None:
            try:
                data = self.session.eval_data()
            except BenchmarkError:  # the suite's data is not on this machine: no image is one of its images
                data = []
            self._index = {_digest(data[i][0]): i for i in range(len(data))}
        return self._index.get(_digest(x))

    def _generators(self, xs: list[torch.Tensor], idx) -> list[torch.Generator]:
        if idx is None:
            found = [self.index_of(v) for v in xs]
            indices = [i if i is not None else position for position, i in enumerate(found)]
        else:
            indices = [int(i) for i in torch.as_tensor(idx).reshape(-1).tolist()]
        if len(indices) != len(xs):
            raise BenchmarkError(f"{len(xs)} images but {len(indices)} indices: give one idx per image")
        return noise(self.session.cfg, indices, self.device)

    def certify(self, x: torch.Tensor, *, idx=None, certificate: str | None = None, **overrides):
        """The certificate of image ``x`` ([C,H,W] in [0, 1]; a batch [B,C,H,W] gives a list), under the suite's
        protocol (``overrides``: n0, n, alpha, batch_size, radii; ``certificate``: another run-level one).

        The noise of an image is the run's stream of dataset index ``idx`` (one per image), so ``certify(x, idx=i)``
        of test image i reproduces its committed record. Without ``idx``, an image of the suite's evaluation split
        (found by its exact pixels, where the data is on this machine) gets its own index's stream, so
        ``certify(x)`` reproduces its record too; any other image gets the stream of its position in the batch
        (0, 1, ...): the same noise on every call.
        """
        batch = x.dim() == 4
        xs = list(x) if batch else [x]
        sizes = protocol(self.session.cfg)
        unknown = set(overrides) - set(sizes)
        if unknown:
            raise BenchmarkError(f"certify() takes {', '.join(sorted(sizes))}, not {', '.join(sorted(unknown))}")
        certifier = self.cell.certifier
        if certificate is not None:
            certifier = certifier_for(self.cell.method_config, certificate, self.cell.method)
        generators = self._generators(xs, idx)
        with torch.no_grad():
            certs = certifier.certify_many(
                self.classifiers, [v.to(self.device) for v in xs], generators=generators, **(sizes | overrides)
            )
        return certs if batch else certs[0]

    def predict(self, x: torch.Tensor, *, idx=None, n: int = 1000, alpha: float | None = None, batch_size=None):
        """PREDICT (Cohen et al. 2019, Algorithm 1) of image ``x`` (a batch gives a list) from ``n`` noisy samples
        (1,000 by default: PREDICT's cost, not the certificate's n): the smoothed class, or -1 (abstain) unless a
        binomial test at ``alpha`` (the suite's) separates the top two classes. Noise as :meth:`certify` draws it.
        A cascade's prediction is its certificate's (its stages decide together)."""
        if len(self.classifiers) > 1:
            certs = self.certify(x, idx=idx)
            return [c.prediction for c in certs] if isinstance(certs, list) else certs.prediction
        cfg, batch = self.session.cfg, x.dim() == 4
        xs = list(x) if batch else [x]
        ((sigma, classifier),) = self.classifiers
        out = []
        with torch.no_grad():
            for v, gen in zip(xs, self._generators(xs, idx), strict=True):
                counts = sample_counts(classifier, v.to(self.device), sigma, n, batch_size or cfg.batch_size, gen)
                out.append(predict_from_counts(counts, cfg.alpha if alpha is None else alpha))
        return out if batch else out[0]

    def __repr__(self) -> str:
        i = self.info
        return f"SmoothedModel({i['suite']}/{i['method']}/{i['base']} sigma={i['sigma']:g}, {i['precision']})"


def load(
    suite: str,
    method: str,
    base: str,
    sigma: float,
    *,
    engine: str | None = None,
    precision: str | None = None,
    device: str = "cpu",
    results: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> SmoothedModel:
    """The smoothed classifier of ``suite``'s ranked row (method, base, sigma), built from its published fit.

    Args:
        engine, precision: how the forward pass runs (default: as the row was certified, so its records reproduce).
        device: where it runs ("cuda" where there is one).
        results: the results tree whose ranked rows and ``checkpoints/`` are read (default: the committed one).
        cache_dir: where the dataset decoding and the suite's own bases are cached (default: the project's).
    """
    if precision is not None and precision not in {p.value for p in Precision}:
        raise BenchmarkError(f"precision={precision!r}: use one of {', '.join(p.value for p in Precision)}")
    if engine is not None and engine not in ENGINES:
        raise BenchmarkError(f"engine={engine!r}: use one of {', '.join(ENGINES)}")
    root = Path(results) if results is not None else RESULTS
    run = ranked_run(root, suite, method, base, sigma)
    as_run = {"precision": run.precision, "engine": run.info.config.get("engine", "eager")}
    overrides = {"results": str(root), "cache_dir": str(cache_dir or PROJECT_ROOT / ".cache"), "device": device}
    session = Session(build_run_config(suite, overrides | as_run))
    session.store = PublishedFits(session.store.cache_dir, root)
    cell = session.cell(method, base, float(run.info.sigma))
    if cell.chash != run.info.config_hash:
        raise BenchmarkError(
            f"{suite}'s settings now give {method} on {base} at sigma {sigma:g} the configuration {cell.chash}, not "
            f"{run.info.config_hash} the ranked run was certified with: check out the commit its run.json names"
        )
    built, fit = session.fit(cell)
    if fit_states(fit) != fit_states(run.info.fit):
        raise BenchmarkError(
            f"the published fit of {method} ({fit_states(fit)[:12]}) is not the state its run recorded "
            f"({fit_states(run.info.fit)[:12]}): restore results/checkpoints/{method} from git"
        )
    chosen = Precision(session.precision if precision is None else precision).value
    plain = {s: built.noisy_classifier(s).eval() for s in cell.certifier.sigmas(cell.sigma)}
    classifiers = [(s, build_engine(m, session.device, chosen, engine or as_run["engine"])) for s, m in plain.items()]
    info = {
        "suite": run.info.suite,
        "method": method,
        "base": base,
        "sigma": float(run.info.sigma),
        "precision": chosen,
        "engine": engine or as_run["engine"],
        "config_hash": cell.chash,
        "fit": fit_states(fit),
        "run": str(run.directory),
    }
    return SmoothedModel(session, cell, classifiers, plain, info)
