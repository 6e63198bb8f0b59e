"""Certifying adapters (methods/caf.py): size, frozen extractor, the base's function at the start, the ensemble."""

from __future__ import annotations

import pytest
import torch

from benchmark.bases.core import BaseClassifier
from benchmark.bases.published import CifarResNet
from benchmark.data.datasets import CIFAR10
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
    from benchmark.config.run_config import build_run_config
    from benchmark.run.plan import cell

    cfg = build_run_config("quick", {"methods": ["caf_ensemble", "caf"]})
    assert (
        cell(cfg, "caf_ensemble", "small_cnn", 0.25, "fp32").fit_hash
        == cell(cfg, "caf_ensemble", "small_cnn", 0.5, "fp32").fit_hash
    )
    assert cell(cfg, "caf", "small_cnn", 0.25, "fp32").fit_hash != cell(cfg, "caf", "small_cnn", 0.5, "fp32").fit_hash


def _nudge(method, seed: int = 5):
    """Give every adapter a distinct non-zero output layer (they start at zero, where routing cannot show)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for adapter in method.adapters.values():
            adapter.out.weight.copy_(torch.randn(adapter.out.weight.shape, generator=g))
            adapter.out.bias.copy_(torch.randn(adapter.out.bias.shape, generator=g))


def test_training_loss_is_cross_entropy_of_logits_on_pixel_space_noise(tmp_path):
    """The released code's two faults are absent: noise is added to the [0,1] image (before the base's
    normalisation, which the extractor and the adapter apply themselves) and the loss reads logits."""
    from benchmark.certificates.smoothing import add_noise

    method = CAF(CAFConfig.tiny(), tiny_base("cnn"), context(tmp_path))
    _nudge(method)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    y = torch.arange(8) % 10
    method.trained.eval()  # the adapter's batch norm on running statistics, as in noisy_classifier
    loss = method.training_loss((x, y), 0.5, torch.Generator().manual_seed(7))
    z = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    model = method.noisy_classifier(0.5)
    with torch.no_grad():
        logits = model(z)
    torch.testing.assert_close(loss.detach(), torch.nn.functional.cross_entropy(logits, y))
    # a double softmax would give a different value: the check above can tell them apart
    softmaxed = torch.nn.functional.cross_entropy(logits.softmax(-1), y)
    assert not torch.allclose(loss.detach(), softmaxed)
    assert torch.equal(add_noise(x, 0.5, torch.Generator().manual_seed(7)), z)


class _Recorder(torch.nn.Module):
    """Passes inputs to ``adapter`` unchanged and keeps each batch it was given."""

    def __init__(self, adapter: torch.nn.Module):
        super().__init__()
        self.adapter, self.seen = adapter, []

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.seen.append(z.detach().clone())
        return self.adapter(z)


def test_ensemble_training_routes_each_image_through_its_sigmas_adapter(tmp_path):
    """Each image draws a level of the set, is noised at that level and goes through that level's adapter: watched
    from outside (which noisy images each adapter is handed, and the loss they give through the ensemble's own
    noisy classifiers), not by replaying the method's draws. The loss is a function of the generator's seed."""
    method = CAFEnsemble(EnsembleConfig.tiny(), tiny_base("cnn"), context(tmp_path))
    _nudge(method)
    method.trained.eval()  # batch norm on running statistics, so per-image and batched forwards agree
    # one image and one label repeated: whatever routes an image, the noise it carries is z - image
    image = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(8))
    x, y = image.expand(32, -1, -1, -1).clone(), torch.full((32,), 3)
    levels = sorted(method.config.sigmas)
    recorders = {}
    for s in levels:  # each level's adapter, as its noisy classifier uses it, watched where the ensemble keeps it
        (name,) = [k for k, a in method.adapters.items() if a is method.noisy_classifier(s).adapter]
        recorders[s] = method.adapters[name] = _Recorder(method.adapters[name])
    loss = method.training_loss((x, y), 0.25, torch.Generator().manual_seed(9))
    seen = {s: torch.cat(r.seen) if r.seen else torch.empty(0, *image.shape[1:]) for s, r in recorders.items()}
    # every image went through exactly one adapter, and each adapter had some
    assert sum(len(z) for z in seen.values()) == len(x) and all(len(z) for z in seen.values())
    for s, z in seen.items():  # the noise of each image an adapter is handed has that adapter's level
        spread = (z - image).flatten(1).std(dim=1)
        assert ((spread / s - 1).abs() < 0.3).all(), (s, spread.tolist())
    # the loss is cross-entropy of the logits of each image through its level's noisy classifier
    with torch.no_grad():
        logits = torch.cat([method.noisy_classifier(s)(z) for s, z in seen.items()])
    torch.testing.assert_close(loss.detach(), torch.nn.functional.cross_entropy(logits, y))
    # the same seed draws the same levels and noise; another seed other ones
    again = method.training_loss((x, y), 0.25, torch.Generator().manual_seed(9))
    other = method.training_loss((x, y), 0.25, torch.Generator().manual_seed(10))
    assert torch.equal(again, loss) and not torch.allclose(other, loss)
