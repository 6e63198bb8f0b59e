"""The GPU suites rehearsed on CPU: each suite's own file, with only what a CPU and no network force changed."""

from __future__ import annotations

import pytest
import torch

from benchmark.cli.parser import main
from benchmark.config.suite import SUITES_DIR
from benchmark.run.records import latest_runs

BIG = "timm:vit_base_patch16_224.augreg_in21k_ft_in1k"
TINY = "timm:vit_tiny_patch16_224"
# A 1-block, 16-wide ViT at the suite's 224 px, randomly initialised: the ViT-B/16 code path, no download.
TINY_SETTINGS = "pretrained = false\nmodel_kwargs = { depth = 1, embed_dim = 16, num_heads = 2 }\n"


def _tree(root, split: str, classes: list[str], per_class: int, side: int, suffix: str) -> None:
    from PIL import Image

    rng = __import__("numpy").random.default_rng(0)
    for name in classes:
        (root / split / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (side, side, 3), dtype="uint8")
            Image.fromarray(pixels).save(root / split / name / f"{i}{suffix}", quality=75)


def _rehearsal(suite: str, tmp_path):
    text = (SUITES_DIR / f"{suite}.toml").read_text().replace(BIG, TINY)
    if f'[base_settings."{TINY}"]' in text:
        text = text.replace("pretrained = true\n", TINY_SETTINGS)
    else:
        text += f'\n[base_settings."{TINY}"]\n{TINY_SETTINGS}'
    path = tmp_path / f"{suite}.toml"
    path.write_text(text)
    data = tmp_path / "data"
    if suite == "cifar10":
        classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        for split in ("train", "test"):
            _tree(data, split, classes, 3, 32, ".jpg")
    else:
        for split in ("train", "val"):
            _tree(data, split, ["n01440764", "n01443537"], 3, 64, ".JPEG")
    return path, data


@pytest.mark.parametrize("suite", ["cifar10", "imagenet"])
def test_a_gpu_suite_runs_its_own_configuration_on_cpu(suite, tmp_path, capsys):
    path, data = _rehearsal(suite, tmp_path)
    args = [
        "run",
        "--suite",
        str(path),
        "--data-root",
        str(data),
        "--device",
        "cpu",
        "--max-images",
        "1",
        "--n",
        "100",
        "--results",
        str(tmp_path / "r"),
        "--cache-dir",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "lb"),
        "--quiet",
        "--allow-dirty",
    ]
    assert main(args) == 0, capsys.readouterr().err
    runs = latest_runs(tmp_path / "r", suite)
    assert {r.info.method for r in runs} == {"vanilla", "gaussian"} and all(len(r.records) == 1 for r in runs)
    assert {r.info.sigma for r in runs} == {0.25, 0.5, 1.0}
    assert (tmp_path / "lb" / f"{suite}.md").is_file()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_the_cuda_engine_votes_as_fp32_does_on_a_clear_case(precision):
    from benchmark.certificates.smoothing import certify, image_generator
    from tests.conftest import LinearClassifier

    w = torch.ones(64, device="cuda") / 8.0
    clf, x = LinearClassifier(w, 0.5), torch.zeros(1, 8, 8, device="cuda")
    fast = certify(clf, x, 0.25, 100, 10_000, 0.001, generator=image_generator(0, 0, "cuda"), precision=precision)
    exact = certify(clf, x, 0.25, 100, 10_000, 0.001, generator=image_generator(0, 0, "cuda"), precision="fp32")
    assert fast.prediction == exact.prediction == 1 and abs(fast.radius - exact.radius) < 0.01
