"""Certifying a group of images and timing it: the one path from certificates to records that ``run`` and ``perf``
share, so a record's ``time_s`` means the same wherever it was measured."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from benchmark.certificates.smoothing import Certificate
from benchmark.run.records import Record

GroupCertifier = Callable[[list[torch.Tensor], list[int]], list[Certificate]]


def timed_records(certify: GroupCertifier, data, indices: Sequence[int], device, **run_fields) -> list[Record]:
    """The records of images ``indices`` of ``data``, certified together by ``certify(images, indices)`` (images on
    ``device``); each record's ``time_s`` is an equal share of the group's wall time, moving the images to the
    device included and reading them from ``data`` not; ``run_fields``: what the run says of itself."""
    indices = [int(i) for i in indices]
    images = [data[i] for i in indices]
    t0 = time.perf_counter()
    certs = certify([x.to(device) for x, _ in images], indices)
    share = (time.perf_counter() - t0) / len(indices)
    return [
        Record.of_certificate(cert, label=int(label), idx=idx, time_s=share, **run_fields)
        for cert, idx, (_, label) in zip(certs, indices, images, strict=True)
    ]
