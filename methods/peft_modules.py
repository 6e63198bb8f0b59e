"""The modules the white-box PEFT methods put into or in front of a base (:mod:`methods.peft_smoothing`):
VPT prompt tokens in a ViT, an input-space padding prompt, and residual bottleneck adapters."""

from __future__ import annotations

import math

import torch
from torch import nn

from benchmark.bases import BaseClassifier

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


def cnn_adapter_sites(net: nn.Module) -> list[str]:
    """Residual blocks (class name ending in Block/Bottleneck, outermost only), else every ReLU of a plain CNN."""
    blocks = [n for n, m in net.named_modules() if n and type(m).__name__.endswith(("Block", "Bottleneck"))]
    outer = [n for n in blocks if not any(n.startswith(o + ".") for o in blocks if o != n)]
    return outer or [n for n, m in net.named_modules() if isinstance(m, nn.ReLU)]
