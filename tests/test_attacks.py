"""PGD, the adaptive vs non-adaptive attack, ADAPT's training attack, and the certificate audit."""

from __future__ import annotations

import json
import re

import pytest
import torch

from benchmark.certificates.smoothing import certify
from benchmark.cli.parser import main
from benchmark.evaluate.attack import AttackRecord, AttackSettings, evaluate
from benchmark.evaluate.audit import AuditSettings, audit_image, summary
from benchmark.evaluate.pgd import cross_entropy, pgd, project
from methods.peft_smoothing import PaddingPrompt, PromptedClassifier
from tests.conftest import LinearClassifier
from tests.test_contract import context, fit_tiny, tiny_base


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_ball_and_the_box(norm):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    eps = 0.1 if norm == "linf" else 0.5
    x_adv = pgd(
        cross_entropy(model, y),
        x,
        norm=norm,
        eps=eps,
        step=eps / 4,
        steps=10,
        restarts=2,
        generator=torch.Generator().manual_seed(1),
    )
    delta = (x_adv - x).flatten(1)
    size = delta.abs().max(dim=1).values if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-6).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    loss = torch.nn.functional.cross_entropy
    assert loss(model(x_adv), y) > loss(model(x), y)
    assert torch.equal(project(torch.full((1, 3), 2.0), "linf", 0.5), torch.full((1, 3), 0.5))


def test_the_adaptive_attack_beats_the_one_crafted_on_the_unprompted_base():
    """A prompt changes the function: gradients of the base without it transfer badly, those through it do not."""
    torch.manual_seed(0)
    base = tiny_base("cnn")
    prompt = PaddingPrompt(1, 8, 2)
    with torch.no_grad():
        for p in prompt.parameters():
            p.copy_(torch.randn_like(p) * 2.0)
    prompted = PromptedClassifier(prompt, base).eval()
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = prompted(x).argmax(dim=1)  # labels the prompted model gets right: clean accuracy 100 %
    settings = AttackSettings(eps=0.05, step=0.0125, steps=10)
    _, adaptive, moved = evaluate(prompted, prompted, x, y, 0.0, settings, torch.Generator().manual_seed(3))
    _, transfer, _ = evaluate(prompted, base, x, y, 0.0, settings, torch.Generator().manual_seed(3))
    assert (moved <= 0.05 + 1e-6).all() and moved.max() > 0.04  # inside the l-infinity ball, and out to its edge
    adaptive_acc, transfer_acc = (adaptive == y).float().mean(), (transfer == y).float().mean()
    assert adaptive_acc < transfer_acc - 0.2, (adaptive_acc, transfer_acc)


@pytest.mark.parametrize("name", ["adapt", "prompt_at"])
def test_adapt_and_prompt_at_attack_different_models_in_training(name, tmp_path, monkeypatch):
    """ADAPT crafts its training attack through the prompts; prompt_at on the un-prompted base."""
    from benchmark.config.registry import METHODS

    cls = METHODS.get(name)
    method = cls(cls.Config.tiny(), tiny_base("vit"), context(tmp_path, "vit"))
    seen = []
    real = method.attacked_model

    def spy():
        model = real()
        seen.append(model)
        return model

    monkeypatch.setattr(method, "attacked_model", spy)
    fit_tiny(method, sigma=0.0)
    assert seen and all((m is method.model) == (name == "adapt") for m in seen)
    # prompt_at: the model as it is now, prompts left out (its trained head shared), not a stale copy of the base
    from methods.adapt import WithoutPrompt

    assert all(isinstance(m, WithoutPrompt) and m.model is method.model for m in seen) == (name == "prompt_at")
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        unprompted = method.without_prompt()(x)
        torch.testing.assert_close(unprompted, method.model.net.vit.forward(method.model.normalize(x)))
        assert not torch.allclose(unprompted, method.model(x))


def _linear_case():
    w = torch.zeros(1, 4, 4)
    w[0, 0, 0] = 1.0
    clf = LinearClassifier(w, -0.3)  # class 1 where x[0, 0, 0] > 0.3
    x = torch.full((1, 4, 4), 0.5)  # distance 0.2 to the boundary: the exact smoothed radius
    return clf, x


@pytest.mark.parametrize("scale,flips", [(1.0, False), (2.0, True)])
def test_audit_catches_an_unsound_certifier(scale, flips):
    """A sound certificate (radius <= 0.2, the exact one) survives the attack; doubled radii do not."""
    clf, x = _linear_case()
    sigma = 0.25
    cert = certify(clf, x, sigma, 100, 10_000, 0.001, 2_000, torch.Generator().manual_seed(0), precision=None)
    assert cert.prediction == 1 and 0.1 < cert.radius <= 0.2
    settings = AuditSettings(steps=20, m=16, n=2_000, alpha=0.001)
    result = audit_image(
        clf, x, cert.prediction, scale * cert.radius, sigma, settings, 2_000, torch.Generator().manual_seed(1)
    )
    assert bool(result["flipped"]) == flips and result["p_after"] < result["p_before"]
    assert result["moved"] <= scale * cert.radius + 1e-6


def test_audit_summary_gives_the_expected_bound():
    from benchmark.evaluate.audit import AuditRecord

    rows = [AuditRecord(i, 1, 1, 0.3, 0.3, 0.9, 0.6, 1, 0) for i in range(500)]
    stats = summary(rows, 0.001, 0.001)
    assert stats["attacked"] == 500 and stats["flipped"] == 0 and stats["allowed"] == pytest.approx(1.0)
    assert stats["mean_drop"] == pytest.approx(0.3)


def test_audit_and_attack_commands_end_to_end(run_args, tmp_path):
    """run, then audit the ranked gaussian run and attack vanilla: records, pages, and a rerun that resumes."""
    assert main(["run", *run_args, "--methods", "gaussian,vanilla", "--sigma", "0.25"]) == 0
    common = [a for a in run_args if a not in ("--quiet",)]
    assert (
        main(
            [
                "audit",
                *common,
                "--methods",
                "gaussian",
                "--sigma",
                "0.25",
                "--max-images",
                "2",
                "--steps",
                "3",
                "--samples",
                "4",
                "--predict-n",
                "200",
            ]
        )
        == 0
    )
    audit_dirs = list((tmp_path / "results" / "tiny" / "audit").glob("gaussian/*/sigma_0.25/*"))
    assert len(audit_dirs) == 1
    lines = (audit_dirs[0] / "records.jsonl").read_text().splitlines()
    assert 1 <= len(lines) <= 2 and all(
        json.loads(line)["moved"] <= json.loads(line)["radius"] + 1e-6 for line in lines
    )
    page = (tmp_path / "lb" / "tiny-audit.md").read_text()
    assert "| gaussian | small_cnn | 0.25 |" in page and "allowed (expected)" in page
    args = ["attack", *common, "--methods", "vanilla", "--max-images", "4", "--eps", "8/255", "--steps", "2"]
    assert main(args) == 0 and main(args) == 0  # the second finds every image done
    (attack_dir,) = (tmp_path / "results" / "tiny" / "attack").glob("vanilla/*/sigma_0/*")
    assert len((attack_dir / "records.jsonl").read_text().splitlines()) == 4
    table = (tmp_path / "lb" / "tiny-attack.md").read_text()
    assert "| vanilla | small_cnn | 0 | PGD-2 linf eps 8/255 | 4 |" in table
    assert main(["attack", *common, "--methods", "vanilla", "--sigma", "-1"]) == 2
    assert main(["audit", *common, "--methods", "multiscale_gaussian"]) == 2  # cascades are not audited
    assert main(["attack", *common, "--methods", "multiscale_gaussian"]) == 2  # nor attacked


def test_caf_is_differentiable_through_its_frozen_extractor(tmp_path):
    """An attack on caf must see the extractor's gradient, not the adapter's alone (zero at the start)."""
    from methods.caf import CAF, CAFConfig

    model = CAF(CAFConfig.tiny(), tiny_base("cnn"), context(tmp_path)).noisy_classifier(0.25)
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(model(x).logsumexp(dim=1).sum(), x)
    assert grad.abs().sum() > 0
    assert not any(p.grad is not None for p in model.extractor.parameters())


def test_adapt_losses_are_the_papers():
    """ADAPT-CE and ADAPT-KL (beta = 6) against hand computation; prompt_at's is CE on the attacked input alone."""
    from benchmark.config.registry import METHODS
    from methods.adapt import AdaptConfig

    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    x_adv = (x + 0.1).clamp(0, 1)
    y = torch.tensor([0, 1, 2, 3])
    for loss in ("ce", "kl"):  # the objective reads only the config and the model: no base or context needed
        method = METHODS.get("adapt").__new__(METHODS.get("adapt"))
        method.config = AdaptConfig(loss=loss)
        method.model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
        torch.manual_seed(0)
        torch.nn.init.normal_(method.model[1].weight)
        with torch.no_grad():
            clean, adv = method.model(x), method.model(x_adv)
            p, q = clean.softmax(1), adv.softmax(1)
            ce = torch.nn.functional.cross_entropy
            expected = ce(clean, y) + 6.0 * (ce(adv, y) if loss == "ce" else (p * (p.log() - q.log())).sum(1).mean())
            torch.testing.assert_close(method.objective(x, x_adv, y), expected)
    plain = METHODS.get("prompt_at").__new__(METHODS.get("prompt_at"))
    plain.config, plain.model = AdaptConfig(), method.model
    with torch.no_grad():
        torch.testing.assert_close(plain.objective(x, x_adv, y), ce(adv, y))


def test_adapt_at_sigma_trains_on_smoothadvs_l2_attack_with_shared_noise(tmp_path, monkeypatch):
    """At sigma > 0: an l2 PGD of radius smooth_eps on the soft smoothed classifier, and the loss on the same draws."""
    import methods.adapt as adapt
    from benchmark.config.registry import METHODS
    from methods.adapt import AdaptConfig

    config = AdaptConfig(**{**AdaptConfig.tiny().__dict__, "smooth_eps": 0.7, "smooth_m": 3})
    method = METHODS.get("adapt")(config, tiny_base("cnn"), context(tmp_path))
    calls = []

    def no_move(loss, x, **kw):
        calls.append((kw, loss(x)))
        return x  # the attack's point is x itself: the loss below is then known

    monkeypatch.setattr(adapt, "pgd", no_move)
    x, y = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(6)), torch.arange(5)
    with torch.no_grad():
        loss = method.training_loss((x, y), 0.5, torch.Generator().manual_seed(7))
    ((kw, attack_loss),) = calls
    assert (kw["norm"], kw["eps"], kw["step"], kw["steps"]) == ("l2", 0.7, 2 * 0.7 / config.steps, config.steps)
    noise = 0.5 * torch.randn((3, *x.shape), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = torch.stack([method.objective(x + n, x + n, y) for n in noise]).mean()
        probs = torch.stack([method.model(x + n).softmax(1) for n in noise]).mean(0)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(attack_loss, -probs.gather(1, y.view(-1, 1)).squeeze(1).log())
    assert method.report(0.5)["train_attack"] == "SmoothAdv l2 0.7, 2 steps, m=3"


def test_the_attack_command_crafts_where_it_says(tmp_path):
    """Adaptive: the attacked model itself; non-adaptive: a prompted method without its prompts, else the clean
    base."""
    from benchmark.config.registry import METHODS
    from benchmark.evaluate.attack import attack_source
    from methods.adapt import WithoutPrompt

    adapt = METHODS.get("adapt")(METHODS.get("adapt").Config.tiny(), tiny_base("vit"), context(tmp_path, "vit"))
    model = adapt.noisy_classifier(0.0)
    clean = tiny_base("vit")
    assert attack_source(adapt, model, False, lambda: clean) is model
    source = attack_source(adapt, model, True, lambda: clean)
    assert isinstance(source, WithoutPrompt) and source.model is adapt.model
    vanilla = METHODS.get("vanilla")(METHODS.get("vanilla").Config.tiny(), tiny_base("cnn"), context(tmp_path))
    assert attack_source(vanilla, vanilla.noisy_classifier(0.0), True, lambda: clean) is clean


def test_a_resumed_attack_records_what_an_uncut_one_does(run_args, tmp_path):
    """An image's random start and noise come from its chunk of the subset: a resumed attack redoes the cut chunk."""
    common = [a for a in run_args if a not in ("--quiet",)]
    # l2 with a small step: the size moved is the random start's, a continuous trace of the generator used
    args = [
        "attack",
        *common,
        "--methods",
        "vanilla",
        "--max-images",
        "5",
        "--norm",
        "l2",
        "--eps",
        "0.5",
        "--step",
        "0.01",
        "--steps",
        "1",
        "--batch-images",
        "3",
        "--sigma",
        "0.25",
        "--eot",
        "2",
        "--votes",
        "5",
    ]
    assert main(args) == 0
    (directory,) = (tmp_path / "results" / "tiny" / "attack").glob("vanilla/*/sigma_0.25/*")
    records = directory / "records.jsonl"
    whole = {json.loads(line)["idx"]: json.loads(line) for line in records.read_text().splitlines()}
    records.write_text("".join(line + "\n" for line in records.read_text().splitlines()[:4]))  # cut in chunk 2
    assert main(args) == 0
    again = {json.loads(line)["idx"]: json.loads(line) for line in records.read_text().splitlines()}
    strip = lambda rows: {i: {k: v for k, v in r.items() if k != "time_s"} for i, r in rows.items()}  # noqa: E731
    assert len(records.read_text().splitlines()) == 5 and strip(again) == strip(whole)


def test_the_attack_page_pairs_rows_only_on_the_same_attack_and_images():
    """The obfuscation gap (non-adaptive - adaptive) and a named pair, as exact paired counts; a row under another
    attack is never read against them."""
    from benchmark.report.attack_page import paired_markdown

    def entry(method, robust, non_adaptive=False, steps=10, batch=32, images=10, state="s"):
        settings = {"norm": "linf", "eps": 8 / 255, "steps": steps, "non_adaptive": non_adaptive, "batch": batch}
        label = f"PGD-{steps}" + (" (non-adaptive: crafted without the method's prompts)" * non_adaptive)
        meta = {
            "method": method,
            "base": "vit",
            "sigma": 0,
            "settings": settings,
            "fit": {"state_sha256": state},
            "label": label,
        }
        return meta, [AttackRecord(i, 1, 1, int(i < robust), 0.0, 0.0) for i in range(images)]

    # beside each full row, a 3-image try of the same attack (none robust): never the one paired
    entries = [
        entry("p", 0, images=3),
        entry("p", 3),
        entry("p", 8, non_adaptive=True, batch=16),
        entry("p", 0, non_adaptive=True, images=3),
        entry("a", 6),
        entry("a", 0, images=3),
        entry("a", 9, steps=50),
        entry("q", 9, non_adaptive=True, steps=50),
    ]
    lines = paired_markdown(entries, [("a", "p"), ("p", "a"), ("q", "a")])
    body = [line for line in lines if line.startswith("| ") and "difference" not in line]
    # the interval is a seeded bootstrap: only its bracketing of the difference is a known answer
    row = r"\| (.+) \| vit \| 0 \| PGD-10 \| 10 \| ([-+.\d]+) \[([-+.\d]+), ([-+.\d]+)\] \| (.+) \|"
    cells = [re.fullmatch(row, line) for line in body]
    assert all(cells)
    assert [c[1] for c in cells] == ["p: non-adaptive − adaptive", "a − p (adaptive)", "p − a (adaptive)"]
    assert [(float(c[2]), c[5]) for c in cells] == [(50.0, "0.062"), (30.0, "0.25"), (-30.0, "0.25")]
    assert all(float(c[3]) < float(c[2]) < float(c[4]) for c in cells)
    # q's adaptive row is under another attack than a's 10 steps; q's non-adaptive row has no adaptive partner
    apart = [entry("q", 9, steps=50), entry("a", 6), entry("q", 9, non_adaptive=True)]
    assert paired_markdown(apart, [("q", "a")]) == []
    # the gap is one fitted state's: a non-adaptive row of another state (an older recipe) is not read against it
    assert paired_markdown([entry("p", 3), entry("p", 8, non_adaptive=True, state="old")], []) == []


def test_attacked_fits_are_published_and_a_resume_keeps_to_their_state(run_args, tmp_path, capsys):
    """publish-fits commits the sigma-0 fit an attack evaluated (no certified run names it); an attack resumed with
    another state under the same fit hash (a refit elsewhere) is refused instead of mixing records."""
    import shutil

    from safetensors.torch import load_file, save_file

    from benchmark.files import sha256_file

    common = [a for a in run_args if a not in ("--quiet",)]
    args = ["attack", *common, "--methods", "gaussian", "--max-images", "3", "--steps", "1"]
    assert main(args) == 0
    (directory,) = (tmp_path / "results" / "tiny" / "attack").glob("gaussian/*/sigma_0/*")
    fit = json.loads((directory / "attack.json").read_text())["fit"]
    assert main(["publish-fits", "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]) == 0
    published = tmp_path / "results" / "checkpoints" / "gaussian" / fit["fit_hash"] / "state.safetensors"
    assert sha256_file(published) == fit["state_sha256"]

    shutil.move(published.parent, tmp_path / "kept")
    cached = tmp_path / "cache" / "fits" / "gaussian" / fit["fit_hash"] / "state.safetensors"
    state = load_file(str(cached))
    name = next(k for k, v in state.items() if v.is_floating_point())
    save_file({**state, name: state[name] + 1.0}, str(cached))  # a refit here: another state under the same hash
    capsys.readouterr()
    assert main(["publish-fits", "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "not the one its results record" in capsys.readouterr().out and not published.exists()

    records = directory / "records.jsonl"
    records.write_text(records.read_text().splitlines()[0] + "\n")  # cut: two images left to attack
    shutil.rmtree(tmp_path / "cache" / "fits")  # another machine, the state neither cached nor published
    assert main(args) == 2  # refused before a refit, which would not be the records' state
    assert "in neither the cache nor the published fits" in capsys.readouterr().err
    assert not (tmp_path / "cache" / "fits" / "gaussian").exists()
    shutil.move(tmp_path / "kept", published.parent)

    state = load_file(str(published))  # another state under the same hash, published
    save_file({**state, name: state[name] + 1.0}, str(published))
    info = published.parent / "fit.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "state_sha256": sha256_file(published)}))
    capsys.readouterr()
    assert main(args) == 2
    assert "came from fitted state" in capsys.readouterr().err
    assert len(records.read_text().splitlines()) == 1


class _Reported:
    def __init__(self, report):
        self._report = report

    def report(self, sigma):
        return self._report


@pytest.mark.parametrize("epochs, shown", [(1, "pgd, 1 epoch"), (2, "pgd, 2 epochs"), (0.5, "pgd, 0.5 epochs")])
def test_the_attack_page_says_how_long_the_method_trained(epochs, shown):
    from benchmark.evaluate.attack import trained_with

    assert trained_with(_Reported({"train_attack": "pgd", "epochs": epochs}), 0.0) == shown
    assert trained_with(_Reported({}), 0.0) is None
