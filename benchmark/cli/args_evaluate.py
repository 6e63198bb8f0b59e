"""The flags of the evaluations beside certification: ``tune``, ``audit``, ``attack``, ``perf`` and ``simulate``."""

from __future__ import annotations

from benchmark.cli import commands, commands_attack, commands_simulate
from benchmark.cli.args import (
    add_allow_dirty,
    add_bases,
    add_command,
    add_machine_args,
    add_measure_args,
    add_sigma,
    fraction,
)


def add_tune(sub) -> None:
    tune = add_command(
        sub,
        "tune",
        "choose recipes on the validation split: fit the suite's candidates on train "
        "without val, score them on val, write the search to results/<suite>/tuning/",
        commands.tune,
    )
    tune.add_argument("--methods", default=None, help="comma list (default: every method the suite has a search for)")
    add_bases(tune)
    add_sigma(tune, "noise levels (default: the suite's); 0 scores robust accuracy under PGD instead")
    tune.add_argument("--val-images", type=int, default=1000, help="validation images scored (default: 1,000)")
    tune.add_argument("--samples", type=int, default=100, help="noisy samples per scored image (default: 100)")
    add_measure_args(tune)


def add_audit(sub) -> None:
    audit = add_command(
        sub,
        "audit",
        "attack each certified image of ranked runs inside its radius (SmoothAdv) and "
        "re-decide it with PREDICT; writes results/<suite>/audit/ and <out>/<suite>-audit.md",
        commands_attack.audit,
    )
    audit.add_argument("--methods", required=True, help="comma list of methods whose ranked runs are audited")
    add_bases(audit)
    add_sigma(audit)
    audit.add_argument("--max-images", type=int, default=None, help="the first K certified images by index")
    audit.add_argument("--steps", type=int, default=20, help="PGD steps (default: 20)")
    audit.add_argument("--samples", type=int, default=16, help="noise draws per PGD step (default: 16)")
    audit.add_argument("--predict-n", type=int, default=1000, help="PREDICT's samples at the attacked point")
    audit.add_argument("--predict-alpha", type=float, default=0.001, help="PREDICT's level (default: 0.001)")
    audit.add_argument("--out", default=None, help="where <suite>-audit.md goes (default: beside --results)")
    add_measure_args(audit)


def add_attack(sub) -> None:
    attack = add_command(
        sub,
        "attack",
        "clean and PGD accuracy of methods' classifiers (adaptive by default); "
        "writes results/<suite>/attack/ and <out>/<suite>-attack.md",
        commands_attack.attack,
    )
    attack.add_argument("--methods", required=True, help="comma list of methods")
    add_bases(attack)
    add_sigma(
        attack,
        "0 (default): the classifier fitted without noise, attacked as is; > 0: the smoothed "
        "classifier (EOT attack, majority vote)",
        default=[0.0],
    )
    attack.add_argument("--max-images", type=int, default=None, help="the first K images of the subset's order")
    attack.add_argument("--norm", default="linf", choices=["linf", "l2"])
    attack.add_argument("--eps", type=fraction, default=8 / 255, help="radius in [0,1] units, e.g. 8/255 or 0.5")
    attack.add_argument("--step", type=fraction, default=None, help="step size (default: eps/4 for linf)")
    attack.add_argument("--steps", type=int, default=10, help="PGD steps (default: 10, ADAPT's PGD-10)")
    attack.add_argument("--restarts", type=int, default=1)
    attack.add_argument("--eot", type=int, default=8, help="noise draws per step at sigma > 0")
    attack.add_argument("--votes", type=int, default=100, help="noisy samples per prediction at sigma > 0")
    attack.add_argument(
        "--non-adaptive",
        action="store_true",
        help="craft the attack on the method's model "
        "without its prompts (the clean base for a method without prompts)",
    )
    attack.add_argument("--batch-images", type=int, default=32, help="images attacked together (recorded)")
    attack.add_argument("--out", default=None, help="where <suite>-attack.md goes (default: beside --results)")
    add_measure_args(attack)


def add_perf(sub) -> None:
    perf = add_command(
        sub,
        "perf",
        "certification speed of the reference loop, each certificate and engine and the bare forward pass "
        "on one method (stored under results/<suite>/perf/, resumable); writes <out>/perf.md from every stored "
        "measurement of the suite",
        commands.perf,
    )
    perf.add_argument("--method", default="gaussian")
    add_bases(perf, "the base (default: the suite's first)")
    add_sigma(perf, "the sigma (default: the suite's first)")
    perf.add_argument("--images", type=int, default=50, help="images of the subset, for the fast paths")
    perf.add_argument(
        "--slow-images", type=int, default=None, help="images for reference and the fp32 paths (default: --images)"
    )
    perf.add_argument(
        "--paths",
        default="reference,fixed-fp32,fixed,sequential,forward",
        help="comma list of paths: reference, forward[+engine], <certificate>[-fp32][+engine] (see README)",
    )
    perf.add_argument("--report-only", action="store_true", help="measure nothing; regenerate perf.md")
    perf.add_argument("--n0", type=int, default=None)
    perf.add_argument("--n", type=int, default=None)
    perf.add_argument("--out", default=None, help="where perf.md goes (default: leaderboards/ beside --results)")
    add_measure_args(perf)


def add_simulate(sub) -> None:
    simulate = add_command(
        sub,
        "simulate",
        "compare sequential certificate designs by simulation on the suite's committed vote rates; writes "
        "results/<suite>/simulate/designs.json and <out>/certificates.md",
        commands_simulate.simulate,
    )
    add_bases(simulate, "the base whose ranked runs give the rates (default: the suite's first)")
    simulate.add_argument("--choose-on", default="gaussian,peft_lora", help="methods whose rates choose the design")
    simulate.add_argument("--n-max", default="10000,100000", help="comma list of the most samples a design draws")
    simulate.add_argument("--reps", type=int, default=4, help="repetitions per image (default: 4)")
    simulate.add_argument(
        "--max-gap", type=float, default=2.0, help="largest mean gap to fixed n, in points, a chosen design may have"
    )
    simulate.add_argument("--results", default="results", help="results directory (default: results/)")
    simulate.add_argument("--out", default=None, help="where certificates.md goes (default: leaderboards/)")
    simulate.add_argument(
        "--report-only", action="store_true", help="simulate nothing; regenerate certificates.md from designs.json"
    )
    simulate.add_argument(
        "--rates",
        choices=("val", "test"),
        default="val",
        help="choose on the --choose-on methods' vote rates on validation images (counted once, stored; the "
        "default) or on their test rates (the held-out check is then the other methods')",
    )
    simulate.add_argument("--val-images", type=int, default=100, help="validation images counted (default: 100)")
    add_sigma(simulate, "the noise levels whose validation votes are counted (default: the suite's)")
    add_machine_args(simulate)
    add_allow_dirty(simulate, "count the validation votes with uncommitted code changes (recorded)")
