"""Certifying adapters (methods/caf.py): size, frozen extractor, the base's function at the start, the ensemble."""

from __future__ import annotations

import pytest
import torch

from benchmark.bases.core import BaseClassifier
from benchmark.bases.published import CifarResNet
from benchmark.data import CIFAR10
from benchmark.errors import BenchmarkError
from benchmark.method import MethodContext, cost
from methods.caf import CAF, CAFConfig, CAFEnsemble, EnsembleConfig
from tests.test_contract import context, fit_tiny, tiny_base


def resnet20() -> BaseClassifier:
    torch.manual_seed(0)
    base = BaseClassifier(CifarResNet(3), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), "cnn")
    return base.eval().requires_grad_(False)


def test_default_adapter_trains_under_a_tenth_of_resnet20():
    ctx = MethodContext(CIFAR10(), torch.device("cpu"), 0, None)
    spent = cost(CAF(CAFConfig(), resnet20(), ctx))
    assert spent["base_params"] == 269_722 and spent["trainable_params"] == 17_178
    assert spent["trainable_pct"] < 10.0
    # three adapters and one head: the ensemble of the cifar10-cpu suite stays small next to the base too
    ensemble = cost(CAFEnsemble(EnsembleConfig(), resnet20(), ctx))
    assert ensemble["trainable_params"] == 3 * (17_178 - 650) + 650


@pytest.mark.parametrize("family", ["cnn", "vit"])
def test_starts_as_the_base_and_trains_only_adapter_and_head(family, tmp_path):
    base = tiny_base(family)
    method = CAF(CAFConfig.tiny(), base, context(tmp_path, family))
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(method.noisy_classifier(0.25)(x), base(x))  # zero adapter, the base's head
    frozen = {k: v.clone() for k, v in method.extractor.state_dict().items()}
    fit_tiny(method)
    # no gradient and eval mode: weights and batch-norm statistics of the extractor are the clean base's
    assert all(torch.equal(frozen[k], v) for k, v in method.extractor.state_dict().items())
    assert set(method.fit_state()) == set(method.trained.state_dict())
    with torch.no_grad():
        assert not torch.allclose(method.noisy_classifier(0.25)(x), base(x))


def test_ensemble_certifies_each_sigma_with_its_own_adapter(tmp_path):
    method = CAFEnsemble(EnsembleConfig.tiny(), tiny_base("cnn"), context(tmp_path))
    fit_tiny(method)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        at_low, at_high = method.noisy_classifier(0.25)(x), method.noisy_classifier(0.5)(x)
    assert not torch.allclose(at_low, at_high)
    assert method.noisy_classifier(0.5).adapter is method.adapters["sigma_0_5"]
    with pytest.raises(BenchmarkError, match="not 1"):
        method.noisy_classifier(1.0)
    assert "full fine-tunes" in method.report(0.25)["storage"]


def test_ensemble_fit_serves_every_sigma_of_a_suite(tmp_path):
    from benchmark.config import build_run_config
    from benchmark.plan import cell

    cfg = build_run_config("quick", {"methods": ["caf_ensemble", "caf"]})
    assert cell(cfg, "caf_ensemble", "small_cnn", 0.25, "fp32").fit_hash == cell(
        cfg, "caf_ensemble", "small_cnn", 0.5, "fp32").fit_hash
    assert cell(cfg, "caf", "small_cnn", 0.25, "fp32").fit_hash != cell(cfg, "caf", "small_cnn", 0.5, "fp32").fit_hash
