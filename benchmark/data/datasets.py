"""Datasets: images in [0, 1] (normalisation lives in the models), integer labels, fixed test subsets.

Every dataset class exposes ``num_classes``, ``image_shape``, ``load(split, root, ...)`` returning a torch
``Dataset`` of ``(image [C,H,W] float32 in [0,1], label int)``, and ``augment(batch, generator)``, the training
augmentation applied to a batch on the device (random crops and flips where the field uses them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from benchmark.errors import BenchmarkError
from benchmark.files import write_atomic

# Per-channel statistics of ImageNet's training set: the normalisation of ImageNet models, and of the CIFAR ResNets
# published with ImageNet statistics.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UInt8Images(Dataset):
    """Images held in memory as uint8 ``[N,C,H,W]`` (4x smaller than float), converted to [0,1] on access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int):
        return self.images[idx].float().div_(255.0), int(self.labels[idx])

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather a batch without a DataLoader: the whole training set is in memory."""
        return self.images[indices].float().div_(255.0), self.labels[indices]


def random_crop_flip(x: torch.Tensor, generator: torch.Generator | None, pad: int = 4) -> torch.Tensor:
    """Random crop after reflect padding by ``pad`` pixels, then a random horizontal flip, per image.

    The standard CIFAR augmentation (He et al. 2016; used by Cohen et al. and Salman et al.), done on the whole
    batch at once so the shared loop needs no DataLoader workers.
    """
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None]).view(b, 1, h, 1)  # [B,1,H,1]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None]).view(b, 1, 1, w)  # [B,1,1,W]
    batch_idx = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    chan_idx = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    out = padded[batch_idx, chan_idx, rows, cols]
    flip = torch.rand(b, generator=generator, device=x.device) < 0.5
    return torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)


class DatasetSpec:
    """Interface of a dataset entry (see module docstring)."""

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    # Normalisation statistics a base trained by this suite uses as its first layer.
    mean: tuple[float, ...]
    std: tuple[float, ...]
    label: str  # how tables name the data
    # Images of the training split held out as the validation split (class-stratified, fixed): recipes are chosen
    # on it, never on the test images. 0: the dataset has no training split to hold images out of.
    val_size: int = 0

    def load(self, split: str, root: Path | None, cache_dir: Path, download: bool = False) -> Dataset:
        raise NotImplementedError

    def augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return x


class Digits(DatasetSpec):
    """scikit-learn's built-in 8x8 handwritten digits (1,797 images; ships with the package, so fully offline).

    Fixed split: a permutation seeded with 0 puts 1,397 images in ``train`` and 400 in ``test``.
    """

    name = "digits"
    num_classes = 10
    image_shape = (1, 8, 8)
    mean = (0.3,)
    std = (0.4,)
    label = "scikit-learn digits (8x8)"
    n_test = 400
    val_size = 200

    def load(self, split: str, root: Path | None, cache_dir: Path, download: bool = False) -> Dataset:
        from sklearn.datasets import load_digits

        if split not in ("train", "test"):
            raise BenchmarkError(f"digits has splits 'train' and 'test', not {split!r}")
        bunch = load_digits()
        order = np.random.RandomState(0).permutation(len(bunch.target))
        chosen = order[-self.n_test :] if split == "test" else order[: -self.n_test]
        # Pixel values are integers 0..16.
        images = torch.from_numpy(bunch.images[chosen] / 16.0).float().unsqueeze(1)
        return TensorDataset(images, torch.from_numpy(bunch.target[chosen]).long())


def _decode(path: str, loader, shape: tuple[int, int, int]) -> torch.Tensor:
    """One image as uint8 ``[H,W,C]``; a file that cannot be decoded, or of another size, is named in one line."""
    try:
        pixels = np.array(loader(path), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as err:  # PIL: unidentified, truncated or broken files
        raise BenchmarkError(f"image {path} cannot be decoded ({err}): replace or remove it") from None
    channels, height, width = shape
    if pixels.shape != (height, width, channels):
        raise BenchmarkError(
            f"image {path} is {pixels.shape[1]}x{pixels.shape[0]}, not {width}x{height} like the "
            "rest of the dataset: replace or remove it"
        )
    return torch.from_numpy(pixels)


def _image_folder_to_uint8(folder: Path, cache_dir: Path, shape: tuple[int, int, int]) -> UInt8Images:
    """Decode an ImageFolder tree once into uint8 tensors, cached as .pt (JPEG decoding each epoch is slow)."""
    from torchvision.datasets import ImageFolder

    try:
        tree = ImageFolder(str(folder))
    except (FileNotFoundError, PermissionError) as err:
        raise BenchmarkError(f"{folder} is not a readable tree of class folders ({err}): fix --data-root") from None
    listing = "\n".join(f"{p}\t{c}" for p, c in tree.samples)
    key = hashlib.sha256(listing.encode()).hexdigest()[:12]
    cache = cache_dir / "data" / f"{folder.parent.name}-{folder.name}-{key}.pt"
    if cache.is_file():
        try:
            blob = torch.load(cache, weights_only=True)
            return UInt8Images(blob["images"], blob["labels"])
        except Exception as err:  # noqa: BLE001 - a damaged cache file: one line, and it is only a cache
            raise BenchmarkError(f"cached data {cache} is unreadable ({type(err).__name__}): delete it") from None
    images = torch.stack([_decode(p, tree.loader, shape) for p, _ in tree.samples])
    images = images.permute(0, 3, 1, 2).contiguous()  # [N,H,W,C] -> [N,C,H,W]
    labels = torch.tensor(tree.targets, dtype=torch.long)
    write_atomic(cache, lambda tmp: torch.save({"images": images, "labels": labels}, tmp))
    return UInt8Images(images, labels)


class CIFAR10(DatasetSpec):
    """CIFAR-10 (Krizhevsky 2009), 32x32 RGB, 10 classes.

    Read from torchvision's files (``cifar-10-batches-py``) under the root when present (or downloaded with
    ``--download``), otherwise from an ImageFolder tree ``root/train``, ``root/test`` whose class folders sort in
    the official label order, such as the JPEG q75 copy in ../shared/data/cifar10.
    """

    name = "cifar10"
    num_classes = 10
    image_shape = (3, 32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    label = "CIFAR-10"
    val_size = 5000  # 500 per class of the 50,000 training images

    def load(self, split: str, root: Path | None, cache_dir: Path, download: bool = False) -> Dataset:
        if split not in ("train", "test"):
            raise BenchmarkError(f"cifar10 has splits 'train' and 'test', not {split!r}")
        if root is None:
            raise BenchmarkError("cifar10 needs a data root: pass --data-root DIR (e.g. ../shared/data/cifar10)")
        # torchvision's files first, then an ImageFolder tree; only when neither is there, a download (if allowed)
        if (root / "cifar-10-batches-py").is_dir() or (download and not (root / split).is_dir()):
            from torchvision.datasets import CIFAR10 as TVCIFAR10

            ds = TVCIFAR10(str(root), train=split == "train", download=download)
            images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
            return UInt8Images(images, torch.tensor(ds.targets, dtype=torch.long))
        if (root / split).is_dir():
            # tables must say when numbers come from a re-encoded copy (e.g. ../shared's JPEG q75 tree)
            jpeg = next((root / split).rglob("*.jpg"), None) is not None
            self.label = "CIFAR-10 (JPEG q75 copy)" if jpeg else "CIFAR-10 (ImageFolder copy)"
            return _image_folder_to_uint8(root / split, cache_dir, self.image_shape)
        raise BenchmarkError(
            f"CIFAR-10 not found under {root}: pass --data-root pointing at a folder with cifar-10-batches-py/ "
            f"or train/ and test/ class folders, or add --download"
        )

    def augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return random_crop_flip(x, generator)


class ImageNet(DatasetSpec):
    """ImageNet-1k validation as an ImageFolder (``root/val/<wnid>/*.JPEG``), resize 256 and centre crop 224.

    Class folders must sort in the standard wnid order so labels match torchvision/timm checkpoints
    (Hadisalman/smoothing-adversarial #3: permuted labels silently ruin a certificate table).
    """

    name = "imagenet"
    num_classes = 1000
    image_shape = (3, 224, 224)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    label = "ImageNet"

    def load(self, split: str, root: Path | None, cache_dir: Path, download: bool = False) -> Dataset:
        from torchvision import transforms
        from torchvision.datasets import ImageFolder

        folder = None if root is None else root / split
        if folder is None or not folder.is_dir():
            raise BenchmarkError(
                f"ImageNet {split} not found under {root}: pass --data-root DIR with {split}/<wnid>/ class folders"
            )
        tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
        return ImageFolder(str(folder), transform=tf)

    def augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def subset_indices(length: int, start: int, skip: int, max_images: int | None, seed: int = 0) -> list[int]:
    """The evaluation subset in the order it is certified.

    The subset is the test indices ``start, start + skip, ...``, certified in a fixed order shuffled by ``seed``, and
    ``max_images`` keeps the first ones in that order. An ImageFolder copy of a test set is sorted by class, so in
    index order a partial row (a session that ended, ``--max-images 20``) would hold the first classes only; in
    the shuffled order every prefix is a random sample of the subset, and the same one for every method.
    """
    indices = np.arange(start, length, skip)
    # the constant salts the stream, so that the order shares no draws with anything else seeded by ``seed``
    order = indices[np.random.default_rng([int(seed), 0x5B]).permutation(len(indices))].tolist()
    return order if max_images is None else order[:max_images]
