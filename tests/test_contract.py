"""Contract tests parametrised over every registry key: a new entry is covered by adding its registry line."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from benchmark.bases import BaseClassifier, BuildContext, base_spec
from benchmark.bases.pretrained import SmallCNN, SmallViT
from benchmark.config.hashing import config_hash
from benchmark.config.overrides import override_dataclass
from benchmark.config.registry import BASES, DATASETS, METHODS
from benchmark.data.datasets import Digits
from benchmark.method import Method, MethodContext, cost, fit_method
from benchmark.run.store import FitStore
from tests.conftest import SHARED


def tiny_base(family: str) -> BaseClassifier:
    """A 2-layer conv net or a 2-block timm ViT on 1x8x8 inputs (randomly initialised, frozen as the harness does)."""
    torch.manual_seed(0)
    ds = Digits()
    if family == "cnn":
        spec, cfg = SmallCNN(), SmallCNN.Config(width=4, depth=2)
    else:
        spec, cfg = SmallViT(), SmallViT.Config(width=16, depth=2, patch_size=4)
    base = spec.make_model(cfg, ds).eval()
    base.requires_grad_(False)
    return base


def context(tmp_path, family: str = "cnn") -> MethodContext:
    """The harness' services on tiny models; ``fit`` gives another method's tiny config, fitted (the harness would
    take it from the fit store)."""

    def fit(name: str, sigma: float, settings: dict | None = None) -> Method:
        cls = METHODS.get(name)
        config = override_dataclass(cls.Config.tiny(), settings or {}, "test")
        method = cls(config, tiny_base(family), ctx)
        if method.needs_fit():
            fit_tiny(method, sigma)
        return method

    ctx = MethodContext(
        dataset=Digits(), device=torch.device("cpu"), seed=0, build_base=lambda name: tiny_base("cnn"), fit=fit
    )
    return ctx


def train_data():
    return Digits().load("train", None, None)


def fit_tiny(method, sigma: float = 0.25):
    """Fit ``method`` on the digits training split through the one loop (seed 0, CPU)."""
    return fit_method(method, sigma, train_data(), device=torch.device("cpu"), seed=0)


@pytest.mark.parametrize("name", METHODS.names())
@pytest.mark.parametrize("family", ["cnn", "vit"])
def test_method_contract(name, family, tmp_path):
    check_method_contract(name, family, tmp_path)


def check_method_contract(name: str, family: str, tmp_path) -> None:
    """What every registered method must satisfy; each failure says what to implement or set."""
    cls = METHODS.get(name)
    check_declarations(name, cls)
    config = cls.Config.tiny()
    ctx = context(tmp_path, family)
    base = tiny_base(family)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    method = cls(config, base, ctx)
    if method.needs_fit():
        check_fit(cls, method, config, family, ctx)
    else:
        assert all(torch.equal(before[k], v) for k, v in base.state_dict().items()), (
            "trainable_parameters() is empty, yet building the method changed the base: return what it trains"
        )
    clf = method.noisy_classifier(0.25)
    assert isinstance(clf, nn.Module), "noisy_classifier(sigma) must return an nn.Module (noisy images -> logits)"
    with torch.no_grad():
        logits = clf(torch.rand(5, 1, 8, 8))
    assert logits.shape == (5, 10) and torch.isfinite(logits).all(), (
        f"noisy_classifier(sigma) must map [N, C, H, W] images to finite [N, classes] logits: {tuple(logits.shape)}"
    )
    if cls.family != "cascade":  # an attack or audit on it needs the input gradient through all it trained
        from benchmark.method import white_box

        x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(2), requires_grad=True)
        with white_box():  # the evaluator's access (a black-box method was fitted by queries only)
            (grad,) = torch.autograd.grad(clf(x).logsumexp(dim=1).sum(), x)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, (
            "no input gradient through noisy_classifier(sigma): attacks would do nothing (no torch.no_grad() or "
            "detach() in its forward)"
        )
    check_cost(method, family)
    assert isinstance(method.report(0.25), dict), "report(sigma) must return a dict (settings shown beside results)"


def check_declarations(name: str, cls) -> None:
    """The class attributes the harness, the plots and the README read."""
    from benchmark.method import FAMILIES

    assert issubclass(cls, Method), f"{cls.__qualname__} must subclass benchmark.method.Method"
    assert cls.name == name, f"set name = {name!r} on {cls.__qualname__} (its registry key), got {cls.name!r}"
    assert isinstance(cls.version, int), f"version must be an int (raise it when a fit changes), got {cls.version!r}"
    assert cls.family in FAMILIES, f"set family to one of {FAMILIES} on {cls.__qualname__}, got {cls.family!r}"
    assert set(cls.fit_ignores) <= {"base", "sigma", "precision"}, (
        f'fit_ignores may name only "base", "sigma" and "precision", got {sorted(cls.fit_ignores)}'
    )
    for attr in ("summary", "paper"):
        assert isinstance(cls.__dict__.get(attr), str) and cls.__dict__[attr], (
            f"set {attr} = '...' on {cls.__qualname__} itself (the README's Methods table is generated from its "
            "summary and paper: python -m benchmark leaderboard)"
        )
    assert callable(getattr(cls.Config, "tiny", None)), (
        f"give {cls.__qualname__}.Config a classmethod tiny() returning a seconds-long configuration"
    )
    config = cls.Config.tiny()
    assert dataclasses.is_dataclass(config) and isinstance(config, cls.Config), (
        "Config must be a dataclass and Config.tiny() one of its instances"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):  # @dataclass(frozen=True): settings are hashed
        config.__setattr__("x_y_z", 1)
    config_hash(config)  # serialisable and hashable


def check_fit(cls, method, config, family: str, ctx) -> None:
    """A method that trains: its fit reaches the noisy classifier, and its fit state restores it."""
    sigma = 0.25
    assert method.trainable_parameters(), "needs_fit() is true but trainable_parameters() is empty"
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        untrained = method.noisy_classifier(sigma)(x)
    result = fit_tiny(method, sigma)
    assert result.steps > 0 and torch.isfinite(torch.tensor(result.final_loss)), (
        f"training_loss(batch, sigma, generator) must return a finite scalar, got {result.final_loss}"
    )
    with torch.no_grad():
        trained = method.noisy_classifier(sigma)(x)
    # the fit is what certification sees: a method whose training does not reach its noisy classifier is broken
    assert not torch.allclose(trained, untrained), (
        "fitting left the noisy classifier's outputs unchanged: noisy_classifier(sigma) must use the modules whose "
        "parameters trainable_parameters() returns"
    )
    state = method.fit_state()
    assert state and all(isinstance(t, torch.Tensor) for t in state.values()), (
        "fit_state() must return the fitted tensors (override fit_module() if they are not in the base)"
    )
    fresh = cls(config, tiny_base(family), ctx)
    fresh.load_fit(state)
    with torch.no_grad():
        torch.testing.assert_close(
            fresh.noisy_classifier(sigma)(x),
            trained,
            msg=lambda m: (
                f"a fresh method after load_fit(fit_state()) differs from the fitted one: fit_module() must "
                f"hold all that training changed ({m})"
            ),
        )


def check_cost(method, family: str) -> None:
    spent = cost(method)
    assert set(spent) >= {"trainable_params", "trainable_pct", "stored_bytes", "base_params"}
    # a share of the base's own size, the same for every method on it (modules a method adds into the base are
    # not counted there); may pass 100 % when a method adds more than the base has (CAF's adapters do)
    assert spent["base_params"] == sum(p.numel() for p in tiny_base(family).parameters()), (
        "base_params must count the clean base (call super().__init__ before adding modules into the base)"
    )
    assert spent["trainable_pct"] == pytest.approx(100.0 * spent["trainable_params"] / spent["base_params"])
    own = sum(p.numel() for p in method.trainable_parameters())
    composed = [] if method.needs_fit() else method.ctx.composed  # what a composition is built from
    parts = {id(p): p.numel() for part in composed for p in part.trainable_parameters()}
    # its own trainable parameters, and those of the fits it composes (a cascade's stages), each distinct state once
    assert own <= spent["trainable_params"] <= own + sum(parts.values()), (
        "cost counts trainable_parameters() and those of the fits ctx.fit handed a composition: each parameter once"
    )
    assert (spent["trainable_params"] > own) == bool(parts), (
        "a method that trains nothing must get its parts from ctx.fit"
    )


@pytest.mark.parametrize("name", METHODS.names())
def test_method_config_overrides_validate(name):
    cls = METHODS.get(name)
    from benchmark.errors import BenchmarkError

    with pytest.raises(BenchmarkError, match="unknown setting"):
        override_dataclass(cls.Config(), {"no_such_setting": 1}, f"[method_settings.{name}]")


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_contract(name, tmp_path):
    spec = DATASETS.get(name)()
    assert spec.name == name and spec.num_classes >= 2 and len(spec.image_shape) == 3
    assert len(spec.mean) == len(spec.std) == spec.image_shape[0]
    if name == "digits":
        test = spec.load("test", None, tmp_path)
        x, y = test[0]
        assert tuple(x.shape) == spec.image_shape and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert len(test) == 400 and len(spec.load("train", None, tmp_path)) == 1397
        assert torch.equal(spec.load("test", None, tmp_path)[7][0], test[7][0])  # fixed split
    else:
        from benchmark.errors import BenchmarkError

        with pytest.raises(BenchmarkError, match="--data-root"):
            spec.load("test", tmp_path / "missing", tmp_path)
    batch = torch.rand(3, *spec.image_shape)
    out = spec.augment(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape


@pytest.mark.parametrize("name", BASES.names())
def test_base_contract(name, tmp_path):
    spec = base_spec(name)
    assert spec.name == name
    config = spec.Config()
    config_hash(config)
    ctx = BuildContext(device=torch.device("cpu"), store=FitStore(tmp_path))
    if name in ("small_cnn", "small_vit"):
        tiny = override_dataclass(
            config,
            {"width": 16, "depth": 2, "patch_size": 4, "train": {"epochs": 1, "max_steps_per_epoch": 2}},
            "test",
        )
        model = spec.build(tiny, Digits(), ctx)
        again = spec.build(tiny, Digits(), ctx)  # cached: same weights, no retraining
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
            assert torch.equal(a, b)
        info = (ctx.store.cache_path(*spec.fit_slot(tiny, Digits(), 0), kind="bases") / "fit.json").read_text()
        assert "clean_accuracy" in info
        x = torch.rand(2, 1, 8, 8)
    else:
        weights = SHARED / "models"
        if not weights.is_dir():
            pytest.skip("../shared/models is not present")
        from benchmark.data.datasets import CIFAR10

        model = spec.build(override_dataclass(config, {"weights_dir": str(weights)}, "test"), CIFAR10(), ctx)
        x = torch.rand(2, 3, 32, 32)
    assert isinstance(model, BaseClassifier) and model.family in ("cnn", "vit")
    with torch.no_grad():
        assert model(x).shape == (2, 10)


def test_timm_prefix_builds_any_timm_model(tmp_path):
    spec = base_spec("timm:resnet10t")
    cfg = override_dataclass(spec.Config(), {"pretrained": False, "input_size": 16}, "test")
    model = spec.build(cfg, Digits(), BuildContext(device=torch.device("cpu"), store=FitStore(tmp_path)))
    with torch.no_grad():
        assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("name", ["peft_lora", "peft_prompt", "peft_adapter", "peft_blackbox"])
def test_methods_on_a_tiny_random_timm_vit(name, tmp_path):
    """The GPU suites' ViT-B/16 path, exercised with a tiny randomly initialised timm ViT (nothing downloaded)."""
    spec = base_spec("timm:vit_tiny_patch16_224")
    cfg = override_dataclass(
        spec.Config(),
        {
            "pretrained": False,
            "model_kwargs": {"img_size": 8, "patch_size": 4, "embed_dim": 16, "depth": 2, "num_heads": 2},
        },
        "test",
    )
    base = spec.build(cfg, Digits(), BuildContext(device=torch.device("cpu"), store=FitStore(tmp_path)))
    base.requires_grad_(False)
    assert base.family == "vit" and base.input_size == 8
    cls = METHODS.get(name)
    method = cls(cls.Config.tiny(), base, context(tmp_path))
    fit_tiny(method)
    with torch.no_grad():
        assert method.noisy_classifier(0.25)(torch.rand(3, 1, 8, 8)).shape == (3, 10)
