"""The `mnistlab` command: train, evaluate, summary, predict. User mistakes give one line and exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from mnistlab.errors import UserError

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (`mnistlab: error: …`) and exit status 2."""

    def error(self, message):
        raise UserError(f"{message} (see: {self.prog} --help)")


def _int_at_least(minimum: int):
    """An argparse type: a whole number >= minimum."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where MNIST is kept (default: $MNISTLAB_DATA or ~/.cache/mnistlab)")
    p.add_argument(
        "--mirror",
        help="folder or URL holding the four official MNIST .gz files, used instead of the "
        "internet (default: $MNISTLAB_MIRROR); md5s are still checked",
    )
    p.add_argument(
        "--device",
        default=None,
        choices=["auto", "cpu", "cuda", "mps"],
        help="where to run (default: the recipe's, auto = cuda, then mps, then cpu)",
    )


def build_parser() -> argparse.ArgumentParser:
    from mnistlab.recipes import RECIPES

    parser = _Parser(prog="mnistlab", description="Train, explain and use the seed CNN on MNIST.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a recipe and write a run folder",
        description="Train a recipe; writes RUN_DIR with recipe.json, metrics.jsonl, train.log, "
        "checkpoint.safetensors (every epoch), model.safetensors and plots.",
    )
    t.add_argument(
        "--recipe",
        default="default",
        choices=sorted(RECIPES),
        help="seed: the original assignment's recipe; default: the fast, accurate one (default)",
    )
    t.add_argument("--epochs", type=_positive_int, help="number of epochs (default: the recipe's)")
    t.add_argument("--batch-size", type=_positive_int, help="training batch size (default: the recipe's)")
    t.add_argument("--lr", type=_positive_float, help="(peak) learning rate (default: the recipe's)")
    t.add_argument("--seed", type=_nonneg_int, help="random seed (default: the recipe's)")
    t.add_argument("--limit-train", type=_positive_int, help="train on the first N training images only")
    t.add_argument("--limit-test", type=_positive_int, help="evaluate on the first N test images only")
    t.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    t.add_argument("--out", help="run folder (default: runs/<recipe>-<date>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    t.add_argument("--no-plots", action="store_true", help="skip the PNG plots at the end")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_args(t)

    e = sub.add_parser(
        "evaluate",
        help="test accuracy, per-class accuracy, confusion matrix, misclassified grid",
        description="Evaluate a run's final weights on the MNIST test set; writes evaluation.json, "
        "confusion_matrix.png and misclassified.png into the run folder.",
    )
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `mnistlab train`")
    e.add_argument("--limit-test", type=_positive_int, help="evaluate on the first N test images only")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    _add_data_args(e)

    s = sub.add_parser(
        "summary",
        help="the model's layers, parameters and receptive field",
        description="Print the torchinfo summary and the receptive-field table of a model.",
    )
    from mnistlab.model import MODELS

    s.add_argument("--model", default="net", choices=sorted(MODELS), help="model name (default: net)")
    s.add_argument("--json", action="store_true", help="print one JSON object (params, layers, receptive_field)")

    p = sub.add_parser(
        "predict",
        help="predict the digit in your own images",
        description="Predict digits in image files (PNG, JPEG, BMP, GIF; any size; dark-on-light "
        "or light-on-dark). Images are prepared the way MNIST was made.",
    )
    p.add_argument("model", metavar="MODEL", help="a run folder or a .safetensors weights file")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files or folders of images")
    p.add_argument("--top-k", type=_positive_int, default=3, help="how many digits to list per image (default: 3)")
    p.add_argument("--json", action="store_true", help="one JSON object per image, one per line")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"], help="default: cpu")
    return parser


# --------------------------------------------------------------------------------------------------------------


def cmd_train(args) -> int:
    import datetime

    from mnistlab import plots
    from mnistlab.recipes import Recipe, get_recipe
    from mnistlab.trainer import fit
    from mnistlab.utils import get_predictions

    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "recipe.json").is_file():
            raise UserError(f"cannot resume: {run_dir} is not a run folder (no recipe.json)")
        recipe = Recipe.load(run_dir / "recipe.json")
        if args.epochs is not None and args.epochs != recipe.epochs:
            if recipe.scheduler == "onecycle":
                raise UserError(
                    f"cannot change --epochs when resuming: {run_dir} was planned as a {recipe.epochs}-epoch "
                    "OneCycle schedule (leave --epochs out to finish it)"
                )
            recipe.epochs = args.epochs
            recipe.save(run_dir / "recipe.json")
        if args.device is not None:
            recipe.device = args.device
    else:
        recipe = get_recipe(
            args.recipe,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device=args.device,
            limit_train=args.limit_train,
            limit_test=args.limit_test,
            compile=args.compile,
        )
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.out) if args.out else Path("runs") / f"{recipe.name}-{stamp}"
    args.train_run_dir = run_dir  # for the Ctrl-C message in main()
    result = fit(
        recipe,
        data_dir=args.data_dir,
        mirror=args.mirror,
        out=run_dir,
        resume=bool(args.resume),
        progress=not args.quiet,
    )
    if not args.no_plots:
        from mnistlab.data import get_spec

        spec = get_spec(recipe.dataset)
        plots.plot_history(result.history, run_dir / "curves.png")
        x, y, pred, _ = get_predictions(result.model, result.device, result.loaders.test, dtype=result.dtype)
        plots.plot_samples(x, y, pred, run_dir / "samples.png", mean=spec.mean, std=spec.std)
        plots.plot_misclassified(x, y, pred, run_dir / "misclassified.png", mean=spec.mean, std=spec.std)
        from mnistlab.analysis import confusion_matrix

        plots.plot_confusion(confusion_matrix(y, pred), run_dir / "confusion_matrix.png")
    last = result.history.records[-1]
    total = sum(r["train_time_s"] for r in result.history.records)
    print(
        f"Done: test accuracy {100 * last['test_acc']:.2f}% after {last['epoch']} epochs, "
        f"{total:.1f} s of training; run folder {run_dir}"
    )
    return 0


def cmd_evaluate(args) -> int:
    from mnistlab import checkpoints, plots
    from mnistlab.analysis import confusion_matrix, per_class_accuracy
    from mnistlab.data import DeviceLoader, get_spec, load_tensors
    from mnistlab.predict import load_model
    from mnistlab.recipes import Recipe
    from mnistlab.utils import amp_dtype, get_device, get_predictions

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder; pass a run folder written by `mnistlab train`")
    if not (run_dir / "recipe.json").is_file():
        raise UserError(f"{run_dir} is not a run folder (no recipe.json)")
    recipe = Recipe.load(run_dir / "recipe.json")
    device = get_device(args.device or "auto")
    model, _ = load_model(run_dir, device=device)
    spec = get_spec(recipe.dataset)
    x, y = load_tensors(False, args.data_dir, args.mirror, recipe.dataset, args.limit_test)
    loader = DeviceLoader(x, y, 2000, device, mean=spec.mean, std=spec.std)
    images, targets, preds, _ = get_predictions(model, device, loader, dtype=amp_dtype(recipe.amp, device))
    cm = confusion_matrix(targets, preds)
    correct = int(cm.diag().sum())
    report = {
        "run_dir": str(run_dir),
        "weights": checkpoints.WEIGHTS if (run_dir / checkpoints.WEIGHTS).exists() else checkpoints.CHECKPOINT,
        "test_images": len(targets),
        "correct": correct,
        "test_acc": correct / len(targets),
        "per_class_acc": per_class_accuracy(cm),
        "confusion_matrix": cm.tolist(),
    }
    (run_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    plots.plot_confusion(cm, run_dir / "confusion_matrix.png")
    plots.plot_misclassified(images, targets, preds, run_dir / "misclassified.png", mean=spec.mean, std=spec.std)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"Test accuracy: {correct}/{len(targets)} ({100 * report['test_acc']:.2f}%)")
    print("\nPer-class accuracy:")
    print("| digit | images | correct | accuracy |\n|---|---|---|---|")
    for d, acc in enumerate(report["per_class_acc"]):
        print(f"| {d} | {int(cm[d].sum())} | {int(cm[d, d])} | {100 * acc:.2f}% |")
    print("\nConfusion matrix (rows true, columns predicted):")
    print("      " + " ".join(f"{p:>5}" for p in range(10)))
    for t in range(10):
        print(f"{t:>5} " + " ".join(f"{int(v):>5}" for v in cm[t]))
    print(f"\nWrote {run_dir / 'evaluation.json'}, confusion_matrix.png, misclassified.png")
    return 0


def cmd_summary(args) -> int:
    from mnistlab.analysis import model_summary, receptive_field, rf_rows_as_dicts, rf_table_markdown
    from mnistlab.model import get_model

    model = get_model(args.model)
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
        print(
            json.dumps(
                {
                    "model": args.model,
                    "params": int(stats.total_params),
                    "layers": layers,
                    "receptive_field": rf_rows_as_dicts(rows),
                }
            )
        )
        return 0
    print(stats)
    print("\nReceptive field (rf = receptive field, n = output size, j = jump):\n")
    print(rf_table_markdown(rows))
    return 0


def cmd_predict(args) -> int:
    from mnistlab.predict import format_result, iter_image_files, load_model, predict
    from mnistlab.utils import get_device

    device = get_device(args.device)
    model, _ = load_model(args.model, device=device)
    files = iter_image_files(args.images)
    results = predict(model, files, top_k=args.top_k, device=device)
    for r in results:
        print(json.dumps(r) if args.json else format_result(r))
    return 0 if all("error" not in r for r in results) else EXIT_USER_ERROR


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "summary": cmd_summary, "predict": cmd_predict}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    args = None
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as e:
        if debug:
            traceback.print_exc()
        print(f"mnistlab: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as e:  # disk full, permission denied, ...: the user's environment, not a bug
        if debug:
            traceback.print_exc()
        print(f"mnistlab: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        run_dir = getattr(args, "train_run_dir", None)
        if run_dir is None:
            message = "interrupted"
        elif (Path(run_dir) / "checkpoint.safetensors").is_file():
            message = f"interrupted; checkpoints written so far are kept (continue with --resume {run_dir})"
        else:
            message = f"interrupted in the first epoch: {run_dir} has nothing to resume; start again with another --out"
        print(f"mnistlab: {message}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
