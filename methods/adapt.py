"""ADAPT: adversarial prompt tuning with attacks on the *prompted* model. Eskandar, Imtiaz, Wang & Dy, TMLR 2025,
"ADAPT to Robustify Prompt Tuning Vision Transformers" (arXiv 2403.13196; Gnomy17/robust_prompt;
../shared/REFERENCES.md section 7). Empirical l-infinity robustness, not a certificate.

``adapt`` tunes deep prompts (VPT-deep: tokens prepended at block 0 and replaced at every later block, the
``VPTNet`` of ``peft_prompt``), the head, and optionally the patch embedding, of a frozen timm ViT. Each step
crafts PGD (l-infinity, eps 8/255, step 2/255, 10 steps, random start, in [0, 1] pixel units) against the prompted
model itself, the adaptive attack, then minimises

* ADAPT-CE: CE(f_p(x), y) + beta * CE(f_p(x + delta), y), or
* ADAPT-KL: CE(f_p(x), y) + beta * KL(f_p(x) || f_p(x + delta)) (TRADES' form: ``kl_div(log_softmax(adv),
  softmax(clean))``), with beta = 6.

``prompt_at`` is the baseline the paper shows is broken: the same prompts trained with standard adversarial
training, CE(f_p(x + delta), y), but delta crafted on the model *without its prompts* (its current, trained head
and patch embedding included), as the released AT/TRADES code does; it looks robust to that non-adaptive attack
and is not robust to the adaptive one.

For certification by the harness (``adapt`` at a sigma > 0), the training inputs get Gaussian noise at sigma on top
of the attack, f_p(x + delta + n), as SmoothAdv trains whole models (one noise draw per image and step); at sigma
0 (the ``attack`` command's default) there is no noise, the paper's setting.

Deviations: on a CNN base (no tokens) the prompt is the padding prompt of ``peft_prompt``; attacks run in [0, 1]
pixel space (the released code works in normalised space, eps / std); the released code's crashes (dataset name,
shallow prompts never created, ``--load_path``) do not apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.attacks import pgd
from benchmark.method import Method
from benchmark.smoothing import add_noise
from benchmark.train import TrainConfig
from methods.peft_smoothing import PaddingPrompt, PromptedClassifier, VPTNet, head_of


@dataclass(frozen=True)
class AdaptConfig:
    """Attributes:
    tokens: prompt tokens per block (paper: 25 on ViT-B/16).
    train_head, train_patch: also train the head; the patch embedding (paper's ``--train-patch``).
    loss: "ce" (ADAPT-CE) or "kl" (ADAPT-KL); beta: weight of the adversarial term (paper: 6).
    eps, step, steps: the training attack (l-infinity, [0,1] units; paper: 8/255, 2/255, 10).
    train: the paper's recipe is SGD (momentum 0.9, weight decay 1e-4), gradient clipping at 1, batch 64, 20 epochs,
        a cyclic schedule peaking at lr 1 (a cosine schedule with warm-up here).
    """

    tokens: int = 10
    train_head: bool = True
    train_patch: bool = False
    loss: str = "ce"
    beta: float = 6.0
    eps: float = 8 / 255
    step: float = 2 / 255
    steps: int = 10
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=20, batch_size=64, optimizer="sgd", lr=1.0, weight_decay=1e-4, grad_clip=1.0, warmup_epochs=2))

    def __post_init__(self):
        if self.loss not in ("ce", "kl"):
            raise ValueError(f"loss must be ce or kl, got {self.loss!r}")
        if self.tokens < 1 or self.steps < 0 or self.eps < 0 or self.step < 0 or self.beta < 0:
            raise ValueError("tokens >= 1; steps, eps, step and beta >= 0")

    @classmethod
    def tiny(cls):
        return cls(tokens=2, steps=2, train=TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=0.1,
                                                        max_steps_per_epoch=3))  # fmt: skip


class WithoutPrompt(nn.Module):
    """A prompted model's forward pass with the prompts skipped; it shares every other (trained) module."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.model, PromptedClassifier):
            return self.model.base(x)
        return self.model(x, net=self.model.net.vit)  # a BaseClassifier around a VPTNet


class Adapt(Method):
    """``adapt``: deep prompts (+ head) adversarially trained against the prompted model (module docstring)."""

    name = "adapt"
    version = 1
    Config = AdaptConfig
    family = "peft"

    def __init__(self, config: AdaptConfig, base, ctx):
        super().__init__(config, base, ctx)
        base.requires_grad_(False)
        if base.family == "vit":
            base.net = VPTNet(base.net, config.tokens, deep=True)
            self.model = base
            if config.train_patch:
                base.net.vit.patch_embed.requires_grad_(True)
        else:
            channels, side, _ = ctx.dataset.image_shape
            self.model = PromptedClassifier(PaddingPrompt(channels, base.input_size or side, config.tokens), base)
        if config.train_head:
            head_of(base.net).requires_grad_(True)
        self.model.to(ctx.device)

    def fit_module(self) -> nn.Module:
        return self.model

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def train_mode(self) -> None:
        self.model.eval()  # dropout off, and the frozen base's batch-norm statistics stay the clean ones

    def attacked_model(self) -> nn.Module:
        """Whose gradients craft the training attack: the prompted model itself (adaptive)."""
        return self.model

    def without_prompt(self) -> nn.Module:
        """The model as it stands (trained head, trained patch embedding) with its prompts left out: what the
        non-adaptive attack differentiates, in training (``prompt_at``) and in ``attack --non-adaptive``."""
        return WithoutPrompt(self.model)

    def training_loss(self, batch, sigma, generator):
        x, y = batch
        noisy = (lambda z: add_noise(z, sigma, generator)) if sigma > 0 else (lambda z: z)
        x_adv = pgd(lambda z: F.cross_entropy(self.attacked_model()(noisy(z)).float(), y, reduction="none"),
                    x, norm="linf", eps=self.config.eps, step=self.config.step, steps=self.config.steps,
                    generator=generator)  # fmt: skip
        return self.objective(noisy(x), noisy(x_adv), y)

    def objective(self, x, x_adv, y) -> torch.Tensor:
        clean, adv = self.model(x).float(), self.model(x_adv).float()
        if self.config.loss == "ce":
            return F.cross_entropy(clean, y) + self.config.beta * F.cross_entropy(adv, y)
        kl = F.kl_div(F.log_softmax(adv, dim=1), F.softmax(clean, dim=1), reduction="batchmean")
        return F.cross_entropy(clean, y) + self.config.beta * kl

    def noisy_classifier(self, sigma: float) -> nn.Module:
        return self.model.eval()

    def report(self, sigma: float) -> dict:
        c = self.config
        return {"loss": f"{self.name} {c.loss if self.name == 'adapt' else 'ce'}, beta={c.beta:g}",
                "train_attack": f"linf {c.eps * 255:.3g}/255, {c.steps} x {c.step * 255:.3g}/255",
                "tokens": c.tokens, "train_patch": c.train_patch}  # fmt: skip


class PromptAT(Adapt):
    """``prompt_at``: standard adversarial training of the same prompts with the attack crafted on the un-prompted
    base (non-adaptive), CE(f_p(x + delta), y): the gradient-obfuscation baseline."""

    name = "prompt_at"

    def attacked_model(self) -> nn.Module:
        return self.without_prompt()

    def objective(self, x, x_adv, y) -> torch.Tensor:
        return F.cross_entropy(self.model(x_adv).float(), y)
