"""`mnistlab datasets`: the datasets --dataset accepts, their sizes and classes, and whether they are here."""

from __future__ import annotations

import argparse

from mnistlab.cli import args as types

HELP = "the datasets --dataset accepts: sizes, classes, present locally or not"
DESCRIPTION = (
    "List the MNIST-format datasets mnistlab can train on, with their sizes and class counts, and "
    "whether the data folder already holds them (verified). folder:PATH (your own images) is not listed."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    types.add_data_dir(p)
    p.add_argument("--json", action="store_true", help="print one JSON object per dataset, one per line")


def run(args: argparse.Namespace) -> int:
    from mnistlab.data.datasets import rows
    from mnistlab.infer import output

    output.print_datasets(rows(args.data_dir), as_json=args.json)
    return 0
