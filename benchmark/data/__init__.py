"""Datasets as tensors in [0, 1]: the registered datasets, fixed evaluation subsets, the validation split carved from
the training split, and data fingerprints.

May import :mod:`benchmark.config` and the foundation (:mod:`benchmark.errors`, :mod:`benchmark.files`).
"""
