"""Work for the preparation pool's worker processes in tests: module-level, so that a worker can import it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mnistlab.serve.reading import prepare_upload


def pid_and_sum(a: int, b: int) -> tuple[int, int]:
    return os.getpid(), a + b


def missing() -> None:
    raise KeyError("missing")


def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def stall(pid_file: str) -> None:
    """Write this worker's pid, then hold it far past any deadline a test sets."""
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)


def slow_or_real(data: bytes, max_pixels: int):
    """`prepare_upload`, except for a body `stall:PATH`, which stalls (see `stall`)."""
    if data.startswith(b"stall:"):
        stall(data[len(b"stall:") :].decode())
    return prepare_upload(data, max_pixels)


def built(log: str) -> object:
    """What a job's `using` builds: a new object, its building logged as a line (with this worker's pid)."""
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    return object()


def pid_and_kept(kept: object) -> tuple[int, int]:
    return os.getpid(), id(kept)
