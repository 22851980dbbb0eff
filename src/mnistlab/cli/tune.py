"""`mnistlab tune`: search a recipe's settings with Optuna on one study (SQLite, or a shared database for workers on
several machines); `--best FILE.json` writes the best trial as a recipe for `mnistlab train --recipe`."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from mnistlab.cli import args as types
from mnistlab.cli.recipe_flags import add_recipe_flags, recipe_from_args
from mnistlab.errors import UserError

HELP = "search a recipe's settings (Optuna) on validation images"
DESCRIPTION = (
    "Tune a recipe: each trial trains, in this process, the recipe with settings sampled from the search space "
    "(lr, batch size, epochs within the --epochs budget, warm-up, label smoothing, augmentation strengths, and the "
    "robust recipe's outlier mix) and is evaluated on --val held-out training images; unpromising trials are "
    "pruned. The study lives in runs/tune-NAME/study.db, or in --storage (any SQLAlchemy URL: several machines "
    "running the same command on one PostgreSQL database share the study). A killed tune continues where it "
    "stopped. At the end: summary.json, history.png, importances.png and intermediate.png in runs/tune-NAME/."
)
TRIAL_FLAGS = ("epochs", "limit_train", "device", "seed", "val")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--study", required=True, metavar="NAME", help="the study's name (and its folder runs/tune-NAME)")
    p.add_argument("--trials", type=types.positive_int, metavar="N", help="trials the study should hold in all")
    p.add_argument("--workers", type=types.positive_int, default=1, metavar="K", help="local processes (default: 1)")
    p.add_argument("--storage", metavar="URL", help="an SQLAlchemy URL (default: sqlite in runs/tune-NAME/study.db)")
    p.add_argument(
        "--objective",
        default="accuracy",
        help="accuracy: the last val accuracy; time-to:VALUE: the training seconds of a trial whose last val "
        "accuracy reaches VALUE (e.g. time-to:0.988; a trial that misses it is pruned) (default: accuracy)",
    )
    p.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median", help="default: median")
    p.add_argument(
        "--evals-per-epoch",
        type=types.positive_int,
        default=5,
        metavar="E",
        help="val evaluations per epoch of a trial, reported to the pruner (default: 5)",
    )
    p.add_argument("--timeout", type=types.positive_float, metavar="S", help="start no trial after S seconds")
    p.add_argument("--best", metavar="FILE.json", help="write the study's best trial as a recipe and stop")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # one of --workers K: no summary
    add_recipe_flags(p, only=TRIAL_FLAGS)
    types.add_data_args(p)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import warnings

    from optuna.exceptions import ExperimentalWarning

    from mnistlab.tune import study as tune_study
    from mnistlab.tune.trial import Objective, Trainer

    warnings.filterwarnings("ignore", category=ExperimentalWarning)  # heartbeats and the plots are "experimental"
    _check_study_name(args.study)
    if args.best:
        tuned = tune_study.write_best(tune_study.load(args.study, args.storage), args.best).tuned or {}
        print(f"Wrote {args.best}: trial {tuned['trial']} of {args.study}, {tuned['objective']} = {tuned['value']:.4g}")
        return 0
    if args.trials is None:
        raise UserError("give --trials N (or --best FILE.json to write the study's best trial)")
    objective = Objective.parse(args.objective)
    start = recipe_from_args(args)
    if start.val is None:  # never tune on the test set
        start = dataclasses.replace(start, val=10_000)
    budget = start.epochs
    url = tune_study.storage_url(args.study, args.storage)
    base = recipe_from_args(argparse.Namespace(recipe=args.recipe))  # before --val, --limit-train, ...
    study = tune_study.create(args.study, url, objective, start, budget, args.pruner, base, args.evals_per_epoch)
    t0 = time.perf_counter()
    if args.workers > 1:
        _workers(args, url)
    else:
        trainer = Trainer(objective, budget, args.evals_per_epoch, args.data_dir, args.mirror)
        tune_study.work(study, trainer, start, args.trials, args.timeout)
    return _finish(args, study, time.perf_counter() - t0)


def _workers(args: argparse.Namespace, url: str) -> None:
    """K copies of this command, one worker each, on the study just created; this process waits for them."""
    from mnistlab.cli import launch

    parser = types.Parser(prog="mnistlab tune")
    add_arguments(parser)
    argv = launch.command_line(parser, args, leave_out=("workers", "storage"))
    argv = ["--debug"] * args.debug + ["tune", *argv, "--workers=1", f"--storage={url}", "--worker"]
    procs = [subprocess.Popen([sys.executable, "-m", "mnistlab", *argv]) for _ in range(args.workers)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise UserError(f"a worker failed (exit statuses {codes}); the same command continues the study")


def _check_study_name(name: str) -> None:
    """The study names a folder (runs/tune-NAME) and its trials' recipes (NAME-trialN): a recipe name's rules."""
    from mnistlab.recipe_schema import NAME_MAX, name_problem, shown

    longest = NAME_MAX - len("-trial999999")
    if name_problem(name) or len(name) > longest:
        raise UserError(
            f"--study must be 1 to {longest} letters, digits, '.', '_' or '-', not starting with '.' or '-' (it "
            f"names runs/tune-NAME and its trials' recipes), not {shown(name)}"
        )


def _finish(args: argparse.Namespace, study, wall_s: float) -> int:
    """The study's summary.json and plots, and its closing line (a --worker started by --workers leaves them)."""
    from mnistlab.tune import study as tune_study

    if args.worker:
        return 0
    where = tune_study.folder(args.study)
    where.mkdir(parents=True, exist_ok=True)
    tune_study.write_summary(study, where, wall_s)
    tune_study.plots(study, where)
    s = tune_study.summary(study, wall_s)
    best = s["best"]
    line = f"trial {best['trial']}, {s['objective']} = {best['value']:.4g}" if best else "none finished yet"
    print(f"Done: {s['trials']} trials ({s['states']}) in {wall_s:.0f} s; best: {line}; see {where}")
    return 0
