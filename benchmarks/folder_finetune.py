"""Fine-tuning against training from scratch on a folder dataset, over seeds: prints a table, writes JSON.

    python scripts/uci_digits_folder.py /tmp/uci-digits      # needs scikit-learn
    python benchmarks/folder_finetune.py /tmp/uci-digits --seeds 1 2 3 --epochs 5

For each seed: the default recipe on `folder:PATH` from random weights, and from the bundled MNIST weights
(`--init`); before either, the bundled model as it is on the same held-out images (zero-shot).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
from pathlib import Path

import torch

from mnistlab.data import folders
from mnistlab.infer.classifier import load
from mnistlab.recipes import get_recipe
from mnistlab.store.weights import bundled_weights
from mnistlab.train.runtime import machine_name
from mnistlab.train.training import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder dataset: one sub-folder of images per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds (default: 1 2 3)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per run (default: 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    parser.add_argument("--json", type=Path, help="where to write the results (default: benchmarks/results/...)")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    test = folders.files(args.folder, False)
    classes = folders.classes(args.folder)
    clf = load(device="cpu")
    preds = clf.predict([p for p, _ in test])
    zero_shot = sum(clf.classes[p.digit] == classes[c] for p, (_, c) in zip(preds, test)) / len(test)

    results = {"scratch": [], "fine-tuned": []}
    for seed in args.seeds:
        for kind, init in (("scratch", None), ("fine-tuned", str(bundled_weights()))):
            recipe = get_recipe(
                "default",
                dataset=f"folder:{args.folder}",
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=seed,
                device="cpu",
                init=init,
            )
            run = fit(recipe, progress=False, echo=False)
            results[kind].append(
                {
                    "seed": seed,
                    "test_acc": run.history.records[-1]["test_acc"],
                    "first_epoch_acc": run.history.records[0]["test_acc"],
                    "train_time_s": sum(r["train_time_s"] for r in run.history.records),
                }
            )
    n_train = len(folders.files(args.folder, True))
    print(f"{args.folder}: {len(classes)} classes, {n_train} training and {len(test)} held-out images")
    print(f"bundled MNIST model, no training (zero-shot): {100 * zero_shot:.2f}%\n")
    print("| start | epochs | after epoch 1, mean | final, mean (min-max) | training time, mean |")
    print("|---|---|---|---|---|")
    for kind, rows in results.items():
        final = [r["test_acc"] * 100 for r in rows]
        first = statistics.mean(r["first_epoch_acc"] * 100 for r in rows)
        t = statistics.mean(r["train_time_s"] for r in rows)
        spread = f"{statistics.mean(final):.2f}% ({min(final):.2f}-{max(final):.2f})"
        print(f"| {kind} | {args.epochs} | {first:.2f}% | {spread} | {t:.1f} s |")
    out = args.json or Path("benchmarks/results") / f"folder-finetune-{datetime.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": datetime.date.today().isoformat(), "machine": machine_name(torch.device("cpu"))}
    meta |= {"torch": torch.__version__, "folder": str(args.folder), "classes": classes, "train": n_train}
    meta |= {"test": len(test), "epochs": args.epochs, "batch_size": args.batch_size}
    out.write_text(json.dumps(meta | {"zero_shot": zero_shot, "runs": results}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
