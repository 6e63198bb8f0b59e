"""Model cards: one JSON file per ranked row, generated from the results (never edited), as RobustBench's entries.

A card says what the row is (method and its paper, base, sigma, certificate, precision, engine), what it is made of
(the fit's hash, SHA-256, size and where it is published; the trainable share), what it cost (fit time, seconds and
samples per certified image), what it certifies (certified accuracy at the grid with 95% Clopper-Pearson intervals,
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
from benchmark.run.records import read_run_info, run_dir

CARD_VERSION = 1


def _num(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _fit(results: Path, method: str, info) -> dict:
    """The fitted state the row was certified with (a cascade's: the fits it composes, each with its method)."""
    fit = info.fit
    parts = [(method, fit)] if fit.get("fit_hash") else []
    parts += [(p.get("method", name), p) for name, p in sorted(fit.get("composes", {}).items())]
    states = []
    for name, part in parts:
        path = results / "checkpoints" / name / part["fit_hash"] / "state.safetensors"
        states.append(
            {
                "method": name,
                "hash": part["fit_hash"],
                "state_sha256": part.get("state_sha256"),
                "bytes": path.stat().st_size if path.is_file() else None,
                "path": f"results/checkpoints/{name}/{part['fit_hash']}/state.safetensors" if path.is_file() else None,
            }
        )
    return {"states": states, "stored_bytes": info.cost.get("stored_bytes")}


def _reproduce(row: dict, info) -> str:
    """The command that certifies the row again (from its published fit, or fitting it where none is published)."""
    command = f"python -m benchmark run --suite {info.suite} --methods {row['method']} --bases {row['base']}"
    command += f" --sigma {row['sigma']:g} --precision {row['precision']}"
    engine = info.config.get("engine", "eager")
    return command + (f" --engine {engine}" if engine != "eager" else "")


def card(results: Path, suite: SuiteSnapshot, row: dict, radii, command: str) -> dict:
    """The card of one ranked row of ``leaderboard_rows``."""
    info = read_run_info(run_dir(results, suite.name, row["method"], row["base"], row["sigma"], row["config_hash"]))
    paper, summary = suite.paper(row["method"])
    accuracy = [
        {
            "radius": r,
            "value": row[radius_label(r)],
            "lo": row[f"{radius_label(r)}_lo"],
            "hi": row[f"{radius_label(r)}_hi"],
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
    return f"{card['method']}--{card['base']}--sigma_{card['sigma']:g}.json"


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
