"""The flags of the commands that maintain results: ``publish-fits``, ``recount``, ``migrate``, ``import-tsv`` and
``export-tsv``; ``zoo`` lists what the model zoo loads."""

from __future__ import annotations

from benchmark.cli import commands
from benchmark.cli.args import add_data_root, add_output_args, add_results_command, add_store_args


def add_publish_fits(sub) -> None:
    pub = sub.add_parser(
        "publish-fits",
        help="copy the fitted states behind a suite's results (from the cache), and the fits they and unfinished "
        "fits start from, to <results>/checkpoints/, so a run resumed elsewhere certifies the same state",
    )
    pub.set_defaults(func=commands.publish_fits)
    pub.add_argument("--suite", default=None, help="one suite (default: every suite found in the results)")
    add_store_args(pub)
    pub.add_argument("--max-mb", type=float, default=20.0, help="larger states stay local (default: 20)")


def add_recount(sub) -> None:
    rec = sub.add_parser(
        "recount",
        help="correct older run.json files: the trainable share recounted against the base's own parameters (LoRA, "
        "adapters and VPT once counted their modules as part of the base) and the data named from what the recorded "
        "data root holds (the JPEG copy was once called CIFAR-10); changes nothing else",
    )
    rec.set_defaults(func=commands.recount)
    rec.add_argument("--suite", required=True, help="the suite whose runs to recount (its bases are built)")
    add_store_args(rec)
    add_data_root(rec, text=None)


def add_migrate(sub) -> None:
    mig = sub.add_parser(
        "migrate", help="rewrite results written by older versions to today's schema (values unchanged)"
    )
    mig.set_defaults(func=commands.migrate)
    mig.add_argument("--results", default="results", help="results directory (default: results/)")


def add_import_tsv(sub) -> None:
    imp = sub.add_parser("import-tsv", help="import a locuslab/smoothing certification log as records")
    imp.set_defaults(func=commands.import_tsv)
    imp.add_argument("file")
    imp.add_argument("--method", required=True)
    imp.add_argument("--sigma", type=float, required=True)
    imp.add_argument("--suite", required=True)
    imp.add_argument("--base", default="imported")
    imp.add_argument("--dataset", default=None)
    imp.add_argument("--n0", type=int, default=None)
    imp.add_argument("--n", type=int, default=None)
    imp.add_argument("--alpha", type=float, default=None)
    imp.add_argument("--fresh", action="store_true")
    add_output_args(imp)


def add_export_tsv(sub) -> None:
    exp = sub.add_parser("export-tsv", help="write one run's records as a locuslab/smoothing TSV")
    exp.set_defaults(func=commands.export_tsv)
    exp.add_argument("--suite", required=True)
    exp.add_argument("--method", required=True)
    exp.add_argument("--sigma", type=float, required=True)
    exp.add_argument("--base", default=None)
    exp.add_argument("--results", default="results")
    exp.add_argument("--output", required=True, help="TSV file to write")


def add_zoo(sub) -> None:
    from benchmark.cli import commands_zoo

    text = (
        "list the ranked rows whose smoothed classifiers benchmark.zoo.load builds from the published fits (suite, "
        "method, base, sigma, trainable share, fit hash, certified accuracy at the grid)"
    )
    zoo = add_results_command(sub, "zoo", text, commands_zoo.zoo)
    zoo.add_argument("--json", action="store_true", help="print the listing as JSON")
