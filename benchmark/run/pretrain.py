"""``pretrain``: the suite's own base models trained on clean data (or loaded from the cache), before any method."""

from __future__ import annotations

from collections.abc import Iterator

from benchmark.bases import base_spec
from benchmark.bases.pretrained import Pretrained
from benchmark.config.run_config import RunConfig
from benchmark.errors import BenchmarkError
from benchmark.files import read_json
from benchmark.run.plan import base_config
from benchmark.run.session import Session
from benchmark.run.store import INFO


def pretrain_bases(cfg: RunConfig) -> Iterator[str]:
    """Build each base of ``cfg`` that the suite trains itself, yielding a line per base as it is done: its clean
    accuracy, fit time and size, and where it is cached."""
    session = Session(cfg)
    # bases the suite trains itself; a timm base only when it is set to fine-tune on clean data first
    names = [b for b in cfg.bases if isinstance(base_spec(b), Pretrained) and base_config(cfg, b).train.epochs > 0]
    if not names:
        raise BenchmarkError(f"suite {cfg.suite!r} has no base that the suite trains itself (e.g. small_cnn)")
    for name in names:
        session.build_base(name)
        slot = base_spec(name).fit_slot(base_config(cfg, name), session.dataset, cfg.seed)
        info_path = session.store.cache_path(*slot, kind="bases") / INFO
        info = read_json(info_path) or {}
        yield (
            f"{name}: clean accuracy {info['clean_accuracy']:.4f}, fit {info['fit']['time_s']:.1f} s, "
            f"{info['params']:,} parameters -> {info_path.parent}"
        )
