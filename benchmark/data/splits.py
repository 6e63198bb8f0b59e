"""The splits a run reads: the dataset's own (train, test; ImageNet's val), and two made from the training split
for choosing recipes: ``val`` (a fixed, class-stratified held-out part) and ``tune_train`` (the rest). Every split
knows its name, so the training loop can refuse the ones it must never fit on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from benchmark.data.datasets import DatasetSpec, UInt8Images
from benchmark.errors import BenchmarkError

# The splits a run can read: the dataset's own, plus two made from its training split for choosing recipes.
SPLITS = ("train", "test", "val", "tune_train")
VAL_SEED = 20240517  # fixes which training images are held out; recorded with every search


def labels_of(data: Dataset) -> torch.Tensor:
    if isinstance(data, UInt8Images):
        return data.labels
    if hasattr(data, "tensors"):
        return data.tensors[1]
    return torch.tensor([int(y) for _, y in data])


def stratified_sample(labels: torch.Tensor, size: int, seed: int = VAL_SEED) -> list[int]:
    """A class-stratified sample of exactly ``size`` indices (each class in proportion to its share, remainders to
    the largest fractions), sorted."""
    classes = sorted(int(c) for c in labels.unique())
    counts = {c: int((labels == c).sum()) for c in classes}
    quota = {c: size * counts[c] / len(labels) for c in classes}
    take = {c: int(quota[c]) for c in classes}
    for c in sorted(classes, key=lambda c: (int(quota[c]) - quota[c], c))[: size - sum(take.values())]:
        take[c] += 1
    picked: list[int] = []
    for c in classes:
        members = torch.nonzero(labels == c).flatten().numpy()
        order = np.random.default_rng([seed, c]).permutation(len(members))
        picked += members[order[: take[c]]].tolist()
    return sorted(picked)


def fingerprint(data: Dataset) -> str:
    """What identifies the images of a split: a hash of the decoded pixels and labels (in memory), else of the
    file list and sizes (a lazily read ImageFolder). A run resumed on other data would mix two datasets' records."""
    digest = hashlib.sha256()
    tensors = (data.images, data.labels) if isinstance(data, UInt8Images) else getattr(data, "tensors", None)
    if tensors is not None:
        for t in tensors:
            digest.update(t.contiguous().numpy().tobytes())
    else:
        for path, label in getattr(data, "samples", []):
            digest.update(f"{Path(path).name}\t{Path(path).stat().st_size}\t{label}\n".encode())
    return digest.hexdigest()[:16]


def _subset(data: Dataset, indices: list[int]) -> Dataset:
    index = torch.tensor(indices, dtype=torch.long)
    if isinstance(data, UInt8Images):
        return UInt8Images(data.images[index], data.labels[index])
    if hasattr(data, "tensors"):
        return TensorDataset(*(t[index] for t in data.tensors))
    return torch.utils.data.Subset(data, indices)


def load_split(spec: DatasetSpec, split: str, root: Path | None, cache_dir: Path, download: bool = False) -> Dataset:
    """A split as a dataset that knows its name (``.split``): the dataset's ``train`` and ``test``, ``val`` (the
    held-out part of ``train``) and ``tune_train`` (``train`` without ``val``, what candidate recipes fit on)."""
    if split not in SPLITS:
        raise BenchmarkError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if split == "val" and not spec.val_size:
        # a dataset whose own held-out split is called val (ImageNet: what is certified), read as it is
        data = spec.load(split, root, cache_dir, download)
    elif split in ("val", "tune_train"):
        if not spec.val_size:
            raise BenchmarkError(f"{spec.name} has no validation split (no training split to hold images out of)")
        train = spec.load("train", root, cache_dir, download)
        held = stratified_sample(labels_of(train), spec.val_size)
        if split == "tune_train":
            held_set = set(held)
            held = [i for i in range(len(train)) if i not in held_set]
        data = _subset(train, held)
    else:
        data = spec.load(split, root, cache_dir, download)
    # ImageFolder and its kin have no such attribute of their own: naming the split lets the training loop refuse it
    data.split = split
    return data
