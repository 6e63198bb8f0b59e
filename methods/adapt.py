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

For certification by the harness (``adapt`` at a sigma > 0) the prompts are trained as SmoothAdv (Salman et al.
2019) trains whole models: the training attack is SmoothAdv's, an l2 PGD (``smooth_eps``, ``steps`` steps of
2 eps / steps, random start) on the soft smoothed classifier estimated with ``smooth_m`` noise draws n_1..n_m that
stay fixed over the attack's steps, -log((1/m) sum_i softmax(f_p(x' + n_i))_y); the loss is ADAPT's on those same
draws, averaged over them: CE(f_p(x + n_i), y) + beta * CE(f_p(x' + n_i), y) (or the KL form). The certificate is an
l2 one, so the attack that shapes it is l2 too (an l-infinity ball of 8/255 reaches l2 1.74 on a CIFAR image). At
sigma 0 (the ``attack`` command's default) there is no noise: the paper's l-infinity setting above.

Deviations (besides the base: vit_tiny_p4 at 32 px, not ViT-B/16 in21k at 224):

* on a CNN base (no tokens) the prompt is the padding prompt of ``peft_prompt``;
* attacks run in [0, 1] pixel space (the released code works in normalised space, eps / std);
* 10 tokens per block by default (paper: 25), and the patch embedding is not trained unless ``train_patch`` (the
  paper's "about 1 % of the parameters" counts it; prompts and head alone are about 0.28 % of ViT-B);
* a cosine schedule with warm-up (the paper's is cyclic, peaking at lr 1);
* ADAPT-KL is ``kl_div(log_softmax(adv), softmax(clean))``, KL(f_p(x) || f_p(x + delta)), as the released
  ``losses.py`` computes it (REFERENCES writes the paper's as KL(f_p(x + delta) || f_p(x)));
* the evaluation is PGD (``attack``: PGD-10, and more steps with restarts); the paper also reports FGSM, CW-20,
  AutoAttack and RayS;
* the released code's crashes (dataset name, shallow prompts never created, ``--load_path``) do not apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.certificates.smoothing import add_noise
from benchmark.config.train_config import TrainConfig
from benchmark.evaluate.pgd import pgd, smoothed_loss
from benchmark.method import Method
from methods.peft_smoothing import PaddingPrompt, PromptedClassifier, VPTNet, head_of


@dataclass(frozen=True)
class AdaptConfig:
    """Attributes:
    tokens: prompt tokens per block (paper: 25 on ViT-B/16).
    train_head, train_patch: also train the head; the patch embedding (paper's ``--train-patch``).
    loss: "ce" (ADAPT-CE) or "kl" (ADAPT-KL); beta: weight of the adversarial term (paper: 6).
    eps, step, steps: the training attack at sigma 0 (l-infinity, [0,1] units; paper: 8/255, 2/255, 10).
    smooth_eps, smooth_m: at sigma > 0, SmoothAdv's l2 radius and noise draws (``steps`` steps of 2 eps / steps;
        SmoothAdv's best CIFAR-10 models: eps 1.0 at sigma 0.25 and 2.0 at sigma 0.5, m = 2 to 8).
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
    smooth_eps: float = 1.0
    smooth_m: int = 1
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=20, batch_size=64, optimizer="sgd", lr=1.0, weight_decay=1e-4, grad_clip=1.0, warmup_epochs=2
        )
    )

    def __post_init__(self):
        if self.loss not in ("ce", "kl"):
            raise ValueError(f"loss must be ce or kl, got {self.loss!r}")
        if self.tokens < 1 or self.steps < 0 or self.eps < 0 or self.step < 0 or self.beta < 0:
            raise ValueError("tokens >= 1; steps, eps, step and beta >= 0")
        if self.smooth_eps < 0 or self.smooth_m < 1:
            raise ValueError("smooth_eps >= 0 and smooth_m >= 1")

    @classmethod
    def tiny(cls):
        return cls(
            tokens=2,
            steps=2,
            train=TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=0.1, max_steps_per_epoch=3),
        )


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
    summary = (
        "deep VPT prompts (+ head, optionally the patch embedding), adversarially trained with PGD against the "
        "prompted model (ADAPT-CE or -KL, beta 6); at sigma > 0 on Gaussian-noised adversarial examples"
    )
    paper = "Eskandar et al. 2025 (ADAPT)"
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
        c = self.config
        if sigma == 0:
            x_adv = pgd(
                lambda z: F.cross_entropy(self.attacked_model()(z).float(), y, reduction="none"),
                x,
                norm="linf",
                eps=c.eps,
                step=c.step,
                steps=c.steps,
                generator=generator,
            )
            return self.objective(x, x_adv, y)
        # SmoothAdv: m noise draws per image, fixed over the attack's steps and reused by the loss
        m = c.smooth_m
        noise = add_noise(torch.zeros((m, *x.shape), device=x.device, dtype=x.dtype), sigma, generator)
        soft_loss = smoothed_loss(self.attacked_model(), y, sigma, m, None, noise=noise)
        x_adv = pgd(
            soft_loss,
            x,
            norm="l2",
            eps=c.smooth_eps,
            step=2 * c.smooth_eps / max(1, c.steps),
            steps=c.steps,
            generator=generator,
        )
        return torch.stack([self.objective(x + n, x_adv + n, y) for n in noise]).mean()

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
        loss = f"adapt {c.loss}, beta={c.beta:g}" if self.name == "adapt" else "ce on the attacked input"
        attack = (
            f"linf {c.eps * 255:.3g}/255, {c.steps} x {c.step * 255:.3g}/255"
            if sigma == 0
            else f"SmoothAdv l2 {c.smooth_eps:g}, {c.steps} steps, m={c.smooth_m}"
        )
        return {
            "loss": loss,
            "train_attack": attack,
            "epochs": c.train.epochs,
            "tokens": c.tokens,
            "train_patch": c.train_patch,
        }


class PromptAT(Adapt):
    """``prompt_at``: standard adversarial training of the same prompts with the attack crafted on the un-prompted
    base (non-adaptive), CE(f_p(x + delta), y): the gradient-obfuscation baseline."""

    name = "prompt_at"
    summary = (
        "the `adapt` prompts with standard adversarial training, the attack crafted on the un-prompted base (the "
        "broken, non-adaptive baseline)"
    )
    paper = "Eskandar et al. 2025 (ADAPT)"

    def attacked_model(self) -> nn.Module:
        return self.without_prompt()

    def objective(self, x, x_adv, y) -> torch.Tensor:
        return F.cross_entropy(self.model(x_adv).float(), y)
