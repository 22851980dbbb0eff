"""The `mnistlab` command: train, evaluate, summary, predict, serve, datasets; a user's mistake is one line, exit 2."""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import signal
import sys
import traceback
from pathlib import Path

from mnistlab.errors import UserError

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (`mnistlab: error: …`) and exit status 2."""

    def error(self, message):
        raise UserError(f"{message} (see: {self.prog} --help)")


def _int_at_least(minimum: int, maximum: int | None = None):
    """An argparse type: a whole number >= minimum (and <= maximum, if given)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {v}")
        if maximum is not None and v > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)
_port = _int_at_least(0, 65535)


def _positive_float(text: str, zero: bool = False) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v >= 0 if zero else v > 0) or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if zero else '>'} 0, got {text}")
    return v


def _non_negative_float(text: str) -> float:
    return _positive_float(text, zero=True)


def _epochs(text: str) -> int | float:
    """An argparse type: a number of epochs > 0, a whole one as an int (5, not 5.0, in recipe.json)."""
    v = _positive_float(text)
    return int(v) if v.is_integer() else v


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where datasets are kept (default: $MNISTLAB_DATA or ~/.cache/mnistlab)")
    p.add_argument(
        "--mirror",
        help="folder or URL holding the dataset's official files (MNIST: the four .gz files), used instead of "
        "the internet (default: $MNISTLAB_MIRROR); their content is still checked",
    )
    p.add_argument(
        "--device",
        default=None,
        choices=["auto", "cpu", "cuda", "mps"],
        help="where to run (default: the recipe's, auto = cuda, then mps, then cpu)",
    )


def build_parser() -> argparse.ArgumentParser:
    from mnistlab.recipes import ABOUT, RECIPES

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
        choices=list(RECIPES),
        help="; ".join(f"{name}: {ABOUT[name]}" for name in RECIPES).replace("%", "%%") + " (default: default)",
    )
    t.add_argument(
        "--dataset",
        help="what to train on: mnist (default), fashion-mnist, kmnist, emnist-digits, emnist-letters, "
        "emnist-balanced, qmnist (see `mnistlab datasets`), or folder:PATH for your own images, one sub-folder "
        "per class (PATH/train and PATH/test if you have a test split, else 20%% is held out)",
    )
    t.add_argument(
        "--init",
        metavar="RUN_OR_WEIGHTS",
        help="start from these trained weights (a run folder or .safetensors) to fine-tune; a head with another "
        "class count is replaced",
    )
    t.add_argument(
        "--epochs",
        type=_epochs,
        help="number of epochs, fractions allowed: 0.6 trains 60%% of one epoch's batches (default: the recipe's)",
    )
    t.add_argument("--batch-size", type=_positive_int, help="training batch size (default: the recipe's)")
    t.add_argument("--lr", type=_positive_float, help="(peak) learning rate (default: the recipe's)")
    t.add_argument("--seed", type=_nonneg_int, help="random seed (default: the recipe's)")
    t.add_argument("--limit-train", type=_positive_int, help="train on the first N training images only")
    t.add_argument("--limit-test", type=_positive_int, help="evaluate on the first N test images only")
    t.add_argument(
        "--val",
        type=_positive_int,
        metavar="N",
        help="hold out the last N training images and evaluate on them instead of the test set (for choosing "
        "settings without looking at the test set)",
    )
    t.add_argument("--compile", action="store_true", default=None, help="torch.compile the model (default: off)")
    t.add_argument(
        "--amp",
        choices=["auto", "bf16", "off"],
        help="bf16 autocast: auto (where it is faster), bf16, or off for float32 throughout (default: the recipe's)",
    )
    t.add_argument("--out", help="run folder (default: runs/<recipe>-<date>-<time>)")
    t.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last checkpoint, with its own recipe (only --epochs, for a "
        "StepLR run, and --device may be given with it)",
    )
    t.add_argument("--no-plots", action="store_true", help="skip the PNG plots at the end")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--nproc",
        type=_positive_int,
        metavar="N",
        help="train with N processes on this machine (DistributedDataParallel, started as torchrun --standalone "
        "does); --batch-size stays the global batch, so the result is that of one process up to float rounding",
    )
    t.add_argument(
        "--max-restarts",
        type=_nonneg_int,
        metavar="K",
        help="with --nproc: restart the processes up to K times if one fails; they resume from the last "
        "checkpoint (default: 0)",
    )
    _add_data_args(t)

    e = sub.add_parser(
        "evaluate",
        help="test accuracy, per-class accuracy, confusion matrix, misclassified grid",
        description="Evaluate a run's final weights on its dataset's test set; writes evaluation.json, "
        "confusion_matrix.png and misclassified.png into the run folder.",
    )
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `mnistlab train`")
    e.add_argument("--limit-test", type=_positive_int, help="evaluate on the first N test images only")
    e.add_argument(
        "--dataset",
        help="evaluate on this dataset's test split instead of the run's own (same class count; e.g. qmnist's "
        "60,000 test digits for an MNIST run)",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    _add_data_args(e)

    s = sub.add_parser(
        "summary",
        help="the model's layers, parameters and receptive field",
        description="Print the torchinfo summary and the receptive-field table of the seed's Net.",
    )
    s.add_argument("--json", action="store_true", help="print one JSON object (params, layers, receptive_field)")

    p = sub.add_parser(
        "predict",
        help="predict the digit in your own images",
        description="Predict digits in image files (PNG, JPEG, BMP, GIF, WebP, TIFF; any size; dark-on-light "
        "or light-on-dark). Images are prepared the way MNIST was made. Exit status 2 if any image failed.",
    )
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files or folders of images")
    p.add_argument(
        "--model",
        metavar="RUN_OR_WEIGHTS",
        help="a run folder or a .safetensors weights file (default: the weights bundled with mnistlab)",
    )
    p.add_argument("--top-k", type=_positive_int, default=3, help="how many digits to list per image (default: 3)")
    p.add_argument("--json", action="store_true", help="one JSON object per image, one per line (errors included)")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="also write every result to FILE: .csv (file, digit, p0..p9, error) or .jsonl (as --json)",
    )
    p.add_argument(
        "--show",
        metavar="DIR",
        help="save the 28x28 image the network saw for each input as DIR/<image name>.png (white on black), and "
        "name it next to the answer",
    )
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"], help="default: cpu")

    v = sub.add_parser(
        "serve",
        help='an HTTP API and a page to draw digits on (needs: pip install "mnistlab[serve]")',
        description="Serve the model over HTTP: POST /v1/predict and /v1/explain, GET /v1/model and /healthz "
        "(the schema at /openapi.json), and at / a page to draw digits on. Concurrent predictions are "
        "batched into one forward pass.",
    )
    v.add_argument(
        "--model",
        metavar="RUN_OR_WEIGHTS",
        help="a run folder or a .safetensors weights file (default: the weights bundled with mnistlab)",
    )
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    v.add_argument("--port", type=_port, default=8000, help="default: 8000; 0 picks a free port")
    v.add_argument("--max-batch", type=_positive_int, default=32, help="most images per forward pass (1: no batching)")
    v.add_argument(
        "--max-wait-ms", type=_non_negative_float, default=5.0, help="most time a batch waits to fill (default: 5)"
    )
    v.add_argument("--max-queue", type=_positive_int, default=256, help="requests handled at once; more get 503")
    v.add_argument("--max-body-mb", type=_positive_float, default=8.0, help="largest request body (default: 8 MB)")
    v.add_argument(
        "--header-timeout-s",
        type=_positive_float,
        default=10.0,
        help="a connection's request headers must arrive within this (default: 10)",
    )
    v.add_argument(
        "--body-timeout-s",
        type=_positive_float,
        default=30.0,
        help="a request's body must arrive within this; slower ones get 408 (default: 30)",
    )
    v.add_argument(
        "--keep-alive-s",
        type=_positive_float,
        default=5.0,
        help="idle kept-alive connections are closed after this (default: 5)",
    )
    v.add_argument(
        "--max-connections",
        type=_positive_int,
        default=1000,
        help="open connections at most, kept below the open-file limit (default: 1000)",
    )
    v.add_argument(
        "--prepare-workers", type=_positive_int, default=4, help="images prepared at once; more get 503 (default: 4)"
    )
    v.add_argument(
        "--prepare-timeout-s",
        type=_positive_float,
        default=10.0,
        help="an image that takes longer to prepare gets 422 (default: 10)",
    )
    v.add_argument(
        "--drain-s",
        type=_positive_float,
        default=10.0,
        help="on Ctrl-C or SIGTERM, requests in flight get this long to finish (default: 10)",
    )
    v.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"], help="default: cpu")

    d = sub.add_parser(
        "datasets",
        help="the datasets --dataset accepts: sizes, classes, present locally or not",
        description="List the MNIST-format datasets mnistlab can train on, with their sizes and class counts, and "
        "whether the data folder already holds them (verified). folder:PATH (your own images) is not listed.",
    )
    d.add_argument("--data-dir", help="where datasets are kept (default: $MNISTLAB_DATA or ~/.cache/mnistlab)")
    d.add_argument("--json", action="store_true", help="print one JSON object per dataset, one per line")
    return parser


# --------------------------------------------------------------------------------------------------------------


def recipe_from_args(args):
    """The validated Recipe that `mnistlab train`'s options ask for (a one-line UserError if they cannot)."""
    from mnistlab.recipes import get_recipe

    return get_recipe(
        args.recipe or "default",
        dataset=args.dataset,
        init=args.init,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        limit_train=args.limit_train,
        limit_test=args.limit_test,
        val=args.val,
        compile=args.compile,
        amp=args.amp,
    )


def cmd_train(args) -> int:
    import datetime

    from mnistlab import distributed
    from mnistlab.run import fit
    from mnistlab.rundir import RunDir

    child = bool(os.environ.get(distributed.ERROR_DIR_ENV))  # a process started by `mnistlab train --nproc`
    if not child and (args.nproc is not None or args.max_restarts is not None):
        if distributed.launched():
            raise UserError(
                "--nproc and --max-restarts start processes, but this one was started by torchrun: leave them out "
                "(torchrun's --nproc-per-node and --max-restarts say the same)"
            )
        if args.nproc is None:
            raise UserError("--max-restarts goes with --nproc N (or torchrun's own --max-restarts)")
        return _launch(args)
    world = distributed.world()
    if world.distributed and not args.out and not args.resume:
        raise UserError("with several processes give --out RUN_DIR: every process must name the same run folder")
    kw = dict(data_dir=args.data_dir, mirror=args.mirror, progress=not args.quiet)
    if not args.resume and args.out and distributed.restart_count() > 0 and RunDir(args.out).has_checkpoint():
        # torchrun restarted the processes after a failure: continue the run from its last checkpoint
        args.train_run_dir = Path(args.out)
        run = fit(None, out=args.out, resume=True, device=args.device, **kw)
        return _finish_train(args, run, Path(args.out))
    if args.resume:
        fixed = {
            "--recipe": args.recipe,
            "--dataset": args.dataset,
            "--init": args.init,
            "--batch-size": args.batch_size,
            "--lr": args.lr,
            "--seed": args.seed,
            "--limit-train": args.limit_train,
            "--limit-test": args.limit_test,
            "--val": args.val,
            "--compile": args.compile,
            "--amp": args.amp,
        }
        given = [flag for flag, value in fixed.items() if value is not None]
        if given:
            raise UserError(
                f"{', '.join(given)} cannot be changed when resuming: {args.resume} continues with the recipe in "
                "its recipe.json (only --epochs, for a StepLR run, and --device may be given with --resume)"
            )
        if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
            raise UserError(f"--out cannot move a resumed run: it continues in {args.resume} (leave --out out)")
        recipe, run_dir = None, Path(args.resume)
        kw.update(epochs=args.epochs, device=args.device)
    else:
        recipe = recipe_from_args(args)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.out) if args.out else Path("runs") / f"{recipe.name}-{stamp}"
    args.train_run_dir = run_dir  # for the interrupt message in main()
    run = fit(recipe, out=run_dir, resume=bool(args.resume), **kw)
    return _finish_train(args, run, run_dir)


def _finish_train(args, run, run_dir: Path) -> int:
    """Plots and the closing line, by the process that writes the run folder (rank 0); then leave the group."""
    from mnistlab import distributed, output

    if run.folder is None and run.world.distributed:
        distributed.destroy()
        return 0
    if not args.no_plots:
        run.plot()
    distributed.destroy()
    last = run.history.records[-1]
    total = sum(r["train_time_s"] for r in run.history.records)
    print(
        f"Done: {'val' if run.recipe.val else 'test'} accuracy {100 * last['test_acc']:.2f}% after "
        f"{last['epoch']:.3g} epochs, "
        f"{total:.1f} s of training; run folder {output.printable(str(run_dir))}"
    )
    return 0


def _launch(args) -> int:
    """`mnistlab train --nproc N`: check what can be checked here, then start N processes as torchrun would."""
    import datetime

    from mnistlab import distributed
    from mnistlab.rundir import RunDir

    distributed.quiet_launcher(debug=args.debug)
    if args.resume:
        if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
            raise UserError(f"--out cannot move a resumed run: it continues in {args.resume} (leave --out out)")
        folder = RunDir(args.resume)
        recipe = folder.load_recipe()
        folder.require_checkpoint()
        run_dir, extra = Path(args.resume), []
    else:
        recipe = recipe_from_args(args)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.out) if args.out else Path("runs") / f"{recipe.name}-{stamp}"
        RunDir(run_dir).check_free()
        extra = [] if args.out else ["--out", str(run_dir)]  # every process the same folder
    distributed.share(recipe.batch_size, args.nproc)
    from mnistlab.build import load_data

    load_data(recipe, args.data_dir, args.mirror)  # missing or damaged data: one line now, fetched once for all
    return distributed.launch([*args.argv, *extra], nproc=args.nproc, max_restarts=args.max_restarts or 0)


def cmd_evaluate(args) -> int:
    import dataclasses

    from mnistlab import output, plots
    from mnistlab.analysis import confusion_matrix, per_class_accuracy
    from mnistlab.build import load_data
    from mnistlab.classifier import load_model
    from mnistlab.loaders import DeviceLoader
    from mnistlab.loops import predictions
    from mnistlab.rundir import RunDir
    from mnistlab.runtime import amp_dtype, get_device

    folder = RunDir(args.run_dir)
    recipe = folder.load_recipe()
    # the test split (also for a run that chose its settings on --val), of another dataset if asked, read with the
    # run's own normalisation (the one the weights were trained with)
    recipe = dataclasses.replace(recipe, dataset=args.dataset or recipe.dataset, limit_test=args.limit_test, val=None)
    recipe.validate()
    device = get_device(args.device or "auto")
    model, _ = load_model(folder.path, device=device)
    d = load_data(recipe, args.data_dir, args.mirror, train=False)
    if len(d.classes) != model.fc2.out_features:
        raise UserError(
            f"{folder} predicts {model.fc2.out_features} classes, but {recipe.dataset} has {len(d.classes)}; "
            "evaluate it on a dataset with the same classes"
        )
    loader = DeviceLoader(d.test_images, d.test_labels, recipe.eval_batch_size, device, mean=d.mean, std=d.std)
    images, targets, preds, _ = predictions(model, device, loader, dtype=amp_dtype(recipe.amp, device))
    cm = confusion_matrix(targets, preds, len(d.classes))
    correct = int(cm.diag().sum())
    report = {
        "run_dir": str(folder),
        "weights": folder.weights_file().name,
        "dataset": recipe.dataset,
        "classes": list(d.classes),
        "test_images": len(targets),
        "correct": correct,
        "test_acc": correct / len(targets),
        "per_class_acc": per_class_accuracy(cm),
        "confusion_matrix": cm.tolist(),
    }
    (folder / folder.EVALUATION).write_text(json.dumps(report, indent=2) + "\n")
    plots.plot_confusion(cm, folder / folder.CONFUSION, d.classes)
    names = dict(mean=d.mean, std=d.std, classes=d.classes)
    plots.plot_misclassified(images, targets, preds, folder / folder.MISCLASSIFIED, **names)
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        written = [folder / name for name in (folder.EVALUATION, folder.CONFUSION, folder.MISCLASSIFIED)]
        output.print_evaluation(report, cm, written)
    return 0


def cmd_summary(args) -> int:
    from mnistlab.analysis import model_summary, receptive_field, rf_rows_as_dicts, rf_table_markdown
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


def cmd_predict(args) -> int:
    from mnistlab import output
    from mnistlab.classifier import image_files, load

    if args.output and not args.output.lower().endswith((".csv", ".jsonl")):
        raise UserError(f"--output must name a .csv or a .jsonl file, not {args.output!r}")
    classifier = load(args.model, device=args.device)
    files = image_files(args.images)
    results = classifier.predict_each(files, top_k=args.top_k)
    rows = [output.result_row(str(f), r, classifier.classes) for f, r in zip(files, results)]
    if args.show:
        output.save_seen(Path(args.show), files, results, rows)
    output.print_results(rows, as_json=args.json)
    if args.output:
        output.write_results(Path(args.output), rows)
    return EXIT_USER_ERROR if any("error" in row for row in rows) else 0


def cmd_serve(args) -> int:
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        missing = e.name or "FastAPI"
        raise UserError(f'mnistlab serve needs {missing}: install it with pip install "mnistlab[serve]"') from None
    from mnistlab.classifier import load
    from mnistlab.serve import create_app
    from mnistlab.serve.server import HttpLimits, listen, serve, url

    sock = listen(args.host, args.port)  # OSError (port in use, ...): one line, exit 2
    try:
        classifier = load(args.model, device=args.device)
    except BaseException:
        sock.close()
        raise
    app = create_app(
        classifier,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_body=int(args.max_body_mb * 2**20),
        body_timeout_s=args.body_timeout_s,
        prepare_workers=args.prepare_workers,
        prepare_timeout_s=args.prepare_timeout_s,
    )
    http = HttpLimits(args.header_timeout_s, args.keep_alive_s, args.drain_s, args.max_connections)
    print(f"mnistlab: serving {classifier.source} at {url(sock)} (Ctrl-C stops)", file=sys.stderr, flush=True)
    serve(app, sock, http)
    return 0


def cmd_datasets(args) -> int:
    from mnistlab import output
    from mnistlab.datasets import rows

    output.print_datasets(rows(args.data_dir), as_json=args.json)
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "summary": cmd_summary,
    "predict": cmd_predict,
    "serve": cmd_serve,
    "datasets": cmd_datasets,
}


def _describe_error(e: Exception) -> str:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) and e.filename:
        from mnistlab.checkpoints import space_report

        return f"cannot write {e.filename}: {e.strerror}; {space_report(Path(e.filename).parent)}"
    return str(e)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (exit status 143 instead of 130)."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    args = None
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        if args.command == "train":
            signal.signal(signal.SIGTERM, _on_sigterm)
        return COMMANDS[args.command](args)
    except BrokenPipeError:  # the reader stopped reading (`| head`): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush fails quietly too
        return 128 + signal.SIGPIPE
    except (UserError, OSError) as e:  # OSError: disk full, permission denied, ...: the user's environment
        if debug:
            traceback.print_exc()
        from mnistlab.output import printable

        _report(f"mnistlab: error: {printable(_describe_error(e))}")
        return EXIT_USER_ERROR
    except KeyboardInterrupt as e:
        if debug:
            traceback.print_exc()
        if _rank() > 0:  # rank 0 says it
            return 143 if isinstance(e, Terminated) else 130
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        run_dir = getattr(args, "train_run_dir", None)
        if run_dir is None:
            message = what
        else:
            from mnistlab.rundir import RunDir

            if RunDir(run_dir).has_checkpoint():
                message = f"{what}; checkpoints written so far are kept (continue with --resume {run_dir})"
            else:
                message = f"{what} in the first epoch: {run_dir} has nothing to resume; start again with another --out"
        print(f"mnistlab: {message}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except Exception as e:
        if "WORLD_SIZE" not in os.environ or debug:
            raise
        # one of several processes: most often a peer was lost (killed, or failed first); one line, not a traceback
        from mnistlab.errors import one_line
        from mnistlab.output import printable

        _report(f"mnistlab: error: process {_rank()} stopped: {printable(one_line(e))[:300]} (--debug shows more)")
        return 1


def _rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def _report(line: str) -> None:
    """Print an error line on stderr; a process of `mnistlab train --nproc` writes it to a file for its launcher,
    which prints one line for all of them."""
    from mnistlab.distributed import error_file

    path = error_file(_rank())
    if path:
        try:
            Path(path).write_text(line + "\n")
            return
        except OSError:
            pass
    print(line, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
