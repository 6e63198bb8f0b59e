"""smoothbench: one harness to certify and compare randomized-smoothing methods for clean-pretrained classifiers.

Public API: :func:`certify` and :func:`predict` (Cohen et al. 2019) and :class:`Certificate`.
"""

from benchmark.certificates.smoothing import ABSTAIN, Certificate, certify, predict

__all__ = ["ABSTAIN", "Certificate", "certify", "predict"]
