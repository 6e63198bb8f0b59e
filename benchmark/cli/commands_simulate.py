"""``python -m benchmark simulate``: sequential designs compared by simulation (:mod:`benchmark.evaluate.simulate`)."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.cli.commands import out_dir, overrides
from benchmark.config.run_config import build_run_config
from benchmark.errors import BenchmarkError
from benchmark.evaluate.simulate import run_simulation
from benchmark.evaluate.votes import val_cells
from benchmark.files import check_writable, read_json
from benchmark.report.simulate_page import simulation_page
from benchmark.run.provenance import check_clean, write_stamped


def simulate(args) -> None:
    cfg = build_run_config(args.suite, overrides(args))
    out = out_dir(args, cfg.results)
    check_writable(out, "--out", "page directory")
    stored = Path(cfg.results) / cfg.suite / "simulate" / "designs.json"
    if args.report_only:
        result = read_json(stored, "the simulation")
        if result is None:
            raise BenchmarkError(
                f"no simulation stored at {stored}: run python -m benchmark simulate --suite {cfg.suite}"
            )
    else:
        n_maxes = [int(v) for v in args.n_max.split(",") if v.strip()]
        choose_on = [m.strip() for m in args.choose_on.split(",") if m.strip()]
        val = None
        if args.rates == "val":
            check_clean(cfg.suite, args.allow_dirty)  # the counts are committed results
            val = val_cells(cfg, choose_on, cfg.bases[0], args.val_images)
        settings = (args.reps, args.max_gap, cfg.n0, cfg.alpha, cfg.radii)
        result = run_simulation(Path(cfg.results), cfg.suite, cfg.bases[0], choose_on, n_maxes, *settings, val=val)
        write_stamped(stored, result, torch.device("cpu"))
    text = simulation_page(result, args.command_line)
    out.mkdir(parents=True, exist_ok=True)
    (out / "certificates.md").write_text(text)
    print(text)
