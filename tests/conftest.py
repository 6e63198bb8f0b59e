"""Shared fixtures: tiny classifiers with known answers and a tiny offline suite."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


class ConstantClassifier(nn.Module):
    """Always votes for ``label`` whatever the input: p_A = 1 exactly."""

    def __init__(self, label: int, num_classes: int = 10):
        super().__init__()
        self.label, self.num_classes = label, num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(x), self.num_classes, device=x.device)
        logits[:, self.label] = 1.0
        return logits


class LinearClassifier(nn.Module):
    """Two classes split by the hyperplane w.x + b = 0; the smoothed classifier's exact l2 radius at x is
    |w.x + b| / ||w|| (Cohen et al. 2019, Sec. 3.2), whatever sigma is."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([-score, score], dim=1)


TINY_SUITE = """
name = "tiny"
dataset = "digits"
sigmas = [0.25, 0.5]
n0 = 20
n = 100
alpha = 0.001
skip = 50
batch_size = 64
precision = "fp32"
methods = ["vanilla", "gaussian"]
bases = ["small_cnn"]
method_defaults = "tiny"  # a method with no [method_settings] table here runs with its Config.tiny()

[base_settings.small_cnn]
width = 4
depth = 2
train = {{ epochs = 2, optimizer = "adam", lr = 3e-3, batch_size = 64, max_steps_per_epoch = 5 }}

[base_settings.small_vit]
width = 16
depth = 1
patch_size = 4
train = {{ epochs = 2, optimizer = "adamw", lr = 3e-3, batch_size = 64, max_steps_per_epoch = 5 }}

[method_settings.dncnn]
depth = 3
width = 4
train = {{ epochs = 1, batch_size = 32, optimizer = "adam", lr = 1e-3, max_steps_per_epoch = 3 }}

[method_settings.dncnn_stab]
depth = 3
width = 4
surrogate = "small_cnn"
train = {{ epochs = 1, batch_size = 32, optimizer = "adam", lr = 1e-4, max_steps_per_epoch = 3 }}

[method_settings.diffusion]
block_out_channels = [4, 8]
train = {{ epochs = 1, batch_size = 16, optimizer = "adamw", lr = 1e-3, max_steps_per_epoch = 2 }}

[method_settings.dncnn_surrogate]
depth = 3
width = 4
surrogate = "small_vit"
train = {{ epochs = 1, batch_size = 32, optimizer = "adam", lr = 1e-4, max_steps_per_epoch = 3 }}

[method_settings.peft_lora]
train = {{ epochs = 1, batch_size = 32, optimizer = "adamw", lr = 1e-3, max_steps_per_epoch = 3 }}

[method_settings.peft_prompt]
train = {{ epochs = 1, batch_size = 32, optimizer = "adamw", lr = 1e-3, max_steps_per_epoch = 3 }}

[method_settings.peft_adapter]
train = {{ epochs = 1, batch_size = 32, optimizer = "adamw", lr = 1e-3, max_steps_per_epoch = 3 }}

[method_settings.peft_blackbox]
spsa_directions = 2
train = {{ epochs = 1, batch_size = 16, optimizer = "adam", lr = 1e-3, max_steps_per_epoch = 3 }}

[method_settings.gaussian]
train = {{ epochs = 1, optimizer = "adam", lr = 1e-3, batch_size = 32, max_steps_per_epoch = 3 }}

[method_settings.caf]
widths = [4, 4]
train = {{ epochs = 1, optimizer = "adam", lr = 1e-2, batch_size = 32, max_steps_per_epoch = 3 }}

[method_settings.caf_ensemble]
widths = [4, 4]
sigmas = [0.25, 0.5]
train = {{ epochs = 1, optimizer = "adam", lr = 1e-2, batch_size = 32, max_steps_per_epoch = 3 }}

[method_settings.multiscale]
over_settings = {{ max_sigma = 1.0 }}

[method_settings.multiscale_gaussian]  # its defaults (sigma 0.25/0.5/1), not its Config.tiny()

[method_settings.multiscale_calibrated]
train = {{ epochs = 1, optimizer = "adamw", lr = 1e-3, batch_size = 16, max_steps_per_epoch = 2 }}

[method_settings.adapt]
tokens = 1
steps = 2
train = {{ epochs = 1, optimizer = "sgd", lr = 0.1, batch_size = 16, max_steps_per_epoch = 2 }}

[method_settings.prompt_at]
tokens = 1
steps = 2
train = {{ epochs = 1, optimizer = "sgd", lr = 0.1, batch_size = 16, max_steps_per_epoch = 2 }}
"""


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    """A suite file that runs in a second or two: digits, a 2-stage CNN, n = 100, 8 images."""
    path = tmp_path / "tiny.toml"
    path.write_text(textwrap.dedent(TINY_SUITE.format()))
    return path


@pytest.fixture
def run_args(tmp_path: Path, tiny_suite: Path) -> list[str]:
    # --allow-dirty: tests run from a developer's checkout, which may hold uncommitted code
    return [
        "--suite",
        str(tiny_suite),
        "--results",
        str(tmp_path / "results"),
        "--out",
        str(tmp_path / "lb"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
        "--allow-dirty",
    ]
