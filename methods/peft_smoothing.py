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
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.bases import BaseClassifier
from benchmark.certificates.smoothing import add_noise
from benchmark.method import Method
from benchmark.train import TrainConfig

BN_STATS = ("reestimate", "frozen")


@dataclass(frozen=True)
class PEFTConfig:
    """Settings of the white-box PEFT family (each entry reads the fields of its own kind).

    Attributes:
        lora_rank: LoRA rank r (FT-CADIS: 4).
        lora_alpha: LoRA scaling numerator (FT-CADIS: 4; scale = alpha / r).
        vpt_tokens: prompt tokens per layer (VPT: 10 on most VTAB tasks... chosen per task there).
        vpt_deep: a prompt per transformer block (VPT-deep) rather than the first block only (VPT-shallow).
        pad_prompt: width in pixels of the CNN padding prompt (Bahng et al. 2022: 30 on 224 px).
        adapter_dim: bottleneck width of the adapters (Houlsby et al. 2019 use 8-256; 8 here).
        train_head: also train the classification head.
        train_norm: also train the affine scale and shift of every normalisation layer (batch norm in a CNN,
            layer norm in a ViT; BitFit-like, about 0.5 % of ResNet-20).
        bn_stats: "reestimate" (batch-norm running statistics follow the noisy training data) or "frozen".
        train: optimisation settings of the shared loop.
    """

    lora_rank: int = 4
    lora_alpha: float = 4.0
    vpt_tokens: int = 10
    vpt_deep: bool = True
    pad_prompt: int = 4
    adapter_dim: int = 8
    train_head: bool = True
    train_norm: bool = False
    bn_stats: str = "reestimate"
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=4, batch_size=128, optimizer="adamw", lr=2e-3, weight_decay=0.0)
    )

    def __post_init__(self):
        if self.bn_stats not in BN_STATS:
            raise ValueError(f"bn_stats must be one of {BN_STATS}, got {self.bn_stats!r}")
        if min(self.lora_rank, self.vpt_tokens, self.adapter_dim) < 1 or self.pad_prompt < 1:
            raise ValueError("lora_rank, vpt_tokens, adapter_dim and pad_prompt must be >= 1")

    @classmethod
    def tiny(cls):
        train = TrainConfig(epochs=1, batch_size=32, optimizer="adamw", lr=1e-3, max_steps_per_epoch=3)
        return cls(lora_rank=2, vpt_tokens=2, adapter_dim=2, pad_prompt=1, train=train)


def head_of(net: nn.Module) -> nn.Module:
    """The final classification layer of a base's network (timm ``head``, CIFAR ResNet ``linear``, or last)."""
    if hasattr(net, "get_classifier"):
        return net.get_classifier()
    if isinstance(getattr(net, "linear", None), nn.Linear):
        return net.linear
    return [m for m in net.modules() if isinstance(m, nn.Linear)][-1]


class _WhiteBoxPEFT(Method):
    """Shared machinery: freezing, head and batch-norm handling, Gaussian-augmentation loss."""

    version = 1
    Config = PEFTConfig
    family = "peft"

    def __init__(self, config: PEFTConfig, base: BaseClassifier, ctx):
        super().__init__(config, base, ctx)
        base.requires_grad_(False)
        # the noisy classifier: the base with the PEFT modules inside it or in front of it
        self.model = self.attach(base).to(ctx.device)
        if config.train_head:
            head_of(base.net).requires_grad_(True)
        if config.train_norm:
            for m in base.net.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm | nn.LayerNorm | nn.GroupNorm):
                    m.requires_grad_(True)

    def attach(self, base: BaseClassifier) -> nn.Module:
        raise NotImplementedError

    def fit_module(self) -> nn.Module:
        return self.model

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def train_mode(self) -> None:
        # Dropout stays off (the base was never trained with it here); batch norm follows the option.
        self.model.eval()
        if self.config.bn_stats == "reestimate":
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.train()

    def training_loss(self, batch, sigma, generator):
        x, y = batch
        return F.cross_entropy(self.model(add_noise(x, sigma, generator)), y)

    def noisy_classifier(self, sigma: float) -> nn.Module:
        return self.model.eval()

    def fit_state(self) -> dict[str, torch.Tensor]:
        state = super().fit_state()
        if self.config.bn_stats == "frozen":  # unchanged buffers need not be stored per sigma
            state = {k: v for k, v in state.items() if k in {n for n, _ in self._trainable_named()}}
        return state

    def _trainable_named(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def report(self, sigma: float) -> dict:
        notes = {"bn_stats": self.config.bn_stats if self._has_bn() else "none", "train_head": self.config.train_head}
        return {**notes, "train_norm": True} if self.config.train_norm else notes

    def _has_bn(self) -> bool:
        return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())


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
            targets = [n for n, m in base.net.named_modules()
                       if isinstance(m, nn.Conv2d | nn.Linear) and not (skip_head and m is head)]  # fmt: skip
        lora = LoraConfig(r=self.config.lora_rank, lora_alpha=self.config.lora_alpha, lora_dropout=0.0,
                          target_modules=targets, bias="none")  # fmt: skip
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


class VPTNet(nn.Module):
    """A timm VisionTransformer with VPT prompt tokens inserted after the prefix (class) tokens.

    Deep: the prompts of block i replace the previous block's prompt outputs (Jia et al. 2022, Eq. 5-6);
    shallow: prompts enter before the first block only. Prompt outputs are dropped before the final norm and
    head, so pooling sees exactly the tokens it was trained on.
    """

    def __init__(self, vit: nn.Module, num_tokens: int, deep: bool):
        super().__init__()
        self.vit = vit
        self.num_tokens, self.deep = num_tokens, deep
        dim = vit.embed_dim
        patch = math.prod(vit.patch_embed.patch_size)
        layers = len(vit.blocks) if deep else 1
        # VPT's initialisation: uniform(-v, v), v = sqrt(6 / (3 * patch_area + dim)) (Xavier on the patch projection)
        bound = math.sqrt(6.0 / float(3 * patch + dim))
        self.prompts = nn.Parameter(torch.empty(layers, num_tokens, dim).uniform_(-bound, bound))

    def get_classifier(self) -> nn.Module:
        return self.vit.get_classifier()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vit, p, k = self.vit, self.num_tokens, self.vit.num_prefix_tokens
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))  # [B, prefix + patches, D]
        b = x.shape[0]
        for i, block in enumerate(vit.blocks):
            if i == 0:
                x = torch.cat([x[:, :k], self.prompts[0].expand(b, -1, -1).to(x.dtype), x[:, k:]], dim=1)
            elif self.deep:
                x = torch.cat([x[:, :k], self.prompts[i].expand(b, -1, -1).to(x.dtype), x[:, k + p :]], dim=1)
            x = block(x)
        x = torch.cat([x[:, :k], x[:, k + p :]], dim=1)  # drop the prompt outputs
        return vit.forward_head(vit.norm(x))


class PaddingPrompt(nn.Module):
    """Bahng et al. (2022) padding prompt: a learnable frame of width ``pad`` added to the image in [0,1] space."""

    def __init__(self, channels: int, side: int, pad: int):
        super().__init__()
        self.pad = min(pad, max(1, side // 4))
        inner = side - 2 * self.pad
        self.top = nn.Parameter(torch.zeros(1, channels, self.pad, side))
        self.bottom = nn.Parameter(torch.zeros(1, channels, self.pad, side))
        self.left = nn.Parameter(torch.zeros(1, channels, inner, self.pad))
        self.right = nn.Parameter(torch.zeros(1, channels, inner, self.pad))
        self.register_buffer("hole", torch.zeros(1, channels, inner, inner), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        middle = torch.cat([self.left, self.hole, self.right], dim=3)
        return x + torch.cat([self.top, middle, self.bottom], dim=2)


class PromptedClassifier(nn.Module):
    """``base(x + prompt)``: the input-space prompt sits after the noise, in [0,1] space."""

    def __init__(self, prompt: nn.Module, base: BaseClassifier):
        super().__init__()
        self.prompt, self.base = prompt, base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(self.prompt(x))


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


class Bottleneck(nn.Module):
    """Residual bottleneck adapter ``h + up(act(down(h)))`` on the last (token) or channel (conv) dimension.

    The up-projection starts at zero, so the adapted model starts exactly at the base (Houlsby et al. 2019).
    """

    def __init__(self, dim: int, bottleneck: int, conv: bool):
        super().__init__()
        layer = (lambda i, o: nn.Conv2d(i, o, 1)) if conv else nn.Linear
        self.down, self.up = layer(dim, bottleneck), layer(bottleneck, dim)
        self.act = nn.ReLU() if conv else nn.GELU()
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))


def _cnn_adapter_sites(net: nn.Module) -> list[str]:
    """Residual blocks (class name ending in Block/Bottleneck, outermost only), else every ReLU of a plain CNN."""
    blocks = [n for n, m in net.named_modules() if n and type(m).__name__.endswith(("Block", "Bottleneck"))]
    outer = [n for n in blocks if not any(n.startswith(o + ".") for o in blocks if o != n)]
    return outer or [n for n, m in net.named_modules() if isinstance(m, nn.ReLU)]


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
        sites = _cnn_adapter_sites(base.net)
        channels: dict[str, int] = {}
        hooks = [base.net.get_submodule(s).register_forward_hook(
                 lambda m, i, o, s=s: channels.__setitem__(s, o.shape[1])) for s in sites]  # fmt: skip
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
