"""`mnistlab evaluate RUN_DIR`: a run's final weights on its dataset's test split; tables, evaluation.json, plots."""

from __future__ import annotations

import argparse
import dataclasses
import json

from mnistlab.cli import args as types
from mnistlab.errors import UserError

HELP = "test accuracy, per-class accuracy, confusion matrix, misclassified grid"
DESCRIPTION = (
    "Evaluate a run's final weights on its dataset's test set; writes evaluation.json, "
    "confusion_matrix.png and misclassified.png into the run folder."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `mnistlab train`")
    p.add_argument("--limit-test", type=types.positive_int, help="evaluate on the first N test images only")
    p.add_argument(
        "--dataset",
        help="evaluate on this dataset's test split instead of the run's own (same class count; e.g. qmnist's "
        "60,000 test digits for an MNIST run)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    types.add_data_args(p)
    p.add_argument("--device", choices=types.DEVICES, help="where to run (default: auto = cuda, then mps, then cpu)")


def recipe(args: argparse.Namespace, folder):
    """The run's recipe, reading the test split (also for a run that chose its settings on --val), of another
    dataset if asked, with the run's own normalisation (the one the weights were trained with)."""
    saved = folder.load_recipe()
    changed = dataclasses.replace(saved, dataset=args.dataset or saved.dataset, limit_test=args.limit_test, val=None)
    return changed.validate()


def run(args: argparse.Namespace) -> int:
    from mnistlab.data.loaders import DeviceLoader
    from mnistlab.explain import plots
    from mnistlab.explain.analysis import confusion_matrix
    from mnistlab.infer import output
    from mnistlab.store.weights import load_model
    from mnistlab.train.build import load_data
    from mnistlab.train.loops import predictions
    from mnistlab.train.rundir import RunDir
    from mnistlab.train.runtime import amp_dtype, get_device

    folder = RunDir(args.run_dir)
    r = recipe(args, folder)
    device = get_device(args.device or "auto")
    model, _ = load_model(folder.path, device=device)
    d = load_data(r, args.data_dir, args.mirror, train=False)
    n_classes = model.fc2.out_features
    if len(d.classes) != n_classes:
        raise UserError(
            f"{folder} predicts {n_classes} classes, but {r.dataset} has {len(d.classes)}; "
            "evaluate it on a dataset with the same classes"
        )
    loader = DeviceLoader(d.test_images, d.test_labels, r.eval_batch_size, device, mean=d.mean, std=d.std)
    images, targets, preds, _ = predictions(model, device, loader, dtype=amp_dtype(r.amp, device))
    cm = confusion_matrix(targets, preds, len(d.classes))
    result = _report(folder, r.dataset, d.classes, cm)
    (folder / folder.EVALUATION).write_text(json.dumps(result, indent=2) + "\n")
    plots.plot_confusion(cm, folder / folder.CONFUSION, d.classes)
    plots.plot_misclassified(
        images, targets, preds, folder / folder.MISCLASSIFIED, mean=d.mean, std=d.std, classes=d.classes
    )
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        written = [folder / name for name in (folder.EVALUATION, folder.CONFUSION, folder.MISCLASSIFIED)]
        output.print_evaluation(result, cm, written)
    return 0


def _report(folder, dataset: str, classes, cm) -> dict:
    """evaluation.json's content, from the confusion matrix."""
    from mnistlab.explain.analysis import per_class_accuracy

    correct, total = int(cm.diag().sum()), int(cm.sum())
    return {
        "run_dir": str(folder),
        "weights": folder.weights_file().name,
        "dataset": dataset,
        "classes": list(classes),
        "test_images": total,
        "correct": correct,
        "test_acc": correct / total,
        "per_class_acc": per_class_accuracy(cm),
        "confusion_matrix": cm.tolist(),
    }
