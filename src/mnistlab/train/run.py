"""A training run: `Run` holds its state (model, optimizer, step, RNG, history) and trains it a step at a time."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import torch
import torch.nn as nn

from mnistlab.errors import UserError
from mnistlab.model import Net
from mnistlab.recipes import Recipe, lr_at, total_steps
from mnistlab.store import checkpoints
from mnistlab.store.weights import transfer_weights
from mnistlab.train import build, distributed, loops, runcard, tboard
from mnistlab.train.build import build_criterion, build_loaders, build_optimizer, load_data, resolve, use_cuda_graphs
from mnistlab.train.rundir import RunDir
from mnistlab.train.runtime import place, set_seed


class NonFiniteLoss(UserError):
    """The training loss became NaN or infinite."""


def resumed_step(meta: dict, steps_per_epoch: int) -> int:
    """The step a run resumed from checkpoint metadata `meta` continues from: the end of the checkpoint's epoch, in
    this run's steps. Checkpoints end epochs, so that is the step the checkpoint saved, unless it has none (written
    before steps were saved) or counted them in epochs of another length (a run moved to or from a GPU whose CUDA
    graph drops an epoch's last, smaller batch): there the saved step would land inside an epoch."""
    return meta["epoch"] * steps_per_epoch


class Run:
    """One training run. `Run.create(recipe, out)` starts one, `Run.resume(out)` continues one from its checkpoint.

    `train_step()` trains the next step; `train_epoch()` the rest of the epoch (or its next `batches` steps);
    `evaluate()` tests and records a history line; `save()` checkpoints at an epoch boundary; `export()` writes
    the final weights, `plot()` the pictures. Without `out` nothing is written. `step` counts the steps trained.
    """

    def __init__(
        self, recipe: Recipe, folder: RunDir | None, *, data_dir=None, mirror=None, progress=True, echo=True, fresh=True
    ):
        # Only what cannot be derived is kept; the rest (graphs, notes, criterion, eval_model, loader_generator,
        # log_every, epoch, saved_epoch, a record's lr) are properties of these
        self.world = world = distributed.world()  # read once: this process's rank decides, here, what it writes
        if not world.is_main:  # rank 0 alone writes the run folder and prints
            folder, progress, echo = None, False, False
        self.folder, self.progress, self.echo = folder, progress, echo
        recipe = dataclasses.replace(recipe, world_size=world.world_size).validate()  # for recipe.json
        distributed.share(recipe.batch_size, world.world_size)  # before joining the group: a mistake ends every rank
        self.device, self.dtype = place(recipe, world)  # kept: placing sets the device up (its process group)
        set_seed(recipe.seed)
        data = load_data(recipe, data_dir, mirror)
        self.recipe = recipe = resolve(recipe, data)  # the normalisation used, for recipe.json
        self.classes = data.classes  # kept: the data itself is not
        shard = dict(rank=world.rank, world_size=world.world_size)
        self.train_loader, self.test_loader = build_loaders(
            recipe, data, self.device, data_dir, mirror, graphs=self.graphs, **shard
        )
        self.model = Net(num_classes=len(data.classes)).to(self.device)
        # recipe.init starts a new run from trained weights; a resumed one gets its own from the checkpoint
        self.init_note = transfer_weights(self.model, recipe.init) if recipe.init and fresh else None
        if recipe.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(recipe, self.model, self.device, graphs=self.graphs)
        # what trains the model: itself, or with several processes its DistributedDataParallel wrapper (which
        # averages the gradients and starts every rank from rank 0's weights), compiled if the recipe asks; kept,
        # as DDP's buckets and torch.compile's graphs live in it
        self.train_model = distributed.wrap(self.model, self.device)
        if recipe.compile:
            self.train_model = cast(nn.Module, torch.compile(self.train_model))  # (an OptimizedModule)
        self.history = loops.History()
        self.step = 0  # the steps trained: the run's clock, from which its epoch and learning rate follow
        self.board = tboard.Board(folder, every=self.log_every)  # the TensorBoard event files, beside metrics.jsonl
        self._batches: Iterator | None = None  # the current epoch's batches (the position in its draws)
        self._meter: loops.Meter | None = None  # the steps since the last evaluation, and their bar
        self._last: loops.EpochResult | None = None  # the last closed span's numbers, measured (its lr follows)
        self._stepper: Callable | None = None  # `step(*batch)`, built on first use (after a resume's restore)
        self._set_lr()

    @classmethod
    def create(cls, recipe: Recipe, out: str | Path | None = None, **kw) -> Run:
        """A new run of `recipe`; with `out`, its folder is claimed once the data and model are ready.

        With several processes rank 0 alone checks and claims the folder, and the others wait for it. A worker
        group that torchrun restarted before the first checkpoint claims its own folder again."""
        folder = RunDir(out) if out is not None else None
        main = distributed.world().is_main
        again = folder is not None and folder.restarted_claim()
        if folder is not None and main and not again:
            folder.check_free()
        run = cls(recipe, folder, **kw)  # a mistake found here leaves nothing behind
        if folder is not None and main:
            folder.claim(run.recipe, again=again and folder.holds_recipe(run.recipe))  # (and takes its lock)
        try:
            distributed.barrier()
            run._log_start()
        except BaseException:
            run.release()
            raise
        return run

    @classmethod
    def resume(cls, out: str | Path, *, epochs: int | None = None, device: str | None = None, **kw) -> Run:
        """The run in folder `out`, restored from its checkpoint. `epochs` lengthens a StepLR run; `device`
        moves it."""
        folder = RunDir(out)
        if distributed.world().is_main and folder.has_checkpoint():  # (without one, resume_recipe says why not)
            folder.lock()  # the one process that writes the folder: one at a time
        try:
            return cls._resumed(folder, epochs, device, **kw)
        except BaseException:
            folder.unlock()
            raise

    @classmethod
    def _resumed(cls, folder: RunDir, epochs: int | None, device: str | None, **kw) -> Run:
        recipe, tensors, meta = folder.resume_recipe(epochs)
        run = cls(dataclasses.replace(recipe, device=device or recipe.device), folder, fresh=False, **kw)
        state = dict(model=run.model, optimizer=run.optimizer, loader_generator=run.loader_generator)
        checkpoints.restore_checkpoint(folder / RunDir.CHECKPOINT, tensors, meta, **state)
        run.history = loops.History(meta["history"])
        run.step = resumed_step(meta, run.steps_per_epoch)  # and from it the epoch and the learning rate
        run._set_lr()
        if run.folder is not None:  # rank 0 alone writes
            folder.resumed(run.history.records, run.recipe)
            run.board.resumed(run.step)
        run.log(f"Resuming {folder} after epoch {run.epoch}")
        run._log_start()
        return run

    # ---------------------------------------------------------------------------------------------------------
    # Where the run is

    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_loader)

    batches_per_epoch = steps_per_epoch  # the name the notebook uses

    @property
    def total_steps(self) -> int:
        """The steps of the whole run: round(epochs x steps per epoch), for fractional epochs too."""
        return total_steps(self.recipe, self.steps_per_epoch)

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    @property
    def epoch(self) -> int:
        """The epoch of the last step trained (1 the first; 0 before any)."""
        return (self.step - 1) // self.steps_per_epoch + 1

    @property
    def epochs_trained(self) -> float:
        """Epochs trained so far, with the fraction of the current one (a whole number as an int)."""
        e = self.step / self.steps_per_epoch
        return int(e) if e.is_integer() else e

    @property
    def saved_epoch(self) -> int:
        """The epoch of the run folder's last checkpoint, 0 without one (read back from it, for the error messages)."""
        return checkpoints.checkpoint_epoch(self.folder / RunDir.CHECKPOINT) if self.folder is not None else 0

    def lr_at(self, step: int) -> float:
        """The learning rate of step `step` (`recipes.lr_at`)."""
        return lr_at(self.recipe, step, self.steps_per_epoch)

    # ---------------------------------------------------------------------------------------------------------
    # How it trains: what follows from the recipe, the device and the world

    @property
    def graphs(self) -> bool:
        """Whether the training step is a CUDA graph (not with several processes: DDP steps eagerly)."""
        return use_cuda_graphs(self.recipe, self.device) and not self.world.distributed

    @property
    def notes(self) -> list[str]:
        """What the run does otherwise than its recipe asks, for its opening lines."""
        off = use_cuda_graphs(self.recipe, self.device) and self.world.distributed
        return ["CUDA graphs are off with several processes (DDP steps eagerly)"] if off else []

    @property
    def criterion(self) -> Callable:
        return build_criterion(self.recipe)

    @property
    def eval_model(self) -> nn.Module:
        """What evaluates: with several processes the plain model (the same on every rank), else what trains."""
        return self.model if self.world.distributed else self.train_model

    @property
    def loader_generator(self) -> torch.Generator | None:
        """The seed DataLoader's shuffling state, which checkpoints save (the resident loader derives its own)."""
        return getattr(self.train_loader, "generator", None)

    @property
    def log_every(self) -> int:
        """Steps between bar refreshes (each syncs the device)."""
        return 1 if self.device.type == "cpu" else 20

    # ---------------------------------------------------------------------------------------------------------
    # Training

    def train_step(self) -> None:
        """Train the next step: its batch, the learning rate `lr_at(step)`, one `step(*batch)`, eager or the CUDA
        graph's replay. An epoch's first step starts it (its shuffle, its `Epoch N` line); a span's, its bar."""
        if self.done:
            raise RuntimeError(f"the run has trained all its {self.recipe.epochs} epochs")
        epoch, first = divmod(self.step, self.steps_per_epoch)
        if first == 0:  # an epoch starts: its batches are drawn now, after the last one's checkpoint
            if self._stepper is None:  # a CUDA graph is captured before them
                self._stepper = build.build_stepper(
                    self.model, self.train_model, self.optimizer, self.criterion, self.train_loader,
                    dtype=self.dtype, graphs=self.graphs,
                )  # fmt: skip
            self._batches = loops.epoch_batches(self.train_loader, epoch + 1, indices=self.graphs)
            self.log(f"Epoch {epoch + 1}")
        if self._meter is None:
            self.train_model.train()
            total = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
            self._meter = loops.Meter(self.device, total, first=first, progress=self.progress, log_every=self.log_every)
        assert self._batches is not None and self._stepper is not None  # (set at the epoch's first step)
        batch = [t.to(self.device, non_blocking=True) for t in next(self._batches)]
        self._set_lr()
        loss, correct = self._stepper(*batch)
        self._meter.add(loss, correct, batch[-1].shape[0])
        self.step += 1
        self.board.batch(self.step, loss, self.lr_at)

    def _set_lr(self) -> None:
        loops.set_lr(self.optimizer, self.lr_at(self.step))

    def end_span(self) -> loops.EpochResult:
        """Close the steps trained since the last evaluation (or the epoch's start): log their line, check the loss."""
        if self._meter is None:
            raise RuntimeError("no steps were trained since the last evaluation")
        res = self._meter.close(distributed.all_reduce_sum if self.world.distributed else None)
        self._meter, self._last = None, res
        batch_id = (self.step - 1) % self.steps_per_epoch
        # the bar shows the seed's line already (echoing it too printed it twice); train.log gets it labelled
        self.log(
            f"{loops.train_line(res, batch_id)} (Loss is the last batch's; train_loss, the mean over these "
            f"{res.batches} batches, is {res.loss:.4f})",
            echo=not self.progress,
        )
        if not math.isfinite(res.loss):
            raise NonFiniteLoss(runcard.non_finite(self, res.loss))
        return res

    def train_epoch(self, batches: int | None = None) -> loops.EpochResult:
        """Train the rest of the current epoch, or only its next `batches` steps; their numbers."""
        if self.done:
            raise RuntimeError(f"the run has trained all its {self.recipe.epochs} epochs")
        left = min(self.steps_per_epoch - self.step % self.steps_per_epoch, self.total_steps - self.step)
        for _ in range(left if batches is None else max(1, min(batches, left))):
            self.train_step()
        return self.end_span()

    # ---------------------------------------------------------------------------------------------------------
    # Evaluating, saving, exporting

    def evaluate(self) -> dict:
        """Test the model, log the seed's line, and add (and return) a history record of the last training."""
        if self._meter is not None:
            self.end_span()
        if self._last is None:
            raise RuntimeError("train before evaluating: a record pairs the last training with its test")
        t0 = time.perf_counter()
        loss, correct, total = loops.evaluate(
            self.eval_model, self.device, self.test_loader, dtype=self.dtype, verbose=False
        )
        eval_time = time.perf_counter() - t0
        self.log(loops.test_line(loss, correct, total))
        if not math.isfinite(loss):  # weights still finite can give NaN outputs: a diverged run stops here
            what = "val loss" if self.recipe.val else "test loss"
            raise NonFiniteLoss(runcard.non_finite(self, loss, what))
        res = self._last
        record = self.history.add(
            epoch=self.epochs_trained,
            train_loss=res.loss,
            train_acc=res.accuracy,
            test_loss=loss,
            test_acc=correct / total,
            lr=self.lr_at(self.step - res.batches),  # the span's first step's: the span ends at this step
            train_time_s=res.seconds,
            imgs_per_s=res.images / res.seconds if res.seconds > 0 else 0.0,
            eval_time_s=eval_time,
        )
        self.board.record(self.step, record)
        return record

    def save(self) -> None:
        """Checkpoint everything needed to continue (then metrics.jsonl, so the two agree). Epoch boundaries only,
        and the end of the run: a fractional last epoch writes its metrics but no checkpoint, and a resume trains
        that part again, the same way (its batches and augmentation come from (seed, epoch))."""
        if self.folder is None:
            return
        if self._meter is not None:
            raise RuntimeError("evaluate before saving: a checkpoint holds the record of its last steps")
        if self.step % self.steps_per_epoch and self.done:
            self.folder.write_metrics(self.history.records)
            return
        if self.step % self.steps_per_epoch:
            raise RuntimeError("checkpoints are written at epoch boundaries; finish the epoch first")
        self.check_finite_weights()
        self.folder.save_checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            epoch=self.step // self.steps_per_epoch,
            step=self.step,
            history=self.history.records,
            recipe=dataclasses.asdict(self.recipe),
            loader_generator=self.loader_generator,
        )
        self.folder.write_metrics(self.history.records)

    def check_finite_weights(self) -> None:
        """Raise `NonFiniteLoss` if any weight is NaN or infinite (one host sync: before a checkpoint or export)."""
        if not bool(torch.stack([p.isfinite().all() for p in self.model.parameters()]).all()):
            raise NonFiniteLoss(runcard.non_finite(self, None))

    def release(self) -> None:
        """Let go of the run folder's lock (`RunDir.lock`), as this process's end would: `fit` does at its end."""
        if self.folder is not None:
            self.folder.unlock()

    def card(self) -> dict:
        """The model card stored with exported weights (`runcard.card`)."""
        return runcard.card(self)

    def export(self, path: str | Path | None = None) -> Path | None:
        """Write the weights with `card()` as metadata, to `path` or the run folder's model.safetensors."""
        return runcard.export(self, path)

    def plot(self) -> None:
        """Curves, sample predictions, misclassified digits and the confusion matrix into the run folder."""
        runcard.plot(self)

    def summary(self) -> str:
        """'test accuracy 98.90% after 1 epoch, 12.3 s of training' (for the closing `Done:` line)."""
        return runcard.summary(self)

    # ---------------------------------------------------------------------------------------------------------
    # Logging

    def log(self, message: str = "", *, echo: bool = True) -> None:
        """Print (unless quiet, or `echo` is false) and append to the run's train.log."""
        if self.echo and echo:
            print(message, flush=True)
        if self.folder is not None:
            self.folder.log(message)

    def _log_start(self) -> None:
        for line in runcard.start_lines(self):
            self.log(line)
