"""PEFTSmoothing, white-box: LoRA, prompt tuning and bottleneck adapters trained on Gaussian-noised inputs.

Paper: Fu & Wang 2024, "Certified PEFTSmoothing" (arXiv 2404.05350; ../shared/REFERENCES.md section 5). The
paper has no public code: this is a re-implementation from its description ("PEFTSmoothing-style").

Idea: keep a base classifier pretrained on clean data frozen and learn only a small set of parameters so that
it classifies ``x + N(0, sigma^2 I)`` well, with cross-entropy against the true labels (the paper's Eq. 4:
Cohen et al.'s Gaussian-augmentation objective restricted to the PEFT parameters), then certify it with the
harness' randomized smoothing. Registered under three names, one per PEFT family:

* ``peft_lora``: LoRA (Hu et al. 2022) through the ``peft`` library, on every conv and linear layer of a CNN
  or on the attention (``qkv``, ``proj``) and MLP (``fc1``, ``fc2``) projections of a ViT.
* ``peft_prompt``: prompt tuning. On a timm ViT, VPT (Jia et al. 2022) prompt tokens, shallow (first layer) or
  deep (one set per layer), written here because peft's prompt tuning targets language models. On a CNN, the
  learnable input-space padding prompt of Bahng et al. (2022), added to the (noisy) image, so that the entry
  runs on every base.
* ``peft_adapter``: bottleneck adapters (Houlsby et al. 2019) after the attention and MLP sub-blocks of a ViT,
  or a residual 1x1-conv bottleneck after each residual block of a CNN (after each ReLU of a plain CNN).

Trained: the PEFT parameters, the classification head when ``train_head`` (as in VPT and most PEFT recipes),
and the batch-norm running statistics when ``bn_stats = "reestimate"``. Frozen: every other base weight.

Defaults and their sources: LoRA rank 4 and alpha 4 (FT-CADIS's LoRA setting, REFERENCES section 10); VPT with
10 deep tokens and its uniform initialisation (Jia et al. 2022, Sec. 3.2 and the released code); adapter
bottleneck 8 with a zero-initialised up-projection so training starts from the base (Houlsby et al. 2019,
Sec. 2.1); padding prompt of width 4 on 32x32 inputs (Bahng et al. use 30 on 224x224, about the same share of
the image). The optimisation recipe (AdamW, lr 2e-3, 4 epochs, cosine) is this suite's CPU-scale choice; the
paper's is unknown ([U] in REFERENCES).

Deviations from the paper: ViT-B/L on GPU in the paper; CPU-scale bases here (ResNet-20, a 6-block ViT), the
``cifar10``/``imagenet`` suites give the paper-scale ViT-B/16. Batch-norm statistics are an explicit option
(``bn_stats``): re-estimating them on noisy data is a free adaptation worth several points on a ResNet, and the
paper does not say what it did (its ViTs have no batch norm). Adapters keep the ViT's LayerNorms frozen unless
``train_norm`` is set, whereas Houlsby et al. (2019) train them with the adapters.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from benchmark.bases import BaseClassifier
from methods.peft_base import BN_STATS, PEFTConfig, _WhiteBoxPEFT, head_of
from methods.peft_modules import Bottleneck, PaddingPrompt, PromptedClassifier, VPTNet, cnn_adapter_sites

# the shared part and the modules live in their own files; these names stay importable from here
__all__ = [
    "BN_STATS",
    "Bottleneck",
    "PEFTAdapter",
    "PEFTConfig",
    "PEFTLoRA",
    "PEFTPrompt",
    "PaddingPrompt",
    "PromptedClassifier",
    "VPTNet",
    "head_of",
]

# --- LoRA ---------------------------------------------------------------------------------------------------------


class PEFTLoRA(_WhiteBoxPEFT):
    name = "peft_lora"
    summary = "LoRA (peft) on conv/linear layers of a CNN or attention/MLP projections of a ViT, + head"
    paper = "Fu & Wang 2024 (PEFTSmoothing), re-implemented"

    def attach(self, base: BaseClassifier) -> nn.Module:
        from peft import LoraConfig, inject_adapter_in_model

        head = head_of(base.net)
        if base.family == "vit":
            suffixes = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
            targets = [n for n, _ in base.net.named_modules() if n.startswith("blocks.") and n.endswith(suffixes)]
        else:
            skip_head = self.config.train_head  # a fully trained head needs no low-rank update
            targets = [
                n
                for n, m in base.net.named_modules()
                if isinstance(m, nn.Conv2d | nn.Linear) and not (skip_head and m is head)
            ]
        lora = LoraConfig(
            r=self.config.lora_rank,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=0.0,
            target_modules=targets,
            bias="none",
        )
        inject_adapter_in_model(lora, base.net)
        return base

    def report(self, sigma: float) -> dict:
        return {**super().report(sigma), "lora_rank": self.config.lora_rank}

    def noisy_classifier(self, sigma: float) -> nn.Module:
        """The fitted model with every LoRA update merged into its base weight (W + B A * alpha / r): the same
        function as the trained one up to float rounding, at the base's inference cost. Unmerged, the extra
        low-rank convolutions made ResNet-20 certification 2.5x slower (11.3 vs 4.5 s an image on 2 cores)."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        merged = copy.deepcopy(self.model).eval()
        for name, module in list(merged.named_modules()):
            if isinstance(module, BaseTunerLayer):
                module.merge(safe_merge=True)
                parent_name, _, child = name.rpartition(".")
                setattr(merged.get_submodule(parent_name), child, module.get_base_layer())
        return merged


# --- Prompt tuning ------------------------------------------------------------------------------------------------


class PEFTPrompt(_WhiteBoxPEFT):
    name = "peft_prompt"
    summary = "VPT prompt tokens (deep or shallow) on a ViT; a padding prompt (Bahng et al. 2022) on a CNN, + head"
    paper = "Fu & Wang 2024 (PEFTSmoothing), re-implemented"

    def attach(self, base: BaseClassifier) -> nn.Module:
        if base.family == "vit":
            base.net = VPTNet(base.net, self.config.vpt_tokens, self.config.vpt_deep)
            return base
        channels, side, _ = self.ctx.dataset.image_shape
        return PromptedClassifier(PaddingPrompt(channels, base.input_size or side, self.config.pad_prompt), base)


# --- Adapters -----------------------------------------------------------------------------------------------------


class PEFTAdapter(_WhiteBoxPEFT):
    name = "peft_adapter"
    summary = "Houlsby bottleneck adapters after attention/MLP (ViT) or residual blocks (CNN), + head"
    paper = "Fu & Wang 2024 (PEFTSmoothing), re-implemented"

    def attach(self, base: BaseClassifier) -> nn.Module:
        dim = self.config.adapter_dim
        if base.family == "vit":
            for block in base.net.blocks:
                width = block.norm1.normalized_shape[0]
                # after the attention and MLP outputs, before the residual sums (LayerScale is identity or a scale)
                block.ls1 = nn.Sequential(Bottleneck(width, dim, conv=False), block.ls1)
                block.ls2 = nn.Sequential(Bottleneck(width, dim, conv=False), block.ls2)
            return base
        sites = cnn_adapter_sites(base.net)
        channels: dict[str, int] = {}
        hooks = [
            base.net.get_submodule(s).register_forward_hook(lambda m, i, o, s=s: channels.__setitem__(s, o.shape[1]))
            for s in sites
        ]
        with torch.no_grad():  # a dry run finds each site's channel count
            base(torch.zeros(1, *self.ctx.dataset.image_shape, device=next(base.parameters()).device))
        for h in hooks:
            h.remove()
        for site in sites:
            parent_name, _, child = site.rpartition(".")
            parent = base.net.get_submodule(parent_name) if parent_name else base.net
            module = getattr(parent, child)
            adapter = Bottleneck(channels[site], min(dim, channels[site]), conv=True)
            setattr(parent, child, nn.Sequential(module, adapter.to(next(base.parameters()).device)))
        return base
