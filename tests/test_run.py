"""End-to-end runs of a tiny suite: outputs, provenance, determinism, resume after SIGKILL, fit caching."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from benchmark.certificates.device import Precision
from benchmark.cli.parser import main
from benchmark.config.hashing import config_hash
from benchmark.config.registry import METHODS
from benchmark.config.suite import snapshot
from benchmark.data.datasets import subset_indices
from benchmark.files import sha256_file
from benchmark.report import plots
from benchmark.report.cells import data_names, precision_note
from benchmark.report.leaderboard import leaderboard_rows
from benchmark.report.readme import readme_block
from benchmark.run.records import latest_runs

ROOT = Path(__file__).resolve().parents[1]
STABLE = ("idx", "label", "prediction", "correct", "radius", "p_a_lower", "n_top", "config_hash")
# the fields of a record line of a certificate without details (fixed-n CERTIFY)
FIXED_RECORD_KEYS = {
    "method",
    "config_hash",
    "dataset",
    "split",
    "idx",
    "sigma",
    "seed",
    "n0",
    "n",
    "alpha",
    "label",
    "prediction",
    "correct",
    "radius",
    "p_a_lower",
    "n_top",
    "n_used",
    "time_s",
    "mode",
}


def records(results: Path, suite: str = "tiny") -> dict:
    return {r.key: [{k: getattr(x, k) for k in STABLE} for x in r.records] for r in latest_runs(results, suite)}


def lines_on_disk(results: Path, suite: str = "tiny") -> int:
    """Record lines in every records file of the suite: readers keep one record per image, the files may not."""
    return sum(len(p.read_text().splitlines()) for p in results.glob(f"{suite}/*/*/*/*/records*.jsonl"))


def test_tiny_suite_run_writes_everything(run_args, tmp_path):
    assert main(["run", *run_args, "--methods", "all"]) == 0
    results, lb = tmp_path / "results", tmp_path / "lb"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    runs = latest_runs(results, "tiny")
    cascades = {m for m in METHODS.names() if METHODS.get(m).family == "cascade"}
    # a cascade is one cell per base, at the smallest sigma of its set
    assert {(r.info.method, r.info.sigma) for r in runs} == {
        (m, s) for m in METHODS.names() for s in ((0.25,) if m in cascades else (0.25, 0.5))
    }
    for run in runs:
        assert len(run.records) == 8 and run.info.status == "complete"
        info = json.loads((run.directory / "run.json").read_text())
        # provenance: the resolved configuration under its hash (the run's folder), the seed, the command, the code,
        # the packages, the device and the totals of the records
        assert info["config_hash"] == config_hash(info["config"]) == run.directory.name
        assert (info["config"]["method"], info["config"]["n0"], info["config"]["n"]) == (run.info.method, 20, 100)
        assert info["seed"] == info["config"]["seed"] == 0 and info["device"] == "cpu"
        assert info["argv"][3:] == sys.argv[1:] and info["git"]["sha"] == (head or None)
        assert info["packages"]["torch"] == version("torch")
        assert info["timings"]["images"] == 8 and info["timings"]["certify_time_s"] > 0
        lines = [json.loads(x) for x in (run.directory / "records.jsonl").read_text().splitlines()]
        assert sorted(x["idx"] for x in lines) == sorted(r.idx for r in run.records)
        assert all(r.correct in (0, 1) for r in run.records)
        if run.info.method in cascades:
            # 20 + 100 samples per stage tried; the stage, the sigma certified at and the cap are recorded
            levels = run.info.stage_sigmas
            assert levels == sorted(levels) and levels[0] == 0.25 and len(levels) >= 2
            assert all(
                r.mode == "cascade" and r.n_used in {120 * k for k in range(1, len(levels) + 1)} for r in run.records
            )
            # every line on disk: the common fields, and the cascade's own in its details (the deciding stage; the
            # sigma it certified at unless it abstained; the cap r_neg only where an earlier, larger sigma gave one)
            for x in lines:
                d = x["details"]
                assert set(x) == FIXED_RECORD_KEYS | {"details"} and set(d) <= {"stage", "sigma_used", "r_neg"}
                assert "stage" in d and ("sigma_used" in d) == (x["prediction"] != -1)
                assert "r_neg" not in d or d["stage"] > 0
                assert d.get("sigma_used", levels[-1 - d["stage"]]) == levels[-1 - d["stage"]]
            # the fits certified with: those a cascade composes, or the DDPM a calibration started from
            assert info["fit"].get("composes") or "diffusion" in info["fit"].get("init_fits", {})
            continue
        # n0 + n = 20 + 100 samples, as counted by the certifier; every record names its certificate
        assert all(r.n_used == 120 and r.mode == "fixed" for r in run.records)
        # records of a certificate without details keep their form: every line has exactly the fields it always had
        assert all(set(x) == FIXED_RECORD_KEYS for x in lines)
    gauss = next(r for r in runs if r.info.method == "gaussian")
    assert gauss.info.cost["trainable_pct"] == 100.0 and gauss.info.timings["fit_time_s"] > 0
    blackbox = next(r for r in runs if r.info.method == "peft_blackbox")
    # counted by the harness through ctx.query_only: 3 steps x 2 directions x 2 evaluations x 16 images
    assert blackbox.info.fit["queries"] == 3 * 2 * 2 * 16 and blackbox.info.fit["backward_calls_through_base"] == 0
    csv = (lb / "tiny.csv").read_text().splitlines()
    assert csv[0].startswith("method,base,sigma,n_images,n,alpha,trainable_params,trainable_pct,fit_time_s,")
    assert "acc@0.25" in csv[0] and len(csv) == 1 + 2 * len(METHODS.names()) - len(cascades)
    md = (lb / "tiny.md").read_text()
    assert "python -m benchmark leaderboard" in md and "R_max" in md
    envelope = md.split("### Envelope over sigma")[1]
    names = [m for m in METHODS.names() if m not in cascades]  # a cascade is its own combination of sigmas
    assert all(f"| {m} | " in envelope for m in names) and envelope.count(" | 0.25, 0.5 |") == len(names)
    assert list((lb / "tiny").glob("*.png"))
    # a cascade: one row named with its sigma set, its notes say where images were certified, a figure of its own
    assert "| multiscale_gaussian (cascade over sigma 0.25/0.5/1) |" in md and "certified per stage: " in md
    assert (lb / "tiny" / "small_cnn_multiscale_gaussian.png").is_file()
    # regenerating from results alone gives the same table
    before = (lb / "tiny.csv").read_text()
    assert main(["leaderboard", "--results", str(results), "--out", str(lb)]) == 0
    assert (lb / "tiny.csv").read_text() == before


def test_records_independent_of_batch_size_and_rerun_is_noop(run_args, tmp_path):
    assert main(["run", *run_args, "--methods", "vanilla", "--batch-size", "7"]) == 0
    first = records(tmp_path / "results")
    other = [a if a != str(tmp_path / "results") else str(tmp_path / "results2") for a in run_args]
    assert main(["run", *other, "--methods", "vanilla", "--batch-size", "120"]) == 0
    assert records(tmp_path / "results2") == first
    assert lines_on_disk(tmp_path / "results") == 16  # 8 images x 2 sigmas
    assert main(["run", *run_args, "--methods", "vanilla"]) == 0  # everything done: nothing appended
    assert lines_on_disk(tmp_path / "results") == 16 and records(tmp_path / "results") == first
    assert main(["run", *run_args, "--methods", "vanilla", "--fresh"]) == 0  # started over: each image once
    assert lines_on_disk(tmp_path / "results") == 16 and records(tmp_path / "results") == first


def test_certification_order_is_a_seeded_shuffle_of_the_subset():
    """Any prefix of the order is a random sample of the subset: on a class-sorted ImageFolder copy (200 images,
    20 per class in index order) the first 20 certified span most classes instead of one."""
    order = subset_indices(10_000, 0, 50, None, seed=0)
    assert sorted(order) == list(range(0, 10_000, 50))
    assert order == subset_indices(10_000, 0, 50, None, seed=0) != subset_indices(10_000, 0, 50, None, seed=1)
    assert subset_indices(10_000, 0, 50, 20, seed=0) == order[:20]
    assert len({idx // 1000 for idx in order[:20]}) >= 6  # class = idx // 1000 in the sorted copy


def test_max_images_extends_the_same_run(run_args, tmp_path):
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "3"]) == 0
    (run,) = latest_runs(tmp_path / "results", "tiny")
    assert [r.idx for r in run.records] == sorted(subset_indices(400, 0, 50, 3, seed=0))
    assert run.info.status == "complete"
    assert main(["run", *run_args, "--methods", "vanilla", "--sigma", "0.25"]) == 0
    (run,) = latest_runs(tmp_path / "results", "tiny")
    assert [r.idx for r in run.records] == list(range(0, 400, 50))


def _tree(root: Path) -> dict:
    return {str(f): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()} if root.exists() else {}


def test_dry_run_reports_and_touches_nothing(run_args, tmp_path, capsys):
    """`run --dry-run` says per run what is done and left, where its fit would come from, and an estimate only
    where the run's own records measured a rate; it writes nothing, fits nothing and deletes nothing (not even
    with --fresh), and names a run of the same cell in the other precision."""
    one = [*run_args, "--methods", "vanilla,gaussian", "--sigma", "0.25"]
    assert main(["run", *one, "--max-images", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache" / "fits").exists()
    lines = out.splitlines()
    assert [line.split()[1] for line in lines[1:3]] == ["vanilla", "gaussian"]
    assert all("   0/3 " in line and "not started" in line for line in lines[1:3])
    assert "not saved (fitted first" in lines[2]
    assert lines[-1].startswith("2 runs, 2 with images left") and "2 not started" in lines[-1]

    assert main(["run", *one, "--max-images", "2", "--precision", "fp32"]) == 0
    capsys.readouterr()
    before = _tree(tmp_path / "results") | _tree(tmp_path / "cache")
    (run,) = [r for r in latest_runs(tmp_path / "results", "tiny") if r.info.method == "gaussian"]
    (vanilla,) = [r for r in latest_runs(tmp_path / "results", "tiny") if r.info.method == "vanilla"]
    rate = sum(r.time_s for r in vanilla.records) / 2
    for extra in ([], ["--fresh"]):
        assert main(["run", *one, "--max-images", "3", "--precision", "fp32", "--dry-run", *extra]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert _tree(tmp_path / "results") | _tree(tmp_path / "cache") == before
        if not extra:
            assert "   2/3 " in lines[1] and f"at {rate:.3g} s/img (measured)" in lines[1]
            assert f"{run.info.fit['fit_hash']} cached" in lines[2]
        else:  # --fresh would start over: nothing counts as done, and nothing is deleted by the dry run
            assert "   0/3 " in lines[1] and "not started" in lines[1]
    assert main(["run", *one, "--max-images", "3", "--precision", "bf16", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"fp32 run {vanilla.directory.name} has 2/3 (--precision fp32)" in lines[1]
    # Under other settings, --precision would start a new run rather than resume that one: no such hint.
    assert main(["run", *one, "--max-images", "3", "--precision", "bf16", "--seed", "1", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"fp32 run {vanilla.directory.name} of other settings has 2/3" in lines[1] and "--precision" not in lines[1]


def test_shards_make_the_same_run(run_args, tmp_path):
    """Two shards give the records of one unsharded run, each in its own file; the run is complete, with totals
    over both, only when both have run."""
    one = [*run_args, "--methods", "vanilla", "--sigma", "0.25"]
    assert main(["run", *one]) == 0
    whole = records(tmp_path / "results")
    sharded = [a if a != str(tmp_path / "results") else str(tmp_path / "sharded") for a in one]
    assert main(["run", *sharded, "--shard", "1/2"]) == 0
    (run,) = latest_runs(tmp_path / "sharded", "tiny")
    order = subset_indices(400, 0, 50, None, seed=0)  # the tiny suite's subset, in certification order
    assert run.info.status == "partial" and [r.idx for r in run.records] == sorted(order[1::2])
    assert main(["run", *sharded, "--shard", "0/2"]) == 0
    assert records(tmp_path / "sharded") == whole
    (run,) = latest_runs(tmp_path / "sharded", "tiny")
    assert sorted(p.name for p in run.directory.glob("records*")) == ["records-0of2.jsonl", "records-1of2.jsonl"]
    assert run.info.status == "complete" and run.info.timings["images"] == 8
    assert run.info.timings["certify_time_s"] == sum(r.time_s for r in run.records)
    assert run.info.run_settings["shard"] == "0/2"


def test_concurrent_shards_fit_once(tiny_suite, tmp_path, monkeypatch):
    """Shards started together share the caches: a lock lets one pretrain the base and fit the method while the
    other waits, then loads."""
    import threading

    import benchmark.run.session as session_module
    from benchmark.bases.pretrained import Pretrained
    from benchmark.config.run_config import build_run_config
    from benchmark.run.session import Session

    calls, pretrained = [], []
    real_fit, real_pretrain = session_module.fit_method, Pretrained.pretrain

    def slow_fit(*args, **kwargs):
        calls.append(threading.get_ident())
        time.sleep(0.5)  # so that the second shard arrives while the first is fitting
        return real_fit(*args, **kwargs)

    def counted_pretrain(self, *args, **kwargs):
        pretrained.append(self.name)
        time.sleep(0.5)
        return real_pretrain(self, *args, **kwargs)

    monkeypatch.setattr(session_module, "fit_method", slow_fit)
    monkeypatch.setattr(Pretrained, "pretrain", counted_pretrain)
    cfg = build_run_config(str(tiny_suite), {"cache_dir": str(tmp_path / "cache"), "results": str(tmp_path / "r")})
    fits: list[dict] = []
    threads = [
        threading.Thread(
            target=lambda: fits.append((session := Session(cfg)).fit(session.cell("gaussian", "small_cnn", 0.25))[1])
        )
        for k in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert pretrained == ["small_cnn"] and len(calls) == 1 and len(fits) == 2
    assert sorted(f["cached"] for f in fits) == [False, True]
    assert fits[0]["state_sha256"] == fits[1]["state_sha256"]


def test_a_run_in_another_precision_stands_beside_the_first(run_args, tmp_path, monkeypatch):
    """Precision "auto" resolves by CPU: an fp32 run of a row first certified in bf16 is its own run, listed apart
    and unranked while the preferred precision's run is complete; it is ranked, labelled, once that one is not."""
    titles: list[str] = []
    axes = plots._axes
    monkeypatch.setattr(plots, "_axes", lambda title: titles.append(title) or axes(title))
    one = [*run_args, "--methods", "vanilla", "--sigma", "0.25", "--max-images", "2"]
    assert main(["run", *one, "--precision", "bf16"]) == 0
    # One precision: the curves carry none, so the titles name it.
    assert titles and all("[bf16]" in t for t in titles)
    assert main(["run", *one, "--precision", "fp32"]) == 0
    runs = latest_runs(tmp_path / "results", "tiny")
    assert sorted(r.precision for r in runs) == ["bf16", "fp32"]
    md = (tmp_path / "lb" / "tiny.md").read_text()
    # two images of the subset's eight: complete, and named so; bf16 is the preferred precision of a suite on "auto"
    assert "| best | vanilla (2 of 8 images) |" in md and "| vanilla | fp32 | other precision |" in md
    assert "Precision: every `small_cnn` row ran in bf16." in md
    csv = (tmp_path / "lb" / "tiny.csv").read_text()
    header = csv.splitlines()[0]
    assert header.endswith(",stage_shares,composed_fit_time_s,train_epochs,train_steps,optimizer,lr,budget_differs")
    assert ",bf16" in csv and ",fp32" in csv
    # "running" left in run.json by a killed process, with no writer alive, is what its records are, "partial":
    # the bf16 run is then not ranked, and the complete fp32 run is.
    bf16 = next(r for r in runs if r.precision == "bf16")
    info = json.loads((bf16.directory / "run.json").read_text())
    (bf16.directory / "run.json").write_text(json.dumps({**info, "status": "running"}))
    rows, _ = leaderboard_rows(tmp_path / "results", snapshot("tiny"))
    assert [(r["precision"], r["ranked"], r["unranked"]) for r in rows] == [
        ("fp32", True, ""),
        ("bf16", False, "partial"),
    ]
    block = readme_block(tmp_path / "results", "cmd", [snapshot("tiny")])
    assert "| vanilla (2 of 8 images) |" in block and "every `small_cnn` row ran in fp32" in block
    # Each row carries its trainable share (vanilla trains nothing: 0.00) before its image count.
    assert "| ACR | trainable % | images |" in block and "| 0.00 | 2 |" in block
    # One dataset, one name in the tables: an older run's coarser label gives way to the newest run's.
    newest_label = info["dataset_label"]
    (bf16.directory / "run.json").write_text(json.dumps({**info, "dataset_label": "Digits", "updated": "2000"}))
    rows, _ = leaderboard_rows(tmp_path / "results", snapshot("tiny"))
    assert sorted(r["dataset"] for r in rows) == sorted(["Digits", newest_label])
    assert data_names(rows) == newest_label
    assert f"**tiny** ({newest_label}; n =" in readme_block(tmp_path / "results", "cmd", [snapshot("tiny")])


def test_a_fit_that_ignores_precision_serves_both(run_args, tmp_path):
    """peft_blackbox fits in fp32 whatever the precision: the bf16 row reuses the fp32 row's fitted state (one
    fit on disk), while gaussian, whose fit runs under autocast, is fitted once per precision."""
    for method in ("peft_blackbox", "gaussian"):
        one = [*run_args, "--methods", method, "--sigma", "0.25", "--max-images", "1"]
        assert main(["run", *one, "--precision", "fp32"]) == 0
        assert main(["run", *one, "--precision", "bf16"]) == 0
    fits = tmp_path / "cache" / "fits"
    assert len(list(fits.glob("peft_blackbox/*/state.safetensors"))) == 1
    assert len(list(fits.glob("gaussian/*/state.safetensors"))) == 2
    runs = {(r.info.method, r.precision): r.info.fit for r in latest_runs(tmp_path / "results", "tiny")}
    assert runs["peft_blackbox", "bf16"]["cached"] is True
    assert runs["peft_blackbox", "bf16"]["state_sha256"] == runs["peft_blackbox", "fp32"]["state_sha256"]
    assert "precision" not in runs["peft_blackbox", "fp32"]["fit_key"]


def test_fit_is_cached(run_args, tmp_path):
    assert main(["run", *run_args, "--methods", "gaussian", "--sigma", "0.25", "--max-images", "1"]) == 0
    fits = list((tmp_path / "cache" / "fits" / "gaussian").glob("*/state.safetensors"))
    assert len(fits) == 1
    mtime = fits[0].stat().st_mtime_ns
    assert main(["run", *run_args, "--methods", "gaussian", "--sigma", "0.25", "--max-images", "2"]) == 0
    assert fits[0].stat().st_mtime_ns == mtime
    (run,) = latest_runs(tmp_path / "results", "tiny")
    assert run.info.fit["cached"] is True and len(run.records) == 2


def test_published_fit_resumes_on_a_machine_without_the_cache(run_args, tmp_path, capsys):
    import shutil

    args = ["run", *run_args, "--methods", "gaussian", "--sigma", "0.25"]
    assert main([*args, "--max-images", "1"]) == 0
    assert main(["publish-fits", "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]) == 0
    (published,) = (tmp_path / "results" / "checkpoints" / "gaussian").glob("*/state.safetensors")
    assert "published" in capsys.readouterr().out
    (run,) = latest_runs(tmp_path / "results", "tiny")
    assert json.loads((published.parent / "fit.json").read_text())["state_sha256"] == run.info.fit["state_sha256"]

    shutil.rmtree(tmp_path / "cache" / "fits")  # a new machine: only what was committed
    assert main([*args, "--max-images", "2"]) == 0
    assert not (tmp_path / "cache" / "fits" / "gaussian").exists()
    (run,) = latest_runs(tmp_path / "results", "tiny")
    assert run.info.fit["cached"] is True and len(run.records) == 2

    # A different state under the same fit hash must not extend records certified with the first one.
    from safetensors.torch import load_file, save_file

    state = load_file(str(published))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 1.0
    save_file(state, str(published))
    capsys.readouterr()
    assert main([*args, "--max-images", "3"]) == 2  # fit.json's SHA-256 no longer matches: damaged
    assert "does not match the SHA-256" in capsys.readouterr().err
    info_path = published.parent / "fit.json"  # a consistent state, but not the one the records came from
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "state_sha256": sha256_file(published)}))
    assert main([*args, "--max-images", "3"]) == 2
    assert "rerun with --fresh" in capsys.readouterr().err
    (run,) = latest_runs(tmp_path / "results", "tiny")
    assert len(run.records) == 2


def test_a_fine_tune_names_its_start_and_publishes_it(run_args, tmp_path, capsys):
    """dncnn_stab starts from the dncnn fit: its fit.json names that fit and its state's hash, and publish-fits
    commits both; the start of a fit still unfinished in the cache is committed too, so it need not be refitted
    on the next machine."""
    import shutil

    cache, results = tmp_path / "cache", tmp_path / "results"
    assert main(["run", *run_args, "--methods", "dncnn_stab", "--sigma", "0.25", "--max-images", "1"]) == 0
    ((stab_dir,), (mse_dir,)) = (list((cache / "fits" / m).glob("*/")) for m in ("dncnn_stab", "dncnn"))
    inputs = json.loads((stab_dir / "fit.json").read_text())["init_fits"]
    assert inputs == {"dncnn": {"fit_hash": mse_dir.name, "state_sha256": sha256_file(mse_dir / "state.safetensors")}}
    publish = ["publish-fits", "--results", str(results), "--cache-dir", str(cache)]
    assert main(publish) == 0
    out = capsys.readouterr().out
    assert f"dncnn {mse_dir.name} (start of dncnn_stab {stab_dir.name}): published" in out
    published = results / "checkpoints" / "dncnn" / mse_dir.name / "state.safetensors"
    assert published.read_bytes() == (mse_dir / "state.safetensors").read_bytes()

    # A session ends mid fine-tune: no run, no state of its own yet, only the inputs it wrote before its loop.
    for folder in results.iterdir():
        shutil.rmtree(folder)
    (stab_dir / "state.safetensors").unlink()
    (stab_dir / "fit.json").unlink()
    assert main(publish) == 0
    assert f"(start of unfinished dncnn_stab {stab_dir.name}): published" in capsys.readouterr().out
    assert published.is_file() and not (results / "checkpoints" / "dncnn_stab").exists()


def test_a_cascade_names_the_fits_it_composes_and_publishes_them(run_args, tmp_path, capsys):
    """multiscale_gaussian trains nothing itself: run.json names the gaussian fit of each stage, publish-fits commits
    them, and only then is the row's fit published (a committed suite ranks it)."""
    from benchmark.run.ranking import fit_published

    cache, results = tmp_path / "cache", tmp_path / "results"
    assert main(["run", *run_args, "--methods", "multiscale_gaussian", "--max-images", "2"]) == 0
    (run,) = latest_runs(results, "tiny")
    composes = run.info.fit["composes"]
    assert run.info.sigma == 0.25 and run.info.stage_sigmas == [0.25, 0.5, 1.0]
    assert sorted(composes) == ["gaussian", "gaussian@0.5", "gaussian@1"]
    assert {c.get("method", "gaussian") for c in composes.values()} == {"gaussian"}
    assert not fit_published(run) and run.info.cost["trainable_params"] > 0
    assert main(["publish-fits", "--results", str(results), "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert out.count("(start of multiscale_gaussian run") == 3 and out.count(": published") == 4
    assert "small_cnn-digits" in out and "(base of multiscale_gaussian run" in out  # the base the suite trained
    assert fit_published(run)
    # the fits come back from the store on a rerun with more images: the same three states
    assert main(["run", *run_args, "--methods", "multiscale_gaussian", "--max-images", "3"]) == 0
    (again,) = latest_runs(results, "tiny")
    assert again.info.fit["composes"] == composes and len(again.records) == 3


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_resume_after_a_kill_matches_uninterrupted(run_args, tmp_path, sig):
    """Kill a real run mid-way, rerun the same command: the records equal an uninterrupted run. SIGTERM is an
    orderly stop: exit 130, run.json says "partial" and counts the records kept; SIGKILL leaves it as the run
    wrote it on starting, "partial", and readers say "running" only while the process lives."""
    slow = [
        *run_args,
        "--methods",
        "vanilla",
        "--sigma",
        "0.25",
        "--n",
        "20000",
        "--skip",
        "10",
        "--max-images",
        "12",
        "--no-leaderboard",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "run", *slow], cwd=ROOT, env=env)
    results = tmp_path / "results"
    deadline = time.time() + 120
    while time.time() < deadline:
        files = list(results.glob("tiny/vanilla/*/*/*/records.jsonl"))
        if files and len(files[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    (live,) = latest_runs(results, "tiny")
    assert live.status == "running", "a reader sees the live writer"
    proc.send_signal(sig)
    assert proc.wait() == (130 if sig == signal.SIGTERM else -signal.SIGKILL)
    done_before = len(files[0].read_text().splitlines())
    assert 3 <= done_before < 12, "the run finished before it could be killed"
    info = json.loads((files[0].parent / "run.json").read_text())
    assert info["status"] == "partial"
    if sig == signal.SIGTERM:
        assert info["images_done"] == done_before
    (dead,) = latest_runs(results, "tiny")
    assert dead.status == "partial"
    assert subprocess.run([sys.executable, "-m", "benchmark", "run", *slow], cwd=ROOT, env=env).returncode == 0
    resumed = records(results)
    other = [a if a != str(results) else str(tmp_path / "clean") for a in slow]
    assert main(["run", *other]) == 0
    assert resumed == records(tmp_path / "clean")
    (run,) = latest_runs(results, "tiny")
    assert len(run.records) == 12 and run.info.sessions == 2 and run.info.status == "complete"
    json.dumps(run.info.to_json())


def test_pretrain_command_trains_and_caches_a_vit(tiny_suite, tmp_path, capsys):
    """`pretrain` trains the suite's own ViT on clean data once, then reuses it; run.json records accuracy and cost."""
    args = ["pretrain", "--suite", str(tiny_suite), "--bases", "small_vit", "--cache-dir", str(tmp_path / "c")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "small_vit: clean accuracy" in out
    (info_path,) = (tmp_path / "c" / "bases").glob("small_vit-digits/*/fit.json")
    info = json.loads(info_path.read_text())
    assert 0.0 <= info["clean_accuracy"] <= 1.0 and info["fit"]["time_s"] > 0 and info["params"] > 0
    weights = info_path.parent / "state.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert main(args) == 0
    assert weights.stat().st_mtime_ns == mtime


def test_a_base_whose_rows_share_one_precision_says_it_once():
    """Rows of one precision carry no label, so the page and the README block must name it for their base."""
    rows = [
        {"base": "cnn", "precision": "bf16"},
        {"base": "cnn", "precision": "fp32"},
        {"base": "vit", "precision": "fp32"},
        {"base": "vit", "precision": "fp32"},
    ]
    assert precision_note(rows) == "Precision: every `vit` row ran in fp32; elsewhere in brackets after each method."
    assert precision_note(rows[2:]) == "Precision: every `vit` row ran in fp32."
    assert precision_note(rows[:2]) == "Precision: in brackets after each method."


def test_method_settings_by_base_change_only_that_base(tiny_suite, tmp_path):
    """[method_settings.<m>.by_base.<base>] overrides the method on one base; the other base's configuration, and
    so its config hash and its finished rows, stay exactly as they were."""
    from benchmark.config.run_config import build_run_config
    from benchmark.errors import BenchmarkError
    from benchmark.run.plan import method_config, plan

    overrides = {
        "results": str(tmp_path / "r"),
        "cache_dir": str(tmp_path / "c"),
        "bases": ["small_cnn", "small_vit"],
        "methods": ["peft_lora"],
    }
    plain = build_run_config(str(tiny_suite), overrides)
    text = tiny_suite.read_text() + "\n[method_settings.peft_lora.by_base.small_cnn]\nlora_rank = 1\n"
    tiny_suite.write_text(text)
    per_base = build_run_config(str(tiny_suite), overrides)
    cnn = method_config(per_base, "peft_lora", "small_cnn")
    assert cnn.lora_rank == 1 and cnn.train == method_config(plain, "peft_lora", "small_cnn").train
    assert method_config(per_base, "peft_lora", "small_vit") == method_config(plain, "peft_lora", "small_vit")
    before = {(p.base, p.sigma): p.chash for p in plan(plain, 400, Precision.FP32)}
    after = {(p.base, p.sigma): p.chash for p in plan(per_base, 400, Precision.FP32)}
    assert all(after[k] == before[k] for k in before if k[0] == "small_vit")
    assert all(after[k] != before[k] for k in before if k[0] == "small_cnn") and len(before) == 4
    # A misspelt base or setting fails with the table to fix, not silently.
    tiny_suite.write_text(text + "[method_settings.peft_lora.by_base.small_cn]\nlora_rank = 1\n")
    with pytest.raises(BenchmarkError, match="small_cn"):
        method_config(build_run_config(str(tiny_suite), overrides), "peft_lora", "small_vit")
    tiny_suite.write_text(text.replace("lora_rank = 1", "lora_rnk = 1"))
    with pytest.raises(BenchmarkError, match=r"by_base\.small_cnn\].*lora_rank"):
        method_config(build_run_config(str(tiny_suite), overrides), "peft_lora", "small_cnn")


def test_recount_divides_by_the_base_alone(run_args, tmp_path, capsys):
    """`recount` corrects a run.json written when LoRA's own modules were counted in the denominator, touches
    nothing else, and leaves a correct one alone."""
    assert main(["run", *run_args, "--methods", "peft_lora", "--sigma", "0.25", "--max-images", "2"]) == 0
    (run,) = latest_runs(tmp_path / "results", "tiny")
    cost = run.info.cost
    original = json.loads((run.directory / "run.json").read_text())
    assert 0 < cost["trainable_params"] < cost["base_params"]
    # The base's own parameters, as the run's method was handed them.
    assert cost["trainable_pct"] == pytest.approx(100 * cost["trainable_params"] / cost["base_params"])
    legacy = {**cost, "base_params": cost["base_params"] + 500}
    legacy["trainable_pct"] = 100 * cost["trainable_params"] / legacy["base_params"]
    path = run.directory / "run.json"
    path.write_text(json.dumps({**original, "cost": legacy}))
    recount = [
        "recount",
        "--suite",
        run_args[1],
        "--results",
        str(tmp_path / "results"),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main(recount) == 0
    assert f"of {cost['base_params']:,})" in capsys.readouterr().out
    assert json.loads(path.read_text()) == original
    assert main(recount) == 0
    assert "nothing to correct" in capsys.readouterr().out


def _jpeg_cifar_tree(root: Path, per_class: int = 2) -> Path:
    """A CIFAR-10-shaped ImageFolder tree of random 32x32 JPEGs, class folders in the official order."""
    import numpy as np
    from PIL import Image

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / name / f"{i}.jpg", quality=75)
    return root


def test_recount_relabels_data_only_where_it_was_read(tiny_suite, tmp_path, capsys):
    """A run.json written before the JPEG copy was named so says "CIFAR-10"; `recount` names the data from what
    the recorded root holds, and leaves a run certified on another directory as it is."""
    data = _jpeg_cifar_tree(tmp_path / "cifar")
    tiny_suite.write_text(tiny_suite.read_text().replace('dataset = "digits"', 'dataset = "cifar10"'))
    store = ["--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache")]
    args = ["--suite", str(tiny_suite), *store, "--data-root", str(data)]
    assert (
        main(
            [
                "run",
                *args,
                "--out",
                str(tmp_path / "lb"),
                "--quiet",
                "--allow-dirty",
                "--methods",
                "vanilla",
                "--sigma",
                "0.25",
                "--n",
                "20",
                "--n0",
                "10",
                "--skip",
                "5",
            ]
        )
        == 0
    )
    (run,) = latest_runs(tmp_path / "results", "tiny")
    assert run.info.dataset_label == "CIFAR-10 (JPEG q75 copy)"
    path = run.directory / "run.json"
    original = json.loads(path.read_text())
    path.write_text(json.dumps({**original, "dataset_label": "CIFAR-10"}))
    elsewhere = _jpeg_cifar_tree(tmp_path / "other", per_class=1)
    assert main(["recount", "--suite", str(tiny_suite), *store, "--data-root", str(elsewhere)]) == 0
    assert "nothing to correct" in capsys.readouterr().out
    assert json.loads(path.read_text())["dataset_label"] == "CIFAR-10"
    assert main(["recount", *args]) == 0
    assert "data 'CIFAR-10' -> 'CIFAR-10 (JPEG q75 copy)'" in capsys.readouterr().out
    assert json.loads(path.read_text()) == original


def test_leaderboard_cells_equal_the_metrics_recomputed_from_the_records_on_disk(run_args, tmp_path):
    """Every number in the CSV and every percentage in the markdown comes from the records: recomputed here from
    the raw JSON lines (not through the readers the leaderboard uses), they agree cell by cell."""
    import csv

    assert main(["run", *run_args, "--methods", "vanilla,gaussian"]) == 0
    with open(tmp_path / "lb" / "tiny.csv") as fh:
        table = list(csv.DictReader(fh))
    md = (tmp_path / "lb" / "tiny.md").read_text()
    assert len(table) == 4
    for row in table:
        (records_file,) = (tmp_path / "results" / "tiny" / row["method"]).glob(
            f"*/sigma_{row['sigma']}/*/records.jsonl"
        )
        raw = [json.loads(line) for line in records_file.read_text().splitlines()]
        assert int(row["n_images"]) == len(raw) == 8
        cells = []
        for radius in (0.0, 0.25, 0.5, 0.75, 1.0):
            share = sum(r["prediction"] == r["label"] and r["radius"] >= radius for r in raw) / len(raw)
            assert float(row[f"acc@{radius:g}"]) == pytest.approx(share, abs=1e-12)
            cells.append(f"{100 * share:.1f}")
        acr = sum(r["radius"] for r in raw if r["prediction"] == r["label"]) / len(raw)
        assert float(row["acr"]) == pytest.approx(acr, abs=1e-12)
        assert float(row["abstain_rate"]) == pytest.approx(sum(r["prediction"] == -1 for r in raw) / len(raw))
        assert float(row["certify_s_per_image"]) == pytest.approx(sum(r["time_s"] for r in raw) / len(raw))
        for radius in (0.0, 0.25, 0.5, 0.75, 1.0):  # the interval holds the share it is of
            assert (
                float(row[f"acc@{radius:g}_lo"]) <= float(row[f"acc@{radius:g}"]) <= float(row[f"acc@{radius:g}_hi"])
            )
        assert float(row["acr_lo"]) <= acr <= float(row["acr_hi"])
        section = md.split(f"### sigma = {float(row['sigma']):g}")[1].split("###")[0]
        (line,) = [x for x in section.splitlines() if f"| {row['method']} |" in x]
        shown = [cell.strip().split(" (")[0] for cell in line.split("|")[3:9]]
        assert shown == [*cells, f"{acr:.3f}"]


@pytest.mark.parametrize("method", ["peft_lora", "dncnn"])
def test_the_same_config_refits_the_same_state(tiny_suite, tmp_path, method):
    """Initialisation and data order are seeded from the run's seed: two fits of one configuration in fresh
    caches end at bit-identical states, whatever ran before them in the process; another seed does not."""
    import torch

    from benchmark.config.run_config import build_run_config
    from benchmark.run.session import Session

    def state_hash(cache: str, seed: int = 0) -> str:
        torch.manual_seed(len(cache))  # a different global RNG state before each fit: it must not matter
        cfg = build_run_config(
            str(tiny_suite), {"cache_dir": str(tmp_path / cache), "results": str(tmp_path / "r"), "seed": seed}
        )
        session = Session(cfg)
        return session.fit(session.cell(method, "small_cnn", 0.25))[1]["state_sha256"]

    first = state_hash("a")
    assert state_hash("bb") == first
    assert state_hash("ccc", seed=1) != first


def test_frame_is_one_row_per_record_with_its_run_joined(run_args, tmp_path):
    """benchmark.report.frame.frame: the public table of results, the one the leaderboard is built from."""
    from benchmark.config.suite import snapshots
    from benchmark.report.frame import frame

    assert main(["run", *run_args, "--methods", "vanilla,gaussian", "--sigma", "0.25", "--max-images", "4"]) == 0
    df = frame(tmp_path / "results", suite="tiny", snapshots=snapshots(["tiny"]))
    assert len(df) == lines_on_disk(tmp_path / "results") == 8
    assert {"idx", "correct", "radius", "n_used", "mode", "base", "precision", "status", "ranked"} <= set(df.columns)
    assert df.ranked.all() and (df.status == "complete").all() and set(df.method) == {"vanilla", "gaussian"}
    rows, _ = leaderboard_rows(tmp_path / "results", snapshot("tiny"))
    for row in rows:
        assert df[df.method == row["method"]].correct.mean() == pytest.approx(row["acc@0"])
    assert frame(tmp_path / "results", suite="other", snapshots={}).empty


def test_method_settings_by_sigma_change_only_that_sigma(tiny_suite):
    """A recipe chosen per noise level: [method_settings.<m>.by_sigma."<s>"] applies at that sigma alone, over
    by_base; the other sigma keeps its settings and so its config hash."""
    from benchmark.config.run_config import build_run_config
    from benchmark.errors import BenchmarkError
    from benchmark.run.plan import cell, method_config

    plain = build_run_config(str(tiny_suite), {})
    text = tiny_suite.read_text() + '\n[method_settings.gaussian.by_sigma."0.5"]\ntrain = { lr = 0.05 }\n'
    tiny_suite.write_text(text)
    per_sigma = build_run_config(str(tiny_suite), {})
    assert method_config(per_sigma, "gaussian", "small_cnn", 0.5).train.lr == 0.05
    assert method_config(per_sigma, "gaussian", "small_cnn", 0.25) == method_config(
        plain, "gaussian", "small_cnn", 0.25
    )
    hashes = {s: [cell(c, "gaussian", "small_cnn", s, "fp32").chash for c in (plain, per_sigma)] for s in (0.25, 0.5)}
    assert hashes[0.25][0] == hashes[0.25][1] and hashes[0.5][0] != hashes[0.5][1]
    tiny_suite.write_text(text.replace('by_sigma."0.5"', "by_sigma.half"))
    with pytest.raises(BenchmarkError, match="names no noise level"):
        method_config(build_run_config(str(tiny_suite), {}), "gaussian", "small_cnn", 0.5)


def test_torchrun_splits_the_images_over_ranks_and_fits_once(run_args, tmp_path):
    """torchrun --nproc-per-node 2 on CPU (gloo): one records file per rank, merged records equal to a one-process
    run, one fit for both ranks, and one set of tables."""
    one = [*run_args, "--methods", "vanilla,gaussian", "--sigma", "0.25"]
    other = [a if a != str(tmp_path / "results") else str(tmp_path / "single") for a in one]
    assert main(["run", *other]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "benchmark",
        "run",
        *one,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert records(tmp_path / "results") == records(tmp_path / "single")
    files = sorted(p.name for p in (tmp_path / "results").glob("tiny/gaussian/*/*/*/records*.jsonl"))
    assert files == ["records-0of2.jsonl", "records-1of2.jsonl"]
    assert len(list((tmp_path / "cache" / "fits" / "gaussian").glob("*/state.safetensors"))) == 1
    assert proc.stdout.count("done: records under") == 1  # rank 0 alone writes the tables
