"""`mnistlab train`: options -> a plan (a new run of a recipe, or a run folder continued) -> `fit`, or N workers."""

from __future__ import annotations

import argparse
import datetime
from dataclasses import dataclass, field
from pathlib import Path

from mnistlab.cli import args as types
from mnistlab.cli import report
from mnistlab.cli.recipe_flags import add_recipe_flags, given, recipe_from_args
from mnistlab.errors import UserError
from mnistlab.recipes import Recipe

LAUNCHER_ONLY = ("nproc", "max_restarts", "out")  # the options the launcher keeps to itself (--out: it says)

HELP = "train a recipe and write a run folder"
DESCRIPTION = (
    "Train a recipe; writes RUN_DIR with recipe.json, metrics.jsonl, train.log, "
    "checkpoint.safetensors (every epoch), model.safetensors and plots."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_recipe_flags(p)
    p.add_argument("--out", help="run folder (default: runs/<recipe>-<date>-<time>)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its last checkpoint, with its own recipe (only --epochs, for a "
        "StepLR run, and --device may be given with it)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--nproc",
        type=types.positive_int,
        metavar="N",
        help="train with N processes on this machine (DistributedDataParallel, started by torchrun's elastic agent "
        "as torchrun --standalone does); --batch-size stays the global batch, so the result is that of one process "
        "up to float rounding",
    )
    p.add_argument(
        "--max-restarts",
        type=types.nonneg_int,
        metavar="K",
        help="with --nproc: restart the processes up to K times if one fails; they resume from the last "
        "checkpoint (default: 0)",
    )
    types.add_data_args(p)


@dataclass(frozen=True)
class Plan:
    """What a `mnistlab train` does: train `recipe` into `run_dir`, or (recipe None) continue the run there."""

    recipe: Recipe | None
    run_dir: Path
    resume: dict = field(default_factory=dict)  # with recipe None: what Run.resume may change (epochs, device)


def plan(args: argparse.Namespace) -> Plan:
    """The plan the options ask for; a one-line UserError for options that contradict each other."""
    from mnistlab.train import distributed
    from mnistlab.train.rundir import RunDir

    if args.resume:
        fixed = given(args, keep=("epochs", "device"))
        if fixed:
            raise UserError(
                f"{', '.join(fixed)} cannot be changed when resuming: {args.resume} continues with the recipe in "
                "its recipe.json (only --epochs, for a StepLR run, and --device may be given with --resume)"
            )
        if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
            raise UserError(f"--out cannot move a resumed run: it continues in {args.resume} (leave --out out)")
        return Plan(None, Path(args.resume), {"epochs": args.epochs, "device": args.device})
    recipe = recipe_from_args(args)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.out) if args.out else Path("runs") / f"{recipe.name}-{stamp}"
    if distributed.restart_count() > 0 and RunDir(run_dir).has_checkpoint():
        # torchrun restarted the processes after a failure: continue the run from its last checkpoint
        return Plan(None, run_dir, {"device": args.device})
    return Plan(recipe, run_dir)


def run(args: argparse.Namespace) -> int:
    from mnistlab.train import distributed
    from mnistlab.train.training import fit

    if args.nproc is not None or args.max_restarts is not None:
        return _launch(args)
    if distributed.world().distributed and not args.out and not args.resume:
        raise UserError("with several processes give --out RUN_DIR: every process must name the same run folder")
    p = plan(args)
    try:
        kw = dict(data_dir=args.data_dir, mirror=args.mirror, progress=not args.quiet)
        trained = fit(p.recipe, out=p.run_dir, resume=p.recipe is None, **kw, **p.resume)
        return _finish(args, trained, p.run_dir)
    except KeyboardInterrupt as e:
        return report.interrupted(e, args.debug, p.run_dir)


def _finish(args: argparse.Namespace, trained, run_dir: Path) -> int:
    """Plots and the closing line, by the process that writes the run folder (rank 0); then leave the group."""
    from mnistlab.infer import output
    from mnistlab.train import distributed

    if trained.folder is None and trained.world.distributed:
        distributed.destroy()
        return 0
    if not args.no_plots:
        trained.plot()
    distributed.destroy()
    print(f"Done: {trained.summary()}; run folder {output.printable(str(run_dir))}")
    return 0


def _launch(args: argparse.Namespace) -> int:
    """`--nproc N`: the same command in N workers under torchrun's agent, all naming the same run folder."""
    from mnistlab.cli import launch

    p = plan(args)
    parser = types.Parser(prog="mnistlab train")
    add_arguments(parser)
    argv = ["--debug"] * args.debug + ["train", *launch.command_line(parser, args, leave_out=LAUNCHER_ONLY)]
    argv += ["--out", str(p.run_dir)] if p.recipe is not None else []
    return launch.start(p, argv, nproc=args.nproc, max_restarts=args.max_restarts, debug=args.debug)
