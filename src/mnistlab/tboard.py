"""TensorBoard event files of a run (the `tensorboard` extra): its metrics, the recipe as hparams, its pictures."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mnistlab.recipes import Recipe
from mnistlab.rundir import RunDir

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


class Board:
    """The run's event files, in the run folder's tensorboard/ (`RunDir.TENSORBOARD`). Without a folder (no `out`,
    or a rank other than 0) or without the package every call does nothing; a board with a folder but without the
    package says so on stderr at the run's end (so that a run that fails still fails in one line). The writer
    opens at the first write (each opening starts a new event file beside the others) and writes its queue out at
    every evaluation."""

    def __init__(self, folder: RunDir | None, *, every: int = 1):
        self.folder, self.every = folder, every
        self._writer: Any = None  # a SummaryWriter while open
        self._off = folder is None or importlib.util.find_spec("tensorboard") is None  # (found, not imported)
        self._missing = folder is not None and self._off  # the package: said at the end
        self._batches: list[tuple[int, float, torch.Tensor]] = []  # (step, lr, loss) not written yet

    @property
    def path(self) -> Path | None:
        return None if self.folder is None else self.folder / RunDir.TENSORBOARD

    def _open(self) -> Any:
        """The SummaryWriter, opened now if it is not; None when the board is off."""
        if self._writer is None and not self._off:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # installed but broken
                self._off = self._missing = True
                return None
            self._writer = SummaryWriter(str(self.path), max_queue=100, flush_secs=600)  # see record
        return self._writer

    def batch(self, step: int, loss: torch.Tensor, lr_at: Callable[[int], float]) -> None:
        """Keep every `every`-th step's loss (a copy: a CUDA graph overwrites its own) and its learning rate,
        `lr_at(step - 1)`, until the next write: reading the loss now would wait for the device."""
        if not self._off and step % self.every == 0:
            self._batches.append((step, lr_at(step - 1), loss.detach().clone()))

    def record(self, step: int, record: dict) -> None:
        """An evaluation's history record (`Run.evaluate`) as scalars at `step`, after the batches kept since the
        last one."""
        if (w := self._open()) is None:
            return
        self._write_batches(w)
        for key, tag in SCALARS.items():
            w.add_scalar(tag, record[key], step)
        w.flush()  # on disk at each evaluation: a few hundred bytes, none written during the steps

    def _write_batches(self, w) -> None:
        if self._batches:
            losses = torch.stack([loss for *_, loss in self._batches]).float().tolist()
            for (step, lr, _), loss in zip(self._batches, losses):
                w.add_scalar("train/batch_loss", loss, step)
                w.add_scalar("train/lr", lr, step)
            self._batches = []

    def finished(self, step: int, recipe: Recipe) -> None:
        """At the run's end (`Run.export`): the recipe as hparams, for the HParams tab, whose metrics (`METRICS`) are
        the scalars' last values; then close the file. Without the package: the one line that says so."""
        if (w := self._open()) is None:
            if self._missing:
                print(MISSING, file=sys.stderr, flush=True)
                self._missing = False
            return
        self._write_batches(w)
        from torch.utils.tensorboard.summary import hparams

        params = {
            k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in dataclasses.asdict(recipe).items()
        }
        for summary in hparams(params, dict.fromkeys(METRICS, 0.0)):  # (only the metrics' names are used)
            w.file_writer.add_summary(summary, step)
        self.close()

    def pictures(self, step: int) -> None:
        """The run's misclassified digits and confusion matrix, as `Run.plot` drew them, as images at `step`."""
        if self.folder is None or (w := self._open()) is None:
            return
        import numpy as np
        from PIL import Image

        for tag, name in PICTURES.items():
            if (self.folder / name).is_file():
                with Image.open(self.folder / name) as im:
                    w.add_image(tag, np.asarray(im.convert("RGB")), step, dataformats="HWC")
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

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
        for path in sorted(self.path.glob("events.out.tfevents.*")):
            records = list(RawEventFileLoader(str(path)).Load())
            kept = [r for r in records if Event.FromString(r).step <= step]
            if len(kept) < len(records):
                tmp = self.path / "trimmed.tmp"  # (a name without "tfevents": TensorBoard reads no such file)
                with open(tmp, "wb") as f:
                    for r in kept:
                        RecordWriter(f).write(r)
                os.replace(tmp, path)
