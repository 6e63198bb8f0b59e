"""``python -m benchmark zoo``: what :func:`benchmark.zoo.load` can load."""

from __future__ import annotations

import json

from benchmark.cli.commands import existing_results
from benchmark.zoo.listing import available, zoo_table


def zoo(args) -> None:
    entries = available(args.suite, existing_results(args.results))
    if args.json:
        print(json.dumps(entries, indent=1))
        return
    print(zoo_table(entries))
    print('\nfrom benchmark.zoo import load; model = load("<suite>", "<method>", "<base>", <sigma>)')
