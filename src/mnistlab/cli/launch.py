"""`mnistlab train --nproc N`: N training processes under torchrun's own elastic agent, and one line if they fail."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path

from mnistlab.errors import UserError

ERROR_DIR_ENV = "MNISTLAB_ERROR_DIR"  # set by the launcher for its workers: where their error lines go


def quiet(debug: bool = False) -> None:
    """Keep the agent's own log lines and c10d's C++ warnings off stderr (unless `debug`): a launch reports in
    one line whether it worked. Call before anything distributed is started."""
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # read by the workers, which start afresh
    if not debug:
        os.environ.setdefault("LOGLEVEL", "CRITICAL")  # torch.distributed.elastic's loggers read it when created
        _silence()


def _silence() -> None:
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def error_file(rank: int) -> str | None:
    """Where a worker of `mnistlab train --nproc` writes its error line (None for any other process)."""
    folder = os.environ.get(ERROR_DIR_ENV)
    if not folder:
        return None
    from mnistlab.train.distributed import restart_count  # torch: imported only in the workers

    return os.path.join(folder, f"rank-{rank}-restart-{restart_count()}.txt")


def start(plan, argv: list[str], *, nproc: int | None, max_restarts: int | None, debug: bool) -> int:
    """Check here what needs no data (the run folder, the batch's split), then `launch` the workers; each loads
    its data and trains as `mnistlab train` alone does. `plan`: a train.Plan."""
    from mnistlab.train import distributed
    from mnistlab.train.rundir import RunDir

    if distributed.launched():
        raise UserError(
            "--nproc and --max-restarts start processes, but this one was started by torchrun: leave them out "
            "(torchrun's --nproc-per-node and --max-restarts say the same)"
        )
    if nproc is None:
        raise UserError("--max-restarts goes with --nproc N (or torchrun's own --max-restarts)")
    quiet(debug)
    folder = RunDir(plan.run_dir)
    if plan.recipe is None:
        recipe = folder.load_recipe()
        folder.require_checkpoint()
    else:
        recipe = plan.recipe
        folder.check_free()
    distributed.share(recipe.batch_size, nproc)
    return launch(argv, nproc=nproc, max_restarts=max_restarts or 0)


def command_line(parser, args, *, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The options of `args` that `parser` declares and that were given, as a command line that parses back to
    them; but those whose destination is in `leave_out`."""
    argv: list[str] = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if not action.option_strings or action.dest in leave_out or value is None or value is False:
            continue
        option = action.option_strings[-1]
        argv.append(option if action.nargs == 0 else f"{option}={value}")  # =: a value may start with "-"
    return argv


def launch(argv: list[str], *, nproc: int, max_restarts: int = 0) -> int:
    """Run `python -m mnistlab ARGV` in `nproc` processes as `torchrun --standalone --nproc-per-node nproc` does
    (its elastic agent, in this process), restarting all of them up to `max_restarts` times when one fails.
    Returns the exit status: 0; 2 when a process stopped on a user's mistake (its one line is printed); 1 for any
    other failure (one line too)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if os.environ.get("LOGLEVEL") == "CRITICAL":
        _silence()  # loggers created since quiet()
    if nproc > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # standalone: a store on a free port of this machine
        max_restarts=max_restarts,
    )
    with tempfile.TemporaryDirectory(prefix="mnistlab-workers-") as errors:
        os.environ[ERROR_DIR_ENV] = errors
        try:
            elastic_launch(config, sys.executable)("-u", "-m", "mnistlab", *argv)
            return 0
        except ChildFailedError as e:
            status, line = _failure_line(e, errors, max_restarts)
        except Exception as e:  # the agent itself failed (rendezvous, ports, ...)
            if type(e).__name__ == "SignalException":  # Ctrl-C or SIGTERM: the agent has stopped the processes,
                return 128 + int(getattr(e, "sigval", 2))  # and rank 0 has said what is kept (one line)
            from mnistlab.errors import one_line

            status, line = 1, f"mnistlab: error: could not start the training processes: {one_line(e)[:300]}"
        finally:
            os.environ.pop(ERROR_DIR_ENV, None)
    print(line, file=sys.stderr)
    return status


def _failure_line(e, errors: str, max_restarts: int) -> tuple[int, str]:
    """(exit status, one line) for a worker group that failed for good: a user error's own line and status 2, else
    the first failure's line, or what ended it (a signal, a status), and status 1."""
    written: dict[int, tuple[int, str]] = {}  # rank: (restart, line), the last attempt's
    for f in Path(errors).glob("rank-*-restart-*.txt"):
        _, rank, _, restart = f.stem.split("-")
        line = (f.read_text().strip().splitlines() or [""])[0]
        if line and (int(rank) not in written or int(restart) > written[int(rank)][0]):
            written[int(rank)] = (int(restart), line)
    user = sorted(r for r, f in e.failures.items() if f.exitcode == 2)
    if user:
        rank = user[0]
        return 2, written.get(rank, (0, f"mnistlab: error: process {rank} stopped on an error"))[1]
    rank, first = e.get_first_failure()
    after = f" (after {max_restarts} restart{'s' * (max_restarts != 1)})" if max_restarts else ""
    if rank in written:
        return 1, written[rank][1] + after
    how = f"was killed by {first.signal_name()}" if first.exitcode < 0 else f"exited with status {first.exitcode}"
    return 1, f"mnistlab: error: training process {rank} {how}{after}"
