"""The model zoo: the ranked rows' smoothed classifiers to use in one's own code, and one's own model benchmarked.

:func:`load` builds the smoothed classifier of a ranked row from the fit published beside the committed results
(``results/checkpoints/``), verified against the SHA-256 its run recorded, never fitted and never taken from the local
cache; :func:`available` lists what can be loaded (``python -m benchmark zoo``). :func:`benchmark_model` certifies a
user's own ``nn.Module`` on a suite's images with the suite's protocol, through the runner's own loop, so its records
and row are those of a registered method, marked external.

Layer: above ``report`` (the listing reads its metrics) and ``run`` (sessions, the fit store, the runner); nothing
below imports it, and ``site`` beside it does not either.
"""

from benchmark.zoo.listing import available
from benchmark.zoo.loading import SmoothedModel, load
from benchmark.zoo.own import benchmark_model

__all__ = ["SmoothedModel", "available", "benchmark_model", "load"]
