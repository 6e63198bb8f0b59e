"""The shared training loop: an interrupted fit resumes to the same weights as an uninterrupted one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from benchmark.certificates.smoothing import add_noise
from benchmark.config.train_config import TrainConfig
from benchmark.train import fit


def problem():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 4, 4, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0.5).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 2))
    return model, TensorDataset(x, y)


def loss_for(model, interrupt_at=None):
    calls = {"n": 0}

    def loss(batch, gen):
        calls["n"] += 1
        if interrupt_at is not None and calls["n"] == interrupt_at:
            raise KeyboardInterrupt
        x, y = batch
        return F.cross_entropy(model(add_noise(x, 0.25, gen)), y)

    return loss


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resume_gives_identical_weights(tmp_path, optimizer):
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer=optimizer, lr=0.05, warmup_epochs=0.5, grad_clip=1.0)
    ref_model, data = problem()
    ref = fit(ref_model, list(ref_model.parameters()), loss_for(ref_model), data, cfg, device=torch.device("cpu"))
    model, data = problem()
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):  # killed in the middle of epoch 2 (4 steps per epoch)
        fit(
            model,
            list(model.parameters()),
            loss_for(model, interrupt_at=6),
            data,
            cfg,
            device=torch.device("cpu"),
            checkpoint=ckpt,
        )
    model2, _ = problem()  # a new process: fresh module, state from the checkpoint
    result = fit(
        model2, list(model2.parameters()), loss_for(model2), data, cfg, device=torch.device("cpu"), checkpoint=ckpt
    )
    assert result.resumed_from_epoch == 1
    # the per-epoch loss curve survives the interruption: epoch 1 from the checkpoint, epochs 2-3 re-run
    assert len(ref.loss_history) == 3 and ref.final_loss == ref.loss_history[-1]
    assert result.loss_history == pytest.approx(ref.loss_history, rel=1e-6)
    for a, b in zip(ref_model.state_dict().values(), model2.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_loss_decreases_and_refuses_empty():
    model, data = problem()
    cfg = TrainConfig(epochs=20, batch_size=16, optimizer="adam", lr=0.01)
    first = fit(
        model,
        list(model.parameters()),
        loss_for(model),
        data,
        TrainConfig(epochs=1, batch_size=16, optimizer="adam", lr=0.01),
        device=torch.device("cpu"),
    )
    last = fit(model, list(model.parameters()), loss_for(model), data, cfg, device=torch.device("cpu"))
    assert last.final_loss < first.final_loss
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        fit(frozen, list(frozen.parameters()), loss_for(frozen), data, cfg, device=torch.device("cpu"))
