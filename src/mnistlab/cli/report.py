"""How a command that stops says so: one line on stderr (or in the launcher's file), and its exit status."""

from __future__ import annotations

import errno
import os
import signal
import sys
import traceback
from pathlib import Path

from mnistlab.errors import UserError

EXIT_USER_ERROR = 2


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (exit status 143 instead of 130)."""


def on_sigterm(signum, frame):
    raise Terminated()


def rank() -> int:
    """This process's rank among torchrun's training processes; 0 alone, or when RANK is not one (the training
    itself reports that)."""
    from mnistlab.train.distributed import world

    try:
        return world().rank
    except UserError:
        return 0


def user_error(e: Exception, debug: bool) -> int:
    """A mistake of the user's or of their environment (disk full, ...): one line, exit status 2."""
    if debug:
        traceback.print_exc()
    from mnistlab.infer.output import printable

    _report(f"mnistlab: error: {printable(_describe(e))}")
    return EXIT_USER_ERROR


def interrupted(e: KeyboardInterrupt, debug: bool, run_dir: Path | None = None) -> int:
    """Ctrl-C (exit status 130) or SIGTERM (143); for a training run, what it keeps and how to continue it."""
    if debug:
        traceback.print_exc()
    status = 143 if isinstance(e, Terminated) else 130
    if rank() > 0:  # rank 0 says it
        return status
    message = "terminated" if isinstance(e, Terminated) else "interrupted"
    if run_dir is not None:
        from mnistlab.train.rundir import RunDir

        if RunDir(run_dir).has_checkpoint():
            message += f"; checkpoints written so far are kept (continue with --resume {run_dir})"
        else:
            message += f" in the first epoch: {run_dir} has nothing to resume; start again with another --out"
    print(f"mnistlab: {message}", file=sys.stderr)
    return status


def peer_failed(e: Exception) -> int:
    """One of several training processes stopped on an unexpected error, most often a peer that was lost (killed,
    or failed first): one line, not a traceback, and exit status 1."""
    from mnistlab.errors import one_line
    from mnistlab.infer.output import printable

    _report(f"mnistlab: error: process {rank()} stopped: {printable(one_line(e))[:300]} (--debug shows more)")
    return 1


def broken_pipe() -> int:
    """The reader stopped reading (`| head`): nothing to report."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush fails quietly too
    return 128 + signal.SIGPIPE


def _describe(e: Exception) -> str:
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) and e.filename:
        from mnistlab.store.checkpoints import space_report

        return f"cannot write {e.filename}: {e.strerror}; {space_report(Path(e.filename).parent)}"
    return str(e)


def _report(line: str) -> None:
    """Print an error line on stderr; a process of `mnistlab train --nproc` writes it to a file for its launcher,
    which prints one line for all of them."""
    from mnistlab.cli.launch import ERROR_DIR_ENV, error_file

    path = error_file(rank()) if os.environ.get(ERROR_DIR_ENV) else None  # (rank() imports torch)
    if path:
        try:
            Path(path).write_text(line + "\n")
            return
        except OSError:
            pass
    print(line, file=sys.stderr)
