"""Configuration: precedence, validation, stable hashes."""

from __future__ import annotations

import pytest

from benchmark.config.hashing import config_hash
from benchmark.config.registry import METHODS, Registry
from benchmark.config.run_config import build_run_config
from benchmark.config.suite import is_published, snapshots, suite_names
from benchmark.errors import BenchmarkError
from benchmark.report.readme import readme_suites


def test_precedence_defaults_suite_cli():
    cfg = build_run_config("quick", {})
    assert cfg.dataset == "digits" and cfg.n == 1000 and cfg.sigmas == (0.25, 0.5)
    cfg = build_run_config("quick", {"n": 500, "sigmas": [0.12], "seed": None})
    assert cfg.n == 500 and cfg.sigmas == (0.12,) and cfg.seed == 0


def test_every_suite_parses():
    """Every shipped suite file resolves to the settings it writes (name, dataset, sigmas, sample counts, methods,
    bases, as tomllib reads them from the file itself), each method and base a registered name."""
    import tomllib

    from benchmark.config.registry import BASES
    from benchmark.config.suite import SUITES_DIR

    names = suite_names()
    assert {"quick", "cifar10-cpu", "cifar10", "imagenet"} <= set(names)
    for name in names:
        table = tomllib.loads((SUITES_DIR / f"{name}.toml").read_text())
        cfg = build_run_config(name, {})
        assert cfg.suite == table["name"] == name
        for key in ("dataset", "sigmas", "n0", "n", "alpha", "skip", "methods", "bases"):
            value = getattr(cfg, key)
            assert (list(value) if isinstance(value, tuple) else value) == table[key], f"{name}: {key}"
        resolved = METHODS.resolve(",".join(cfg.methods))  # "all": every registered method
        assert resolved == (METHODS.names() if "all" in cfg.methods else list(dict.fromkeys(cfg.methods)))
        assert all(b.startswith("timm:") or b in BASES.names() for b in cfg.bases), f"{name}: {cfg.bases}"
    cfg = build_run_config("cifar10-cpu", {})
    assert cfg.n == 10_000 and cfg.skip == 50 and cfg.data_root.endswith("shared/data/cifar10")


def test_unknown_suite_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndataset = "digits"\nsigmas = [0.25]\nsigmass = [1]\n')
    with pytest.raises(BenchmarkError, match="did you mean 'sigmas'"):
        build_run_config(str(bad), {})


def test_hash_is_canonical():
    assert config_hash({"a": 1, "b": [1.5, 2]}) == config_hash({"b": (1.5, 2), "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_registry():
    assert METHODS.resolve("all") == METHODS.names()
    assert METHODS.resolve("gaussian, vanilla,gaussian") == ["gaussian", "vanilla"]
    with pytest.raises(BenchmarkError, match="did you mean"):
        METHODS.resolve("vanila")
    reg = Registry("thing", {"a": "m:A"})
    with pytest.raises(ValueError, match="twice"):
        reg.register("a", "m:B")


def test_only_published_suites_reach_the_readme(tmp_path):
    """The quick suite's results are each user's smoke output: the README's summary leaves them out, so its
    first command does not rewrite a tracked file; paper-scale suites and suites known by no file are kept."""
    assert not is_published("quick") and is_published("cifar10-cpu") and is_published("my-own-suite")
    for suite in ("quick", "cifar10-cpu", "my-own-suite"):
        run = tmp_path / suite / "vanilla" / "base" / "sigma_0.25" / "abc"
        run.mkdir(parents=True)
        (run / "run.json").write_text("{}")
    summarised = readme_suites(tmp_path, snapshots(["quick", "cifar10-cpu", "my-own-suite"]))
    assert [snap.name for snap in summarised] == ["cifar10-cpu", "my-own-suite"]
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\ndataset = "digits"\nsigmas = [0.25]\npublished = "no"\n')
    with pytest.raises(BenchmarkError, match="published must be true or false"):
        build_run_config(str(bad), {})


def test_the_branches_kept_for_old_hashes_are_these_and_do_what_they_say():
    """Keys that joined the record key later stay out of it at their first value (so older runs keep their folders)
    and are in it at any other value (so new runs never share a folder with old ones). A new late key must be added
    here on purpose: this list is the whole of the compatibility kept for hashes."""
    from benchmark.config.hashing import LATE_KEYS, config_hash, record_key

    assert LATE_KEYS == {"train_split": "train", "certify": "fixed", "engine": "eager"}
    base = {"method": "gaussian", "sigma": 0.25, "precision": "bf16"}
    for name, first in LATE_KEYS.items():
        assert config_hash(record_key({**base, name: first})) == config_hash(base)
        assert config_hash(record_key({**base, name: "other"})) != config_hash(base)
