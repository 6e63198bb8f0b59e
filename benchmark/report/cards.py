"""Model cards: one JSON file per ranked row, generated from the results (never edited), as RobustBench's entries.

A card says what the row is (method and its paper, base, sigma, certificate, precision, engine), what it is made of
(the fit's hash, SHA-256, size and where it is published; the trainable share), what it cost (fit time, seconds and
samples per certified image), what it certifies (certified accuracy in percent at the grid with 95% Clopper-Pearson
intervals,
ACR with its bootstrap interval, best/tied/below in its table) and the command that reproduces it. Numbers published
elsewhere for the same method (:mod:`benchmark.report.reported`) sit in their own ``reported_elsewhere`` list,
labelled with their source, never mixed with the measured ones.

Cards go to ``<out>/cards/<suite>/<method>--<base>--sigma_<s>.json``, written by ``python -m benchmark leaderboard``
beside the tables; CI checks the committed ones regenerate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmark.config.snapshot import SuiteSnapshot
from benchmark.files import inside, safe_name
from benchmark.report.reported import reported_numbers
from benchmark.report.table import leaderboard_rows, radius_label
from benchmark.run.ranking import fit_parts
from benchmark.run.records import read_run_info, run_dir

CARD_VERSION = 1


def _num(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _fit(results: Path, method: str, info) -> dict:
    """The fitted states the row was certified with (a cascade's: those it composes, each with its method); an
    external model's class and the SHA-256 of its tensors instead."""
    if info.fit.get("external"):
        return {"states": [], "external": info.fit["external"], "stored_bytes": None}
    states = []
    for name, part in fit_parts(method, info.fit):
        path = results / "checkpoints" / safe_name(name) / part["fit_hash"] / "state.safetensors"
        published = path.is_file()
        states.append(
            {
                "method": name,
                "hash": part["fit_hash"],
                "state_sha256": part.get("state_sha256"),
                "bytes": path.stat().st_size if published else None,
                "path": f"results/checkpoints/{name}/{part['fit_hash']}/state.safetensors" if published else None,
            }
        )
    return {"states": states, "stored_bytes": info.cost.get("stored_bytes")}


def _reproduce(row: dict, info) -> str:
    """The call that certifies the row again: for a registered method, ``run`` with every setting of the record key
    the command line sets, so it plans the very configuration (the method's settings are the suite file's at the
    commit in ``git``); for an external model, the ``benchmark_model`` call."""
    key = info.config
    if info.fit.get("external"):
        return (
            f'benchmark.zoo.benchmark_model(model, "{row["method"]}", "{info.suite}", {row["sigma"]:g}, '
            f'base="{row["base"]}", results=...)  # model: {info.fit["external"]["module"]}'
        )
    flags = {
        "suite": info.suite,
        "methods": row["method"],
        "bases": row["base"],
        "sigma": f"{row['sigma']:g}",
        "n0": key.get("n0"),
        "n": key.get("n"),
        "alpha": key.get("alpha"),
        "skip": key.get("skip"),
        "start": key.get("start"),
        "seed": key.get("seed"),
        "precision": key.get("precision"),
        "certify": key.get("certify", "fixed"),
        "engine": key.get("engine", "eager"),
    }
    return "python -m benchmark run " + " ".join(f"--{k} {v}" for k, v in flags.items() if v is not None)


def _pct(value: float) -> float:
    return round(100 * value, 4)


def card(results: Path, suite: SuiteSnapshot, row: dict, radii, command: str) -> dict:
    """The card of one ranked row of ``leaderboard_rows``."""
    info = read_run_info(run_dir(results, suite.name, row["method"], row["base"], row["sigma"], row["config_hash"]))
    paper, summary = suite.paper(row["method"])
    accuracy = [
        {
            "radius": r,
            "value": _pct(row[radius_label(r)]),
            "lo": _pct(row[f"{radius_label(r)}_lo"]),
            "hi": _pct(row[f"{radius_label(r)}_hi"]),
        }
        for r in radii
    ]
    reported = [
        {k: e[k] for k in ("source", "label", "references_section", "setting", "sigma", "certified_accuracy", "acr")}
        | {"note": e["note"]}
        for e in reported_numbers(row["method"], row.get("dataset_name"))
    ]
    return {
        "card_version": CARD_VERSION,
        "suite": suite.name,
        "method": row["method"],
        "external": bool(info.fit.get("external")),
        "paper": paper,
        "summary": summary,
        "base": row["base"],
        "sigma": row["sigma"],
        "dataset": row["dataset"],
        "certificate": str(info.config.get("certify", "fixed")) + (row.get("certificate_label") or ""),
        "precision": row["precision"],
        "engine": info.config.get("engine", "eager"),
        "n_images": row["n_images"],
        "n0": info.n0,
        "n": row["n"],
        "alpha": row["alpha"],
        "fit": _fit(results, row["method"], info),
        "trainable_params": _num(row["trainable_params"]),
        "trainable_pct": _num(row["trainable_pct"]),
        "cost": {
            "fit_time_s": _num(row["fit_time_s"]),
            "certify_s_per_image": _num(row["certify_s_per_image"]),
            "samples_per_image": _num(row["samples_per_image"]),
        },
        "units": {"certified_accuracy": "percent of the images", "radius": "l2, in [0, 1] pixel units"},
        "certified_accuracy": accuracy,
        "acr": {"value": row["acr"], "lo": row["acr_lo"], "hi": row["acr_hi"]},
        "vs_best": row["vs_best"],
        "config_hash": row["config_hash"],
        "git": {"sha": (info.git or {}).get("sha"), "dirty": (info.git or {}).get("dirty")},
        "reproduce": _reproduce(row, info),
        "reported_elsewhere": reported,
        "generated_by": command,
    }


def build_cards(results: Path, suite: SuiteSnapshot, command: str, table: tuple | None = None) -> list[dict]:
    """One card per ranked row of ``suite`` under ``results``, in the leaderboard's order (``table``: its rows and
    radii, where the caller already has them)."""
    rows, radii = table or leaderboard_rows(results, suite)
    return [card(results, suite, row, radii, command) for row in rows if row["ranked"]]


def card_name(card: dict) -> str:
    return f"{safe_name(card['method'])}--{safe_name(card['base'])}--sigma_{card['sigma']:g}.json"


def write_cards(results: Path, out_dir: Path, suite: SuiteSnapshot, command: str, table: tuple | None = None) -> Path:
    """Write ``<out_dir>/cards/<suite>/*.json`` afresh (a card whose row is no longer ranked goes); return the
    folder."""
    folder = inside(out_dir, out_dir / "cards" / safe_name(suite.name, "suite"))
    cards = build_cards(results, suite, command, table)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        stale.unlink()
    for c in cards:
        (folder / card_name(c)).write_text(json.dumps(c, indent=1, ensure_ascii=False) + "\n")
    return folder
