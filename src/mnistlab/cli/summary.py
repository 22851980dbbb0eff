"""`mnistlab summary`: the seed's Net, its layers, parameters and receptive field."""

from __future__ import annotations

import argparse
import json

HELP = "the model's layers, parameters and receptive field"
DESCRIPTION = "Print the torchinfo summary and the receptive-field table of the seed's Net."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object (params, layers, receptive_field)")


def run(args: argparse.Namespace) -> int:
    from mnistlab.explain.analysis import model_summary, receptive_field, rf_rows_as_dicts, rf_table_markdown
    from mnistlab.model import Net

    model = Net()
    stats = model_summary(model)
    rows = receptive_field(model)
    if args.json:
        layers = [
            {
                "layer": info.var_name,
                "type": info.class_name,
                "output_shape": info.output_size,
                "params": info.num_params,
            }
            for info in stats.summary_list
            if info.depth == 1
        ]
        summary = {"model": "Net", "params": int(stats.total_params), "layers": layers}
        print(json.dumps({**summary, "receptive_field": rf_rows_as_dicts(rows)}))
        return 0
    print(stats)
    print("\nReceptive field (rf = receptive field, n = output size, j = jump):\n")
    print(rf_table_markdown(rows))
    return 0
