"""TensorBoard event files of a run (the `tensorboard` extra): its metrics, the recipe as hparams, its pictures."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import itertools
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from mnistlab.errors import one_line
from mnistlab.recipes import Recipe
from mnistlab.train.rundir import RunDir

# a history record's key -> its tag, written at each evaluation (at the step it follows); every `Board.every` steps
# also train/batch_loss (that step's batch, as the progress bar's Loss=) and train/lr (that step's)
SCALARS = {
    "train_loss": "train/loss",  # the mean over the steps since the last evaluation
    "train_acc": "train/accuracy",
    "imgs_per_s": "train/imgs_per_s",
    "test_loss": "eval/loss",  # on the test set, or on val with recipe.val
    "test_acc": "eval/accuracy",
}
METRICS = ("eval/accuracy", "eval/loss", "train/loss")  # the HParams tab's columns: each tag's last value
PICTURES = {"misclassified": RunDir.MISCLASSIFIED, "confusion_matrix": RunDir.CONFUSION}  # tag -> the run's PNG
MISSING = (
    "mnistlab: note: no TensorBoard event files for this run: the tensorboard package is not installed "
    "(pip install 'mnistlab[tensorboard]')"
)


def unwritten(path: Path | None, e: BaseException) -> str:
    """The one line that says the event files could not be written (and that the run goes on)."""
    return (
        f"mnistlab: warning: TensorBoard event files are no longer written to {path}: {type(e).__name__}: "
        f"{one_line(e)}; the run goes on without them"
    )


class EventFile:
    """One TensorBoard event file, written by the thread that trains: TensorBoard's own writer writes from a thread
    of its own, whose failure (a full or read-only disk) prints a traceback there and raises at the next write."""

    def __init__(self, folder: Path):
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event = Event
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}"
        for n in itertools.count():  # (the name TensorBoard's writer gives, numbered apart from this process's others)
            with contextlib.suppress(FileExistsError):
                fd = os.open(folder / f"{stem}.{n}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
        self._file = os.fdopen(fd, "wb")
        self._records = RecordWriter(self._file)
        self.add(Event(file_version="brain.Event:2"))

    def add(self, event, step: int | None = None) -> None:
        event.wall_time = time.time()
        if step is not None:
            event.step = int(step)
        self._records.write(event.SerializeToString())

    def add_summary(self, summary, step: int) -> None:
        self.add(self._event(summary=summary), step)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class Board:
    """The run's event files, in the run folder's tensorboard/ (`RunDir.TENSORBOARD`). Without a folder (no `out`,
    or a rank other than 0) or without the package every call does nothing; a board with a folder but without the
    package says so on stderr at the run's end (so that a run that fails still fails in one line). The file opens
    at the first write (each opening starts a new event file beside the others) and is flushed at every evaluation.
    It is optional: a write that fails (a full or read-only disk) is said in one line, once, and the run goes on
    without it."""

    def __init__(self, folder: RunDir | None, *, every: int = 1):
        self.folder, self.every = folder, every
        self._writer: EventFile | None = None  # while open
        self._off = folder is None or importlib.util.find_spec("tensorboard") is None  # (found, not imported)
        self._missing = folder is not None and self._off  # the package: said at the end
        self._batches: list[tuple[int, float, torch.Tensor]] = []  # (step, lr, loss) not written yet

    @property
    def path(self) -> Path | None:
        return None if self.folder is None else self.folder / RunDir.TENSORBOARD

    def _open(self) -> EventFile | None:
        """The event file, opened now if it is not; None when the board is off."""
        if self._writer is None and not self._off:
            try:
                import torch.utils.tensorboard  # noqa: F401  (its summaries; it checks the package's version)
            except ImportError:  # installed but broken
                self._off = self._missing = True
                return None
            assert self.path is not None  # (a board without a folder is off)
            self._writer = EventFile(self.path)
        return self._writer

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Around every write: a failure (a full or read-only disk, whatever the optional logger meets) turns the
        board off and is said in one line; the run goes on."""
        try:
            yield
        except Exception as e:
            self._off, self._batches = True, []
            print(unwritten(self.path, e), file=sys.stderr, flush=True)
            if self._writer is not None:
                with contextlib.suppress(Exception):  # (its buffer cannot be written either)
                    self._writer.close()
                self._writer = None

    def batch(self, step: int, loss: torch.Tensor, lr_at: Callable[[int], float]) -> None:
        """Keep every `every`-th step's loss (a copy: a CUDA graph overwrites its own) and its learning rate,
        `lr_at(step - 1)`, until the next write: reading the loss now would wait for the device."""
        if not self._off and step % self.every == 0:
            self._batches.append((step, lr_at(step - 1), loss.detach().clone()))

    def record(self, step: int, record: dict) -> None:
        """An evaluation's history record (`Run.evaluate`) as scalars at `step`, after the batches kept since the
        last one."""
        with self._writing():
            if (w := self._open()) is None:
                return
            from torch.utils.tensorboard.summary import scalar

            self._write_batches(w)
            for key, tag in SCALARS.items():
                w.add_summary(scalar(tag, record[key]), step)
            w.flush()  # on disk at each evaluation: a few hundred bytes, none written during the steps

    def _write_batches(self, w: EventFile) -> None:
        from torch.utils.tensorboard.summary import scalar

        if self._batches:
            losses = torch.stack([loss for *_, loss in self._batches]).float().tolist()
            for (step, lr, _), loss in zip(self._batches, losses):
                w.add_summary(scalar("train/batch_loss", loss), step)
                w.add_summary(scalar("train/lr", lr), step)
            self._batches = []

    def finished(self, step: int, recipe: Recipe) -> None:
        """At the run's end (`Run.export`): the recipe as hparams, for the HParams tab, whose metrics (`METRICS`) are
        the scalars' last values; then close the file. Without the package: the one line that says so."""
        with self._writing():
            if (w := self._open()) is None:
                if self._missing:
                    print(MISSING, file=sys.stderr, flush=True)
                    self._missing = False
                return
            self._write_batches(w)
            from torch.utils.tensorboard.summary import hparams

            params = {
                k: v if isinstance(v, (bool, int, float, str)) else str(v)
                for k, v in dataclasses.asdict(recipe).items()
            }
            for summary in hparams(params, dict.fromkeys(METRICS, 0.0)):  # (only the metrics' names are used)
                w.add_summary(summary, step)
            self.close()

    def pictures(self, step: int) -> None:
        """The run's misclassified digits and confusion matrix, as `Run.plot` drew them, as images at `step`."""
        with self._writing():
            if self.folder is None or (w := self._open()) is None:
                return
            import numpy as np
            from PIL import Image
            from torch.utils.tensorboard.summary import image

            for tag, name in PICTURES.items():
                if (self.folder / name).is_file():
                    with Image.open(self.folder / name) as im:
                        w.add_summary(image(tag, np.asarray(im.convert("RGB")), dataformats="HWC"), step)
            self.close()

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def resumed(self, step: int) -> None:
        """A run resumed from its checkpoint at `step` trains the steps after it again: drop from the event files
        what an earlier process wrote past it, so that no step is shown twice."""
        if self._off or self.path is None or not self.path.is_dir():
            return
        try:
            from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.summary.writer.record_writer import RecordWriter
        except ImportError:
            return
        with self._writing():
            for path in sorted(self.path.glob("events.out.tfevents.*")):
                records = list(RawEventFileLoader(str(path)).Load())
                kept = [r for r in records if Event.FromString(r).step <= step]
                if len(kept) < len(records):
                    tmp = self.path / "trimmed.tmp"  # (a name without "tfevents": TensorBoard reads no such file)
                    try:
                        with open(tmp, "wb") as f:
                            for r in kept:
                                RecordWriter(f).write(r)
                        os.replace(tmp, path)
                    finally:
                        tmp.unlink(missing_ok=True)
