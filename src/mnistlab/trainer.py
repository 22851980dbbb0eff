"""Run a whole recipe: data, model, optimiser and schedule from the recipe; epochs, metrics, checkpoints, resume."""

from __future__ import annotations

import functools
import itertools
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from mnistlab import checkpoints, data
from mnistlab.errors import UserError
from mnistlab.model import get_model
from mnistlab.recipes import Recipe
from mnistlab.utils import (
    History,
    amp_dtype,
    get_device,
    keep_cpu_buffers,
    set_seed,
    test,
    test_line,
    train,
    train_line,
)


class NonFiniteLoss(UserError):
    """The training loss became NaN or infinite."""


@dataclass
class Loaders:
    train: object
    test: object
    generator: torch.Generator | None  # the seed loader's shuffling generator (checkpointed for exact resume)


def build_loaders(recipe: Recipe, device: torch.device, data_dir=None, mirror=None, *, graphs: bool = False):
    """The train and test loaders the recipe asks for, on `device`."""
    spec = data.get_spec(recipe.dataset)
    if recipe.pipeline == "loader":
        kw = dict(
            data_dir=data_dir,
            mirror=mirror,
            dataset=recipe.dataset,
            num_workers=recipe.num_workers,
            seed=recipe.seed,
            pin_memory=device.type == "cuda",
        )
        tr = data.seed_loader(True, recipe.batch_size, limit=recipe.limit_train, **kw)
        te = data.seed_loader(False, recipe.eval_batch_size, limit=recipe.limit_test, **kw)
        return Loaders(tr, te, tr.generator)
    xtr, ytr = data.load_tensors(True, data_dir, mirror, recipe.dataset, recipe.limit_train)
    xte, yte = data.load_tensors(False, data_dir, mirror, recipe.dataset, recipe.limit_test)
    aug = data.Augment(recipe.aug_degrees, recipe.aug_scale, recipe.aug_translate)
    common = dict(mean=spec.mean, std=spec.std, channels_last=recipe.channels_last)
    tr = data.DeviceLoader(
        xtr,
        ytr,
        recipe.batch_size,
        device,
        shuffle=True,
        augment=aug,
        seed=recipe.seed,
        drop_last=graphs and len(ytr) >= recipe.batch_size,
        **common,
    )
    te = data.DeviceLoader(xte, yte, recipe.eval_batch_size, device, **common)
    return Loaders(tr, te, None)


def build_optimizer(recipe: Recipe, model: nn.Module, device: torch.device, *, graphs: bool = False):
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov,
            weight_decay=recipe.weight_decay,
        )
    if graphs:  # a CUDA graph reads lr from a tensor, so the schedule can change it between replays
        return torch.optim.AdamW(
            model.parameters(),
            lr=torch.tensor(recipe.lr, device=device),
            weight_decay=recipe.weight_decay,
            capturable=True,
            fused=True,
        )
    fused = device.type == "cuda"
    return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, fused=fused or None)


def build_scheduler(recipe: Recipe, optimizer, steps_per_epoch: int):
    """(scheduler, per_batch): OneCycle is stepped every batch, StepLR every epoch."""
    if recipe.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.step_size, gamma=recipe.gamma), False
    total = recipe.epochs * steps_per_epoch
    if total < 4:  # too short for a warm-up and an anneal phase: keep the peak rate
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0), True
    sched = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=recipe.lr,
        total_steps=total,
        pct_start=min(max(recipe.pct_start, 2.0 / total), 0.5),  # at least one step of warm-up
        div_factor=recipe.div_factor,
        final_div_factor=recipe.final_div_factor,
        cycle_momentum=False,
    )
    return sched, True


def build_criterion(recipe: Recipe) -> Callable:
    """The model outputs log-probabilities: cross-entropy on them equals nll (log_softmax is idempotent)."""
    if recipe.label_smoothing > 0:
        return functools.partial(F.cross_entropy, label_smoothing=recipe.label_smoothing)
    return F.nll_loss


def use_cuda_graphs(recipe: Recipe, device: torch.device) -> bool:
    if recipe.cuda_graphs == "off" or device.type != "cuda" or recipe.pipeline != "resident":
        return False
    return recipe.optimizer == "adamw" and not recipe.compile


@dataclass
class RunResult:
    model: nn.Module
    history: History
    run_dir: Path | None
    device: torch.device
    loaders: Loaders
    dtype: torch.dtype | None


class _Log:
    """Print to stdout and append to the run's train.log."""

    def __init__(self, path: Path | None, echo: bool = True):
        self.path, self.echo = path, echo

    def __call__(self, msg: str = "") -> None:
        if self.echo:
            print(msg, flush=True)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(msg + "\n")


def fit(
    recipe: Recipe,
    *,
    data_dir=None,
    mirror=None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    echo: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
    evals_per_epoch: int = 1,
) -> RunResult:
    """Train `recipe` end to end. With `out`, write the run folder (recipe.json, metrics.jsonl, train.log,
    checkpoint.safetensors every epoch, model.safetensors at the end); with `resume`, continue from it.

    `evals_per_epoch` > 1 evaluates (and records, with fractional `epoch`) that many times per epoch, for
    time-to-accuracy measurements; `on_epoch` is called with every record."""
    recipe.validate()
    run_dir = Path(out) if out is not None else None
    if run_dir is not None:
        if resume:
            if not (run_dir / checkpoints.CHECKPOINT).is_file():
                raise UserError(
                    f"cannot resume: {run_dir} has no {checkpoints.CHECKPOINT} (it stopped before its first epoch "
                    "ended); start a new run with another --out"
                )
        elif (run_dir / "metrics.jsonl").exists():
            raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(run_dir / "train.log" if run_dir else None, echo)

    device = get_device(recipe.device)
    set_seed(recipe.seed)
    dtype = amp_dtype(recipe.amp, device)
    graphs = use_cuda_graphs(recipe, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    elif device.type == "cpu" and recipe.keep_cpu_buffers:
        keep_cpu_buffers()
    loaders = build_loaders(recipe, device, data_dir, mirror, graphs=graphs)
    model = get_model(recipe.model).to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(recipe, model, device, graphs=graphs)
    scheduler, per_batch = build_scheduler(recipe, optimizer, len(loaders.train))
    criterion = build_criterion(recipe)
    history = History()
    start = 1
    if resume:
        meta = checkpoints.load_checkpoint(
            run_dir / checkpoints.CHECKPOINT,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            loader_generator=loaders.generator,
        )
        history = History(meta["history"])
        start = meta["epoch"] + 1
        _write_metrics(run_dir, history)  # drop lines of an epoch that was not checkpointed
        for stale in run_dir.glob("*.tmp"):  # temporary files of writes that a kill cut short
            stale.unlink(missing_ok=True)
        log(f"Resuming {run_dir} after epoch {meta['epoch']}")
    elif run_dir is not None:
        recipe.save(run_dir / "recipe.json")
        (run_dir / "metrics.jsonl").write_text("")
    log(f"mnistlab recipe '{recipe.name}' on {device} (amp={dtype}, cuda_graphs={graphs}, torch {torch.__version__})")
    log(recipe.describe())

    step, train_batches = None, loaders.train
    if graphs:
        from mnistlab.fast import GraphBatches, GraphedStep

        step = GraphedStep(model, optimizer, criterion, dtype, loaders.train)
        train_batches = GraphBatches(loaders.train)
    train_model = torch.compile(model) if recipe.compile else model

    for epoch in range(start, recipe.epochs + 1):
        if hasattr(loaders.train, "set_epoch"):
            loaders.train.set_epoch(epoch)
        log(f"Epoch {epoch}")
        batches = iter(train_batches)
        pieces = _split(len(train_batches), evals_per_epoch)
        for part, n_batches in enumerate(pieces, start=1):
            lr = _current_lr(optimizer)
            res = train(
                train_model,
                device,
                _Take(batches, n_batches),
                optimizer,
                scheduler if per_batch else None,
                criterion=criterion,
                dtype=dtype,
                step=step,
                progress=progress,
                log_every=1 if device.type == "cpu" else 20,
            )
            log(train_line(res))
            if not math.isfinite(res.loss):
                raise NonFiniteLoss(
                    f"training loss became {res.loss} in epoch {epoch}; stopped"
                    + (f", the last good checkpoint (epoch {epoch - 1}) is kept in {run_dir}" if run_dir else "")
                    + " (try a lower --lr)"
                )
            t0 = time.perf_counter()
            test_loss, correct, total = test(train_model, device, loaders.test, dtype=dtype, verbose=False)
            eval_time = time.perf_counter() - t0
            log(test_line(test_loss, correct, total))
            rec = history.add(
                epoch=epoch if len(pieces) == 1 else epoch - 1 + part / len(pieces),
                train_loss=res.loss,
                train_acc=res.accuracy,
                test_loss=test_loss,
                test_acc=correct / total,
                lr=lr,
                train_time_s=res.seconds,
                imgs_per_s=res.images / res.seconds if res.seconds > 0 else float("nan"),
                eval_time_s=eval_time,
            )
            if on_epoch is not None:
                on_epoch(rec)
        if not per_batch:
            scheduler.step()
        if run_dir is not None:
            checkpoints.save_checkpoint(
                run_dir / checkpoints.CHECKPOINT,
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                epoch=epoch,
                history=history.records,
                recipe=asdict(recipe),
                loader_generator=loaders.generator,
            )
            # metrics.jsonl follows the checkpoint: a kill between the two loses nothing on resume
            _write_metrics(run_dir, history)
    if run_dir is not None:
        checkpoints.save_weights(
            model,
            run_dir / checkpoints.WEIGHTS,
            {"model": recipe.model, "dataset": recipe.dataset, "recipe": recipe.name},
        )
    return RunResult(model, history, run_dir, device, loaders, dtype)


def _write_metrics(run_dir: Path, history: History) -> None:
    tmp = run_dir / "metrics.jsonl.tmp"
    tmp.write_text(history.to_jsonl())
    os.replace(tmp, run_dir / "metrics.jsonl")


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
