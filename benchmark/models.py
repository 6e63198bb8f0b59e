"""Base classifiers, normalise-first: every base maps images in [0, 1] to logits.

Three kinds of entry (registry ``BASES`` plus the ``timm:<name>`` prefix):

* published weights: the CIFAR ResNet-20/56 of He et al. (2016, option A shortcuts) with Y. Idelbayev's clean
  weights, and the small CIFAR ViT of ../shared/models; files are found in ``weights_dir`` or torch.hub's cache
  (``$TORCH_HOME/hub/checkpoints``), downloaded through torch.hub only where a URL is published, and always
  checked against their full SHA-256;
* any timm model by name (``timm:vit_base_patch16_224.augreg_in21k``), with timm's own pretrained weights;
* small CNN / ViT bases that the suite trains itself on clean data (``pretrain``): resumable, cached by config
  hash, with a run.json giving clean accuracy and cost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.config import PROJECT_ROOT, config_hash, override_dataclass, to_jsonable
from benchmark.data import DatasetSpec
from benchmark.errors import BenchmarkError
from benchmark.results import exclusive, write_atomic, write_json_atomic
from benchmark.train import TrainConfig, autocast, fit


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel: the first layer of every base, so noise lives in [0, 1] pixel space."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class BaseClassifier(nn.Module):
    """``net(normalize(resize(x)))`` for images ``x`` in [0, 1].

    Attributes:
        net: the architecture proper (PEFT methods target its layers).
        family: "cnn" or "vit", so methods know which layers to adapt.
        input_size: side the net expects; other sizes are resized bicubically after the noise (as in Carlini et
            al. 2023, who upsample CIFAR-10 to 224 for a ViT-B/16).
    """

    def __init__(self, net: nn.Module, mean, std, family: str, input_size: int | None = None):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.family = family
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bicubic", antialias=True)
        return self.net(self.normalize(x))


@dataclass(frozen=True)
class BuildContext:
    """What building a base may need besides its config."""

    device: torch.device
    cache_dir: Path
    data_root: Path | None = None
    download: bool = False
    bf16: bool = False
    seed: int = 0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_weights(filename: str, sha256: str, url: str | None, weights_dir: str | None) -> Path:
    """Locate a published weight file, fetch it through torch.hub if needed, and verify its full SHA-256.

    Looks in ``weights_dir``, then in torch.hub's checkpoint cache; downloads to that cache only when the
    file is in neither and a URL is published.
    """
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    local = Path(weights_dir).expanduser() if weights_dir else None
    if local is not None and not local.is_absolute():  # suite files name paths relative to the project root
        local = PROJECT_ROOT / local
    candidates = ([local / filename] if local else []) + [hub_dir / filename]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        if url is None:
            raise BenchmarkError(
                f"weights {filename} not found in {' or '.join(str(c.parent) for c in candidates)}: "
                f"set weights_dir to the folder holding it (e.g. ../shared/models)"
            )
        try:
            torch.hub.download_url_to_file(url, str(hub_dir / filename), hash_prefix=sha256[:8], progress=True)
        except Exception as err:  # noqa: BLE001 - any network failure becomes one actionable line
            raise BenchmarkError(
                f"could not download {filename} ({type(err).__name__}); place a copy in {hub_dir} or set "
                f"weights_dir to a folder holding it"
            ) from None
        path = hub_dir / filename
    actual = sha256_file(path)
    if actual != sha256:
        raise BenchmarkError(
            f"checkpoint {path} has SHA-256 {actual[:12]}..., expected {sha256[:12]}...: the file is corrupt or "
            f"not the published one; delete it and fetch it again"
        )
    return path


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict from safetensors or a torch file (``weights_only=True``), one error line if corrupt."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise BenchmarkError(
            f"cannot read checkpoint {path} ({type(err).__name__}): delete it and fetch it again"
        ) from None
    return blob.get("state_dict", blob) if isinstance(blob, dict) else blob


# --- CIFAR ResNets (He et al. 2016, Sec. 4.2; option A identity shortcuts) --------------------------------------


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # Option A: subsample by 2 and zero-pad the new channels, so the shortcut has no parameters.
        self.pad = (planes - in_planes) // 2 if stride != 1 or in_planes != planes else 0
        self.stride = stride

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: 3 stages of ``n`` basic blocks with 16/32/64 channels."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for stage, (planes, stride) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
            layers = []
            for i in range(blocks_per_stage):
                layers.append(_BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


class BaseSpec:
    """Interface of a base-model entry: a frozen ``Config`` and ``build(config, dataset, ctx)``."""

    name: str
    version: int = 1

    @dataclass(frozen=True)
    class Config:
        pass

    def build(self, config, dataset: DatasetSpec, ctx: BuildContext) -> BaseClassifier:
        raise NotImplementedError


@dataclass(frozen=True)
class PublishedWeightsConfig:
    """Attributes: weights_dir: a folder holding the weight file (checked by SHA-256); None: torch.hub's cache."""

    weights_dir: str | None = None


class _PublishedCifarResNet(BaseSpec):
    Config = PublishedWeightsConfig
    blocks: int
    filename: str
    sha256: str
    url: str
    # Idelbayev's models were trained with ImageNet statistics (../shared/models/README.md).
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def build(self, config, dataset: DatasetSpec, ctx: BuildContext) -> BaseClassifier:
        if dataset.name != "cifar10":
            raise BenchmarkError(f"{self.name} is a CIFAR-10 model; it cannot serve dataset {dataset.name!r}")
        path = find_weights(self.filename, self.sha256, self.url, config.weights_dir)
        state = {k.removeprefix("module."): v for k, v in load_state_file(path).items()}
        net = CifarResNet(self.blocks)
        net.load_state_dict(state)
        return BaseClassifier(net, self.mean, self.std, family="cnn").to(ctx.device).eval()


class ResNet20(_PublishedCifarResNet):
    name = "resnet20"
    blocks = 3
    filename = "resnet20-12fca82f.th"
    sha256 = "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8"
    url = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet20-12fca82f.th"


class ResNet56(_PublishedCifarResNet):
    name = "resnet56"
    blocks = 9
    filename = "resnet56-4bfd9763.th"
    sha256 = "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367"
    url = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/resnet56-4bfd9763.th"


class ViTTinyP4(BaseSpec):
    """The small CIFAR-10 ViT of ../shared/models (6 blocks, width 192, patch 4; 77.9% clean on the JPEG copy)."""

    name = "vit_tiny_p4"
    Config = PublishedWeightsConfig
    filename = "vit_tiny_p4-729c4b63.safetensors"
    sha256 = "729c4b63ded3e2a3d25bddbf11767722b02f7b4f4e6759675957d77e5a6ed054"
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    @staticmethod
    def architecture(num_classes: int = 10) -> nn.Module:
        import timm

        return timm.create_model(
            "vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=4, embed_dim=192, depth=6,
            num_heads=3, mlp_ratio=2.0, num_classes=num_classes,
        )  # fmt: skip

    def build(self, config, dataset: DatasetSpec, ctx: BuildContext) -> BaseClassifier:
        if dataset.name != "cifar10":
            raise BenchmarkError(f"{self.name} is a CIFAR-10 model; it cannot serve dataset {dataset.name!r}")
        net = self.architecture()
        net.load_state_dict(load_state_file(find_weights(self.filename, self.sha256, None, config.weights_dir)))
        return BaseClassifier(net, self.mean, self.std, family="vit").to(ctx.device).eval()


# --- Bases the suite trains itself on clean data -----------------------------------------------------------------


@dataclass(frozen=True)
class PretrainConfig:
    """A small base trained by the suite on the clean training split.

    Attributes:
        width: channels (CNN) or embedding width (ViT).
        depth: conv stages (CNN) or transformer blocks (ViT).
        patch_size: ViT patch side.
        heads: ViT attention heads (None: width // 16).
        mlp_ratio: ViT MLP width as a multiple of ``width``.
        label_smoothing: cross-entropy label smoothing.
        train: optimisation settings for the shared loop.
    """

    width: int = 32
    depth: int = 3
    patch_size: int = 2
    heads: int | None = None
    mlp_ratio: float = 2.0
    label_smoothing: float = 0.0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, optimizer="adam", lr=3e-3))


class _Pretrained(BaseSpec):
    Config = PretrainConfig
    family: str

    def architecture(self, config: PretrainConfig, dataset: DatasetSpec) -> nn.Module:
        raise NotImplementedError

    def make_model(self, config, dataset: DatasetSpec) -> BaseClassifier:
        return BaseClassifier(self.architecture(config, dataset), dataset.mean, dataset.std, self.family)

    def cache_dir(self, config: PretrainConfig, dataset: DatasetSpec, ctx: BuildContext) -> Path:
        key = {"base": self.name, "version": self.version, "config": config, "dataset": dataset.name, "seed": ctx.seed}
        return ctx.cache_dir / "bases" / f"{self.name.replace(':', '-')}-{dataset.name}-{config_hash(key)}"

    def build(self, config, dataset: DatasetSpec, ctx: BuildContext) -> BaseClassifier:
        from safetensors.torch import load_file

        model = self.make_model(config, dataset)
        weights = self.cache_dir(config, dataset, ctx) / "model.safetensors"
        if not weights.is_file():
            # runs started together (shards) pretrain once: the others wait here, then load the weights
            with exclusive(weights.with_name("pretrain.lock")):
                if not weights.is_file():
                    self.pretrain(config, dataset, ctx)
        model.load_state_dict(load_file(str(weights)))
        return model.to(ctx.device).eval()

    def pretrain(self, config: PretrainConfig, dataset: DatasetSpec, ctx: BuildContext) -> dict:
        """Train this base on clean data (resumable), save safetensors and a run.json with accuracy and cost."""
        from safetensors.torch import save_file

        out = self.cache_dir(config, dataset, ctx)
        model = self.make_model(config, dataset).to(ctx.device)
        train_set = dataset.load("train", ctx.data_root, ctx.cache_dir, ctx.download)

        def loss_fn(batch, generator):
            x, y = batch
            return F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)

        result = fit(
            model, list(model.parameters()), loss_fn, train_set, config.train, device=ctx.device, bf16=ctx.bf16,
            seed=ctx.seed, checkpoint=out / "checkpoint.pt", augment=dataset.augment, desc=f"pretrain {self.name}",
        )  # fmt: skip
        test_set = dataset.load("test", ctx.data_root, ctx.cache_dir, ctx.download)
        accuracy = clean_accuracy(model, test_set, ctx.device, ctx.bf16)
        tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
        write_atomic(out / "model.safetensors", lambda tmp: save_file(tensors, str(tmp)))
        info = {
            "base": self.name,
            "dataset": dataset.name,
            "config": to_jsonable(config),
            "seed": ctx.seed,
            "clean_accuracy": accuracy,
            "params": sum(p.numel() for p in model.parameters()),
            "fit": dataclasses.asdict(result),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        write_json_atomic(out / "run.json", info)
        (out / "checkpoint.pt").unlink(missing_ok=True)
        return info


@torch.no_grad()
def clean_accuracy(model: nn.Module, data, device: torch.device, bf16: bool, batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` on clean ``data``."""
    model.eval()
    correct = 0
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size)
    for x, y in loader:
        with autocast(device, bf16):
            correct += int((model(x.to(device)).argmax(1).cpu() == y).sum())
    return correct / len(data)


class SmallCNN(_Pretrained):
    """A small VGG-style CNN (conv-BN-ReLU stages, each halving the resolution after the first)."""

    name = "small_cnn"
    family = "cnn"

    def architecture(self, config: PretrainConfig, dataset: DatasetSpec) -> nn.Module:
        layers: list[nn.Module] = []
        in_ch = dataset.image_shape[0]
        for i in range(config.depth):
            out_ch = config.width * 2 ** min(i, 2)
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]
            if 0 < i < config.depth - 1:
                layers.append(nn.MaxPool2d(2))
            in_ch = out_ch
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, dataset.num_classes)]
        return nn.Sequential(*layers)


class SmallViT(_Pretrained):
    """A small timm VisionTransformer (pre-norm blocks, class token), sized by ``width``/``depth``/``patch_size``."""

    name = "small_vit"
    family = "vit"

    def architecture(self, config: PretrainConfig, dataset: DatasetSpec) -> nn.Module:
        from timm.models.vision_transformer import VisionTransformer

        channels, side, _ = dataset.image_shape
        return VisionTransformer(
            img_size=side, patch_size=config.patch_size, in_chans=channels, num_classes=dataset.num_classes,
            embed_dim=config.width, depth=config.depth, num_heads=config.heads or max(1, config.width // 16),
            mlp_ratio=config.mlp_ratio,
        )  # fmt: skip


@dataclass(frozen=True)
class TimmConfig:
    """A timm model by name.

    Attributes:
        pretrained: load timm's published weights (needs the hub or a filled Hugging Face cache).
        input_size: side the model expects (None: timm's default for the model); inputs are resized after the noise.
        model_kwargs: extra ``timm.create_model`` arguments (e.g. ``img_size``, ``depth`` for a small random ViT).
        label_smoothing: used when fine-tuning on clean data.
        train: clean fine-tuning of the whole model before any method (epochs = 0: none), for a pretrained model
            whose head does not match the dataset (e.g. an ImageNet-21k ViT-B/16 on CIFAR-10); cached like a
            pretrained base.
    """

    pretrained: bool = True
    input_size: int | None = None
    model_kwargs: dict = field(default_factory=dict)
    label_smoothing: float = 0.0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=0, optimizer="sgd", lr=0.01))


class TimmBase(_Pretrained):
    """Any timm model by name, with its own normalisation; the head is replaced when the class count differs."""

    Config = TimmConfig

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.name = f"timm:{model_name}"

    def _net(self, config: TimmConfig, dataset: DatasetSpec) -> nn.Module:
        import timm

        try:
            return timm.create_model(self.model_name, pretrained=config.pretrained, num_classes=dataset.num_classes,
                                     in_chans=dataset.image_shape[0], **config.model_kwargs)  # fmt: skip
        except RuntimeError as err:
            raise BenchmarkError(f"timm could not build {self.model_name!r}: {err}") from None
        except Exception as err:  # noqa: BLE001 - hub / network failures
            raise BenchmarkError(
                f"timm could not fetch weights for {self.model_name!r} ({type(err).__name__}): put them in the "
                f"Hugging Face cache or set pretrained = false"
            ) from None

    def wrap(self, net: nn.Module, config: TimmConfig, dataset: DatasetSpec) -> BaseClassifier:
        import timm

        data_cfg = timm.data.resolve_data_config({}, model=net)
        family = "vit" if hasattr(net, "blocks") and hasattr(net, "patch_embed") else "cnn"
        # a ViT built with another img_size expects that size, whatever its pretrained_cfg says
        vit_size = getattr(getattr(net, "patch_embed", None), "img_size", None)
        size = config.input_size or (vit_size[-1] if vit_size else data_cfg["input_size"][-1])
        mean, std = data_cfg["mean"], data_cfg["std"]
        if len(mean) != dataset.image_shape[0]:  # e.g. a grey-scale dataset: timm's RGB statistics do not apply
            mean, std = dataset.mean, dataset.std
        return BaseClassifier(net, mean, std, family, size)

    def build(self, config, dataset: DatasetSpec, ctx: BuildContext) -> BaseClassifier:
        if config.train.epochs == 0:
            return self.wrap(self._net(config, dataset), config, dataset).to(ctx.device).eval()
        return super().build(config, dataset, ctx)

    def make_model(self, config, dataset: DatasetSpec) -> BaseClassifier:
        return self.wrap(self._net(config, dataset), config, dataset)


def base_spec(name: str) -> BaseSpec:
    """The spec of a base by registry key, or ``timm:<model>`` for any timm model."""
    from benchmark.registry import BASES

    if name.startswith("timm:"):
        return TimmBase(name.removeprefix("timm:"))
    return BASES.get(name)()


def resolve_base_config(spec: BaseSpec, settings: dict | None):
    return override_dataclass(spec.Config(), settings or {}, f"[bases.{spec.name}]")
