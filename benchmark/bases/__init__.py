"""Base classifiers, normalise-first: every base maps images in [0, 1] to logits.

Three kinds of entry (registry ``BASES`` plus the ``timm:<name>`` prefix):

* published weights (:mod:`~benchmark.bases.published`): ResNet-20/56 and the small CIFAR ViT, checked by SHA-256;
* any timm model by name (:mod:`~benchmark.bases.timm_base`), with timm's own pretrained weights;
* small CNN / ViT bases that the suite trains itself on clean data (:mod:`~benchmark.bases.pretrained`), through
  the shared loop and the fit store.
"""

from benchmark.bases.core import BaseClassifier, BaseSpec, BuildContext, Normalize
from benchmark.bases.lookup import base_spec, check_base, resolve_base_config

__all__ = ["BaseClassifier", "BaseSpec", "BuildContext", "Normalize", "base_spec", "check_base", "resolve_base_config"]
