"""A training run: `Run` builds everything from a recipe and trains, evaluates and saves it; `fit` loops over it."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mnistlab import calibration, checkpoints, distributed, loops, plots
from mnistlab.analysis import confusion_matrix
from mnistlab.build import (
    build_criterion,
    build_loaders,
    build_optimizer,
    build_scheduler,
    load_data,
    resolve,
    total_steps,
    use_cuda_graphs,
)
from mnistlab.classifier import transfer_weights
from mnistlab.errors import UserError
from mnistlab.model import Net
from mnistlab.recipes import Recipe
from mnistlab.rundir import RunDir
from mnistlab.runtime import amp_dtype, get_device, keep_cpu_buffers, machine_name, set_seed


class NonFiniteLoss(UserError):
    """The training loss became NaN or infinite."""


class Run:
    """One training run. `Run.create(recipe, out)` starts one, `Run.resume(out)` continues one from its checkpoint.

    `train_epoch()` trains (the rest of) the current epoch, `evaluate()` tests and records a history line,
    `save()` checkpoints at an epoch boundary, `export()` writes the final weights, `plot()` the pictures.
    Without `out` nothing is written. The model, optimizer, scheduler, loaders and history are attributes.
    """

    def __init__(
        self,
        recipe: Recipe,
        folder: RunDir | None,
        *,
        data_dir=None,
        mirror=None,
        progress=True,
        echo=True,
        fresh: bool = True,
    ):
        self.world = world = distributed.world()
        recipe = dataclasses.replace(recipe, world_size=world.world_size)  # informational, for recipe.json
        self.recipe, self.folder, self.progress, self.echo = recipe.validate(), folder, progress, echo
        if not world.is_main:  # rank 0 alone writes the run folder and prints
            self.folder, self.progress, self.echo = None, False, False
        distributed.share(recipe.batch_size, world.world_size)  # before joining the group: a mistake ends every rank
        self.device = distributed.device_for(get_device(recipe.device), world)
        distributed.setup(self.device)
        set_seed(recipe.seed)
        self.dtype = amp_dtype(recipe.amp, self.device)
        self.graphs = use_cuda_graphs(recipe, self.device)
        self._graphs_message = None
        if self.graphs and world.distributed:
            self.graphs = False
            self._graphs_message = "CUDA graphs are off with several processes (DDP steps eagerly)"
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        elif self.device.type == "cpu" and recipe.keep_cpu_buffers:
            keep_cpu_buffers()
        data = load_data(recipe, data_dir, mirror)
        self.recipe = recipe = resolve(recipe, data)  # the normalisation used, for recipe.json
        self.classes = data.classes
        world_kw = dict(rank=world.rank, world_size=world.world_size)
        self.train_loader, self.test_loader, self.loader_generator = build_loaders(
            recipe, data, self.device, data_dir, mirror, graphs=self.graphs, **world_kw
        )
        self.model = Net(num_classes=len(data.classes)).to(self.device)
        # recipe.init starts a new run from trained weights; a resumed one gets its own from the checkpoint
        self._init_message = transfer_weights(self.model, recipe.init) if recipe.init and fresh else None
        if recipe.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(recipe, self.model, self.device, graphs=self.graphs)
        self.scheduler, self.per_batch = build_scheduler(recipe, self.optimizer, len(self.train_loader))
        self.criterion = build_criterion(recipe)
        # several processes: DistributedDataParallel averages the gradients (and starts every rank from rank 0's
        # weights); evaluation uses the plain model, the same on every rank
        self.train_model = distributed.wrap(self.model, self.device)
        if recipe.compile:
            self.train_model = torch.compile(self.train_model)
        self.eval_model = self.model if world.distributed else self.train_model
        self.history = loops.History()
        self.epochs_done = 0  # whole epochs trained
        self.batch_in_epoch = 0  # batches of the current epoch trained so far
        self._batches = None  # the current epoch's batch iterator
        self._last: loops.EpochResult | None = None
        self._lr = 0.0
        self._graph_step = None  # captured on first use, after a resume has restored the optimizer

    @classmethod
    def create(cls, recipe: Recipe, out: str | Path | None = None, **kw) -> Run:
        """A new run of `recipe`; with `out`, its folder is claimed once the data and model are ready.

        With several processes rank 0 alone checks and claims the folder, and the others wait for it. A worker
        group that torchrun restarted before the first checkpoint claims its own folder again."""
        folder = RunDir(out) if out is not None else None
        main = distributed.world().is_main
        again = (
            folder is not None
            and distributed.restart_count() > 0
            and (folder / RunDir.RECIPE).is_file()
            and not folder.has_checkpoint()
        )
        if folder is not None and main and not again:
            folder.check_free()
        run = cls(recipe, folder, **kw)  # a mistake found here leaves nothing behind
        if folder is not None and main:
            folder.claim(run.recipe, again=again and _same_recipe(folder, run.recipe))
        distributed.barrier()
        run._log_start()
        return run

    @classmethod
    def resume(cls, out: str | Path, *, epochs: int | None = None, device: str | None = None, **kw) -> Run:
        """The run in folder `out`, restored from its checkpoint. `epochs` lengthens a StepLR run; `device`
        moves it."""
        folder = RunDir(out)
        saved = folder.load_recipe()
        tensors, meta = folder.read_checkpoint()
        _check_unchanged(saved, Recipe.from_dict(meta["recipe"], f"{folder / RunDir.CHECKPOINT}"), folder)
        lengthened = epochs is not None and epochs != saved.epochs
        if lengthened and saved.scheduler == "onecycle":
            raise UserError(
                f"cannot change --epochs when resuming: {folder} was planned as a {saved.epochs}-epoch "
                "OneCycle schedule (leave --epochs out to finish it)"
            )
        saved = dataclasses.replace(saved, epochs=epochs or saved.epochs)
        run = cls(dataclasses.replace(saved, device=device or saved.device), folder, fresh=False, **kw)
        checkpoints.restore_checkpoint(
            folder / RunDir.CHECKPOINT,
            tensors,
            meta,
            model=run.model,
            optimizer=run.optimizer,
            scheduler=run.scheduler,
            loader_generator=run.loader_generator,
        )
        run.history, run.epochs_done = loops.History(meta["history"]), meta["epoch"]
        if run.folder is not None:  # rank 0 alone writes
            folder.write_metrics(run.history.records)  # drop lines of an epoch the checkpoint does not hold
            folder.clean_up()
            resolved = dataclasses.replace(
                saved, mean=run.recipe.mean, std=run.recipe.std, world_size=run.recipe.world_size
            )
            if lengthened or resolved != saved:  # a longer run, an older folder, another number of processes
                folder.save_recipe(resolved)
        run.log(f"Resuming {folder} after epoch {run.epochs_done}")
        run._log_start()
        return run

    # ---------------------------------------------------------------------------------------------------------

    @property
    def total_batches(self) -> int:
        """The batches of the whole run: `epochs` (possibly fractional) times an epoch's."""
        return total_steps(self.recipe, self.batches_per_epoch)

    @property
    def batches_done(self) -> int:
        return self.epochs_done * self.batches_per_epoch + self.batch_in_epoch

    @property
    def batches_left_in_epoch(self) -> int:
        """What is left of the current epoch: its rest, or less in a fractional last epoch."""
        return min(self.batches_per_epoch - self.batch_in_epoch, self.total_batches - self.batches_done)

    @property
    def epochs_trained(self) -> float:
        """Epochs trained so far, with the fraction of the current one (a whole number as an int)."""
        e = self.batches_done / self.batches_per_epoch
        return int(e) if e.is_integer() else e

    @property
    def done(self) -> bool:
        return self.batches_done >= self.total_batches

    @property
    def batches_per_epoch(self) -> int:
        return len(self.train_loader)

    def log(self, message: str = "") -> None:
        """Print (unless quiet) and append to the run's train.log."""
        if self.echo:
            print(message, flush=True)
        if self.folder is not None:
            self.folder.log(message)

    def _log_start(self) -> None:
        r = self.recipe
        self.log(
            f"mnistlab recipe '{r.name}' on {self.device} (amp={self.dtype}, cuda_graphs={self.graphs}, "
            f"torch {torch.__version__})"
        )
        self.log(r.describe())
        if self._init_message:
            self.log(self._init_message)
        if self.world.distributed:
            per = r.batch_size // self.world.world_size
            self.log(
                f"{self.world.world_size} process{'es' * (self.world.world_size > 1)} (DistributedDataParallel): "
                f"global batch {r.batch_size}, "
                f"{per} per process"
            )
        if self._graphs_message:
            self.log(self._graphs_message)
        if r.val:
            self.log(
                f"Evaluating on the last {r.val:,} training images (val), held out from training, not the test set"
            )

    def _step(self):
        """The step the loop calls: None (the eager `loops.train_step`) or the CUDA-graph replay of it."""
        if self.graphs and self._graph_step is None:
            from mnistlab.cuda_graph import CUDAGraphStep

            def step(x, y):
                return loops.train_step(self.model, self.optimizer, self.criterion, x, y, self.dtype)

            self._graph_step = CUDAGraphStep(step, self.train_loader, self.model, self.optimizer)
        return self._graph_step

    def train_epoch(self, batches: int | None = None) -> loops.EpochResult:
        """Train the rest of the current epoch, or only its next `batches` batches (for finer evaluation)."""
        if self.done:
            raise RuntimeError(f"the run has trained all its {self.recipe.epochs} epochs")
        epoch = self.epochs_done + 1
        if self.batch_in_epoch == 0:
            if hasattr(self.train_loader, "set_epoch"):
                self.train_loader.set_epoch(epoch)
            elif hasattr(getattr(self.train_loader, "sampler", None), "set_epoch"):  # the seed's, sharded
                self.train_loader.sampler.set_epoch(epoch)
            graphed = self._step() is not None
            self._batches = iter(((i,) for i in self.train_loader.iter_indices()) if graphed else self.train_loader)
            self.log(f"Epoch {epoch}")
        left = self.batches_left_in_epoch
        n = left if batches is None else max(1, min(batches, left))
        self._lr = _current_lr(self.optimizer)
        res = loops.train_epoch(
            self.train_model,
            self.device,
            _Take(self._batches, n),
            self.optimizer,
            self.scheduler if self.per_batch else None,
            criterion=self.criterion,
            dtype=self.dtype,
            step=self._step(),
            progress=self.progress,
            log_every=1 if self.device.type == "cpu" else 20,
            all_reduce=distributed.all_reduce_sum if self.world.distributed else None,
        )
        self._last = res
        self.log(loops.train_line(res))
        if not math.isfinite(res.loss):
            kept = f", the last good checkpoint (epoch {epoch - 1}) is kept in {self.folder}" if self.folder else ""
            if self.folder and epoch == 1:
                kept = f"; nothing was checkpointed yet, so delete {self.folder} or choose another --out"
            raise NonFiniteLoss(f"training loss became {res.loss} in epoch {epoch}; stopped{kept} (try a lower --lr)")
        self.batch_in_epoch += n
        if self.batch_in_epoch == self.batches_per_epoch:
            self.batch_in_epoch, self.epochs_done = 0, epoch
            if not self.per_batch:
                self.scheduler.step()
        return res

    def evaluate(self) -> dict:
        """Test the model, log the seed's line, and add (and return) a history record of the last training."""
        if self._last is None:
            raise RuntimeError("train before evaluating: a record pairs the last training with its test")
        t0 = time.perf_counter()
        loss, correct, total = loops.evaluate(
            self.eval_model, self.device, self.test_loader, dtype=self.dtype, verbose=False
        )
        eval_time = time.perf_counter() - t0
        self.log(loops.test_line(loss, correct, total))
        res = self._last
        return self.history.add(
            epoch=self.epochs_trained,
            train_loss=res.loss,
            train_acc=res.accuracy,
            test_loss=loss,
            test_acc=correct / total,
            lr=self._lr,
            train_time_s=res.seconds,
            imgs_per_s=res.images / res.seconds if res.seconds > 0 else 0.0,
            eval_time_s=eval_time,
        )

    def save(self) -> None:
        """Checkpoint everything needed to continue (then metrics.jsonl, so the two agree). Epoch boundaries only,
        and the end of the run: a fractional last epoch writes its metrics but no checkpoint, and a resume trains
        that part again, the same way (its batches and augmentation come from (seed, epoch))."""
        if self.folder is None:
            return
        if self.batch_in_epoch and self.done:
            self.folder.write_metrics(self.history.records)
            return
        if self.batch_in_epoch:
            raise RuntimeError("checkpoints are written at epoch boundaries; finish the epoch first")
        self.folder.save_checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            epoch=self.epochs_done,
            history=self.history.records,
            recipe=dataclasses.asdict(self.recipe),
            loader_generator=self.loader_generator,
        )
        self.folder.write_metrics(self.history.records)

    def card(self) -> dict:
        """The model card stored with exported weights: recipe, epochs, test accuracy, date, machine."""
        last = self.history.records[-1] if self.history.records else {}
        return {
            "dataset": self.recipe.dataset,
            "classes": list(self.classes),
            "recipe": dataclasses.asdict(self.recipe),
            "epochs": self.epochs_trained,
            "test_acc": last.get("test_acc"),  # on the held-out training images instead with recipe.val
            "test_images": len(self.test_loader.dataset),
            "date": datetime.date.today().isoformat(),
            "machine": machine_name(self.device),
            "torch": torch.__version__,
            **self.calibration(),
        }

    def calibration(self) -> dict:
        """With a validation split (`recipe.val`): the temperature and "not a digit" threshold fitted on it, and
        its calibration error before and after (calibration.py). Without one, nothing: the test set is never
        used to fit anything."""
        if not self.recipe.val:
            return {}
        _, y, _, probs = loops.predictions(self.eval_model, self.device, self.test_loader, dtype=self.dtype)
        fitted = calibration.calibrate(probs.clamp_min(1e-30).log(), y)
        return {
            "temperature": fitted.pop("temperature"),
            "digit_threshold": fitted.pop("digit_threshold"),
            "calibration": {"split": f"val: the last {self.recipe.val:,} training images", **fitted},
        }

    def export(self, path: str | Path | None = None) -> Path | None:
        """Write the weights with `card()` as metadata, to `path` or the run folder's model.safetensors."""
        if path is None and self.folder is None:
            return None
        path = Path(path) if path is not None else self.folder / RunDir.WEIGHTS
        checkpoints.save_weights(self.model, path, self.card())
        return path

    def plot(self) -> None:
        """Curves, sample predictions, misclassified digits and the confusion matrix into the run folder."""
        f = self.folder
        if f is None:
            raise RuntimeError("this run has no folder to put pictures in (create it with out=...)")
        x, y, pred, _ = loops.predictions(self.model, self.device, self.test_loader, dtype=self.dtype)
        names = dict(mean=self.recipe.mean, std=self.recipe.std, classes=self.classes)
        plots.plot_history(self.history, f / f.CURVES)
        plots.plot_samples(x, y, pred, f / f.SAMPLES, **names)
        plots.plot_misclassified(x, y, pred, f / f.MISCLASSIFIED, **names)
        plots.plot_confusion(confusion_matrix(y, pred, len(self.classes)), f / f.CONFUSION, self.classes)


def _check_unchanged(now: Recipe, then: Recipe, folder: RunDir) -> None:
    """Refuse to resume when recipe.json no longer says what the checkpoint was trained with (an edit by hand).

    The device may differ (a run can move), and so may the length of a StepLR run (it can be lengthened)."""
    changed = [f.name for f in dataclasses.fields(Recipe) if getattr(now, f.name) != getattr(then, f.name)]
    allowed = {"device", "world_size"} | ({"epochs"} if now.scheduler == then.scheduler == "step" else set())
    changed = [name for name in changed if name not in allowed]
    if changed:
        diff = ", ".join(f"{n} {getattr(then, n)!r} -> {getattr(now, n)!r}" for n in changed)
        raise UserError(
            f"{folder / RunDir.RECIPE} no longer matches the run's checkpoint ({diff}); put it back as it was, "
            "or start a new run"
        )


def _same_recipe(folder: RunDir, recipe: Recipe) -> bool:
    """Whether the folder's recipe.json is `recipe` (a restarted worker group's own claim, not another run's)."""
    try:
        return folder.load_recipe() == recipe
    except UserError:
        return False


def fit(
    recipe: Recipe | None,
    *,
    out=None,
    resume: bool = False,
    evals_per_epoch: int = 1,
    on_record: Callable[[dict], None] | None = None,
    **kw,
) -> Run:
    """Train `recipe` to the end (or, with `resume`, the run in `out`, whose own recipe is used) and return the Run.

    With `out` the run folder gets recipe.json, train.log, metrics.jsonl and a checkpoint every epoch, and
    model.safetensors at the end. `evals_per_epoch` > 1 evaluates (and records, with a fractional epoch) that
    often per epoch, for time-to-accuracy measurements; `on_record` sees every record. `kw`: data_dir, mirror,
    progress, echo."""
    run = Run.resume(out, **kw) if resume else Run.create(recipe, out, **kw)
    while not run.done:
        for n in _split(run.batches_left_in_epoch, evals_per_epoch):
            run.train_epoch(batches=n)
            record = run.evaluate()
            if on_record is not None:
                on_record(record)
        run.save()
    run.export()
    return run


# --------------------------------------------------------------------------------------------------------------


def _split(n: int, parts: int) -> list[int]:
    """n batches in `parts` near-equal consecutive pieces (no empty piece)."""
    parts = max(1, min(parts, n))
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


class _Take:
    """The next n items of a shared iterator, with a length (for the progress bar)."""

    def __init__(self, it, n: int):
        self.it, self.n = it, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(self.it, self.n)


def _current_lr(optimizer) -> float:
    lr = optimizer.param_groups[0]["lr"]
    return float(lr.item() if torch.is_tensor(lr) else lr)
