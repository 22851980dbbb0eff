"""The run folder: its file names, claiming it, recipe.json, metrics.jsonl, train.log, checkpoints and clean-up."""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import os
import shutil
import weakref
from pathlib import Path
from typing import IO

from mnistlab.errors import UserError
from mnistlab.recipes import Recipe
from mnistlab.store import checkpoints
from mnistlab.store.weights import run_weights
from mnistlab.train import distributed
from mnistlab.train.loops import History


class RunDir:
    """A run folder. Every file a run writes is named here, and only here."""

    RECIPE = "recipe.json"  # the whole Recipe, written once when the folder is claimed
    METRICS = "metrics.jsonl"  # one JSON line per evaluation, rewritten after every checkpoint
    LOG = "train.log"  # what the run printed
    CHECKPOINT = checkpoints.CHECKPOINT  # model, optimizer, step, RNG and history; rewritten every epoch
    WEIGHTS = checkpoints.WEIGHTS  # the final weights with the model card in their metadata
    EVALUATION = "evaluation.json"  # written by `mnistlab evaluate`
    TENSORBOARD = "tensorboard"  # a folder: the TensorBoard event files (tboard.py), with the tensorboard extra
    LOCK = "train.lock"  # flock'ed by the one process training in the folder, for as long as it does (`lock`)
    CURVES, SAMPLES, MISCLASSIFIED, CONFUSION = "curves.png", "samples.png", "misclassified.png", "confusion_matrix.png"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock: IO | None = None  # the open LOCK file while this process holds it

    def __str__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ---------------------------------------------------------------------------------------------------------
    # Creating and opening

    def check_free(self) -> None:
        """Raise a UserError if the folder already holds a run (the cheap check before any work is done)."""
        if (self / self.RECIPE).exists() or (self / self.METRICS).exists():
            raise UserError(f"{self} already holds a run; pass --resume to continue it or choose another --out")

    def claim(self, recipe: Recipe, *, again: bool = False) -> None:
        """Create the folder, take its lock (`lock`) and write its recipe.json atomically: of two runs started on one
        folder, one wins.

        `again`: the run claimed this folder before and was restarted before its first checkpoint; start it over."""
        text = recipe.validate().to_json() + "\n"  # before anything is created: a recipe that fails leaves nothing
        if not again:
            self.check_free()
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock()
        try:
            if again:  # the first attempt's TensorBoard events go too: the run's steps start again from 1
                shutil.rmtree(self / self.TENSORBOARD, ignore_errors=True)
            flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if again else os.O_EXCL)
            try:
                fd = os.open(self / self.RECIPE, flags, 0o644)
            except FileExistsError:
                raise UserError(f"{self} was claimed by another run just now; choose another --out") from None
            with os.fdopen(fd, "w") as f:
                f.write(text)
            (self / self.METRICS).write_text("")
        except BaseException:
            self.unlock()
            raise

    def lock(self) -> None:
        """Hold the folder's LOCK (an flock, let go by `unlock` or when this process ends, however it ends): one
        process at a time trains in a run folder. One that another process holds is a UserError."""
        if self._lock is not None:
            return
        f = open(self / self.LOCK, "a")  # noqa: SIM115 -- held open for the run's life
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise UserError(
                f"{self} is in use: another process is training in it (it holds {self / self.LOCK}); wait for it "
                "to end, or choose another --out"
            ) from None
        except OSError:  # a file system without locks (some network ones): the run goes on unlocked
            pass
        self._lock = f
        # A forked child (the seed recipe's DataLoader workers) shares the locked file: closed in the child, so that
        # the lock goes when this process does, not when its last worker notices (a resume right after a kill -9
        # was refused as "in use" while the workers were still exiting)
        os.register_at_fork(after_in_child=functools.partial(_close_in_child, weakref.ref(self)))

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # (closing the file lets go of its flock)
            self._lock = None

    def restarted_claim(self) -> bool:
        """Whether torchrun restarted this worker group after it claimed the folder but before its first checkpoint
        (its recipe.json is there and nothing else to resume from): then the run claims the folder again."""
        return distributed.restart_count() > 0 and (self / self.RECIPE).is_file() and not self.has_checkpoint()

    def holds_recipe(self, recipe: Recipe) -> bool:
        """Whether recipe.json is `recipe` (a restarted worker group's own claim, not another run's)."""
        try:
            return self.load_recipe() == recipe
        except UserError:
            return False

    def check_unchanged(self, now: Recipe, then: Recipe) -> None:
        """Refuse to resume when recipe.json (`now`) no longer says what the checkpoint (`then`) was trained with.

        The device may differ (a run can move), and so may the length of a StepLR run (it can be lengthened)."""
        changed = [f.name for f in dataclasses.fields(Recipe) if getattr(now, f.name) != getattr(then, f.name)]
        allowed = {"device", "world_size"} | ({"epochs"} if now.scheduler == then.scheduler == "step" else set())
        changed = [name for name in changed if name not in allowed]
        if changed:
            diff = ", ".join(f"{n} {getattr(then, n)!r} -> {getattr(now, n)!r}" for n in changed)
            raise UserError(
                f"{self / self.RECIPE} no longer matches the run's checkpoint ({diff}); put it back as it was, "
                "or start a new run"
            )

    def resume_recipe(self, epochs: float | None = None) -> tuple[Recipe, dict, dict]:
        """(the recipe to resume with, the checkpoint's tensors and metadata), checked: recipe.json must still be
        the checkpoint's recipe, and only a StepLR run may be lengthened (to `epochs`)."""
        saved = self.load_recipe()
        tensors, meta = self.read_checkpoint()
        self.check_unchanged(saved, Recipe.from_dict(meta["recipe"], f"{self / self.CHECKPOINT}"))
        if epochs is not None and epochs != saved.epochs and saved.scheduler == "onecycle":
            raise UserError(
                f"cannot change --epochs when resuming: {self} was planned as a {saved.epochs}-epoch "
                "OneCycle schedule (leave --epochs out to finish it)"
            )
        return dataclasses.replace(saved, epochs=epochs or saved.epochs), tensors, meta

    def resumed(self, records: list[dict], recipe: Recipe) -> None:
        """Bring the folder in line with the run resumed from it: metrics.jsonl to the checkpoint's records (no line
        of an epoch it does not hold), no temporary files of writes a kill cut short, and recipe.json to `recipe`
        (a lengthened run, an older folder's resolved normalisation, another number of processes), keeping the
        folder's own device (a run may move)."""
        self.write_metrics(records)
        self.clean_up()
        on_disk = self.load_recipe()
        recipe = dataclasses.replace(recipe, device=on_disk.device)
        if recipe != on_disk:
            self.save_recipe(recipe)

    def load_recipe(self) -> Recipe:
        """The run's Recipe; a folder that is not a run, or an unreadable recipe.json, is a UserError."""
        if not self.path.is_dir():
            raise UserError(f"{self} is not a folder; pass a run folder written by `mnistlab train`")
        if not (self / self.RECIPE).is_file():
            raise UserError(f"{self} is not a run folder (no {self.RECIPE})")
        return Recipe.load(self / self.RECIPE)

    def save_recipe(self, recipe: Recipe) -> None:
        _replace_text(self / self.RECIPE, recipe.to_json() + "\n")

    # ---------------------------------------------------------------------------------------------------------
    # What a run writes as it goes

    def log(self, message: str) -> None:
        with open(self / self.LOG, "a") as f:
            f.write(message + "\n")

    def write_metrics(self, records: list[dict]) -> None:
        """Rewrite metrics.jsonl atomically from `records` (so it never holds an epoch the checkpoint lacks)."""
        _replace_text(self / self.METRICS, History(records).to_jsonl())

    def has_checkpoint(self) -> bool:
        return (self / self.CHECKPOINT).is_file()

    def save_checkpoint(self, **state) -> None:
        """See `checkpoints.save_checkpoint` for the state; written atomically."""
        checkpoints.save_checkpoint(self / self.CHECKPOINT, **state)

    def require_checkpoint(self) -> None:
        """Raise the UserError that says why a folder without a checkpoint cannot be resumed."""
        if not self.has_checkpoint():
            raise UserError(
                f"cannot resume: {self} has no {self.CHECKPOINT} (it stopped before its first epoch ended); "
                "start a new run with another --out"
            )

    def read_checkpoint(self) -> tuple[dict, dict]:
        """(tensors, metadata) of the checkpoint, checked (see `checkpoints.read_checkpoint`)."""
        self.require_checkpoint()
        return checkpoints.read_checkpoint(self / self.CHECKPOINT)

    def clean_up(self) -> None:
        """Remove temporary files of writes that a kill cut short."""
        for stale in self.path.glob("*.tmp"):
            stale.unlink(missing_ok=True)

    def plot(self, history: History, images, targets, preds, *, mean: float, std: float, classes) -> None:
        """Curves, sample predictions, misclassified images and the confusion matrix, into the folder."""
        from mnistlab.explain import plots
        from mnistlab.explain.analysis import confusion_matrix

        names = dict(mean=mean, std=std, classes=classes)
        plots.plot_history(history, self / self.CURVES)
        plots.plot_samples(images, targets, preds, self / self.SAMPLES, **names)
        plots.plot_misclassified(images, targets, preds, self / self.MISCLASSIFIED, **names)
        plots.plot_confusion(confusion_matrix(targets, preds, len(classes)), self / self.CONFUSION, classes)

    def weights_file(self) -> Path:
        """The final weights if the run finished, else the model part of its last checkpoint."""
        return run_weights(self.path)


def _replace_text(path: Path, text: str) -> None:
    """Write `path` whole or not at all (via a temporary file, removed again if the write fails)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _close_in_child(ref) -> None:
    """In a forked child: close its copy of the run folder's locked file (the parent's lock stays with the parent)."""
    rundir = ref()
    if rundir is not None and rundir._lock is not None:
        rundir._lock.close()
        rundir._lock = None
