"""What a run says and leaves: its opening log lines, the model card (with the calibration fitted on val), the
exported weights, the pictures and the closing summary."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any, Protocol

import torch

from mnistlab import calibration as calibrate
from mnistlab.model import Net
from mnistlab.store import checkpoints
from mnistlab.train import loops
from mnistlab.train.rundir import RunDir
from mnistlab.train.runtime import machine_name


class Run(Protocol):
    """What this module reads of a `train.run.Run` (so that it needs no import of it): the recipe, where the run
    executes, what it has done so far and where it keeps it."""

    recipe: Any
    world: Any
    device: torch.device
    dtype: torch.dtype | None
    init_note: str | None
    folder: RunDir | None
    history: loops.History
    classes: tuple[str, ...]
    model: Net
    test_loader: Any
    board: Any
    step: int

    @property
    def graphs(self) -> bool: ...

    @property
    def notes(self) -> list[str]: ...

    @property
    def eval_model(self) -> torch.nn.Module: ...

    @property
    def saved_epoch(self) -> int: ...

    @property
    def epoch(self) -> int: ...

    @property
    def epochs_trained(self) -> float: ...

    def check_finite_weights(self) -> None: ...


def start_lines(run: Run) -> list[str]:
    """The lines a run's log starts with: the recipe, the device, and what changed from the recipe's request."""
    r, world = run.recipe, run.world
    lines = [
        f"mnistlab recipe '{r.name}' on {run.device} (amp={run.dtype}, cuda_graphs={run.graphs}, "
        f"torch {torch.__version__})",
        r.describe(),
    ]
    if run.init_note:
        lines.append(run.init_note)
    if world.distributed:
        lines.append(
            f"{world.world_size} process{'es' * (world.world_size > 1)} (DistributedDataParallel): "
            f"global batch {r.batch_size}, {r.batch_size // world.world_size} per process"
        )
    lines += run.notes
    if r.val:
        lines.append(
            f"Evaluating on the last {r.val:,} training images (val), held out from training, not the test set"
        )
    return lines


def card(run: Run) -> dict:
    """The model card stored with exported weights: recipe, epochs, test accuracy, date, machine."""
    last = run.history.records[-1] if run.history.records else {}
    return {
        "dataset": run.recipe.dataset,
        "classes": list(run.classes),
        "recipe": dataclasses.asdict(run.recipe),
        "epochs": run.epochs_trained,
        "test_acc": last.get("test_acc"),  # on the held-out training images instead with recipe.val
        "test_images": len(run.test_loader.dataset),
        "date": datetime.date.today().isoformat(),
        "machine": machine_name(run.device),
        "torch": torch.__version__,
        **calibration(run),
    }


def calibration(run: Run) -> dict:
    """With a validation split (`recipe.val`): the temperature and "not a digit" threshold fitted on it, and
    its calibration error before and after (calibration.py). Without one, nothing: the test set is never
    used to fit anything."""
    if not run.recipe.val:
        return {}
    _, y, _, probs = loops.predictions(run.eval_model, run.device, run.test_loader, dtype=run.dtype)
    fitted = calibrate.calibrate(probs.clamp_min(1e-30).log(), y)
    return {
        "temperature": fitted.pop("temperature"),
        "digit_threshold": fitted.pop("digit_threshold"),
        "calibration": {"split": f"val: the last {run.recipe.val:,} training images", **fitted},
    }


def export(run: Run, path: str | Path | None = None) -> Path | None:
    """Write the weights with `card()` as metadata, to `path` or the run folder's model.safetensors."""
    if path is None:
        if run.folder is None:
            return None
        path = run.folder / RunDir.WEIGHTS
    path = Path(path)
    run.check_finite_weights()  # no non-finite model is ever exported
    checkpoints.save_weights(run.model, path, card(run))
    run.board.finished(run.step, run.recipe)  # the hparams (or, without tensorboard, the line that says so)
    return path


def plot(run: Run) -> None:
    """Curves, sample predictions, misclassified digits and the confusion matrix into the run folder."""
    if run.folder is None:
        raise RuntimeError("this run has no folder to put pictures in (create it with out=...)")
    x, y, pred, _ = loops.predictions(run.model, run.device, run.test_loader, dtype=run.dtype)
    mean, std = run.recipe.mean, run.recipe.std
    assert mean is not None and std is not None  # the recipe was resolved when the run started
    run.folder.plot(run.history, x, y, pred, mean=mean, std=std, classes=run.classes)
    run.board.pictures(run.step)  # the pictures just drawn, into the TensorBoard event files too


def summary(run: Run) -> str:
    """'test accuracy 98.90% after 1 epoch, 12.3 s of training' (for the closing `Done:` line)."""
    last = run.history.records[-1]
    seconds = sum(r["train_time_s"] for r in run.history.records)
    epochs = f"{last['epoch']:.3g} epoch{'' if last['epoch'] == 1 else 's'}"
    split = "val" if run.recipe.val else "test"
    return f"{split} accuracy {100 * last['test_acc']:.2f}% after {epochs}, {seconds:.1f} s of training"


def non_finite(run: Run, loss: float | None, what: str = "training loss") -> str:
    """What a run that stopped on a NaN or infinite loss (`what`: "training loss", "test loss", "val loss", or
    "weights" with `loss` None) says: the step it stopped at, and where its last good checkpoint is."""
    folder = run.folder
    kept = f", the last good checkpoint (epoch {run.saved_epoch}) is kept in {folder}" if folder else ""
    if folder and not run.saved_epoch:
        kept = f"; nothing was checkpointed yet, so delete {folder} or choose another --out"
    became = "weights became NaN or infinite" if loss is None else f"{what} became {loss}"
    return f"{became} in epoch {run.epoch} (step {run.step}); stopped{kept} (try a lower --lr)"
