"""What a recipe asks for: the loaders, optimizer, schedule and loss of a run, built from a `Recipe`."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mnistlab import data
from mnistlab.loaders import Augment, DeviceLoader, seed_loader
from mnistlab.recipes import Recipe


def build_loaders(recipe: Recipe, device: torch.device, data_dir=None, mirror=None, *, graphs: bool = False):
    """(train loader, test loader, the seed loader's generator or None) as the recipe asks, on `device`.

    The generator is the seed DataLoader's shuffling state, which checkpoints save for an exact resume."""
    if recipe.pipeline == "loader":
        kw = dict(data_dir=data_dir, mirror=mirror, dataset=recipe.dataset, num_workers=recipe.num_workers)
        kw.update(seed=recipe.seed, pin_memory=device.type == "cuda")
        tr = seed_loader(True, recipe.batch_size, limit=recipe.limit_train, **kw)
        te = seed_loader(False, recipe.eval_batch_size, limit=recipe.limit_test, **kw)
        return tr, te, tr.generator
    xtr, ytr = data.load_tensors(True, data_dir, mirror, recipe.dataset, recipe.limit_train)
    xte, yte = data.load_tensors(False, data_dir, mirror, recipe.dataset, recipe.limit_test)
    aug = Augment(recipe.aug_degrees, recipe.aug_scale, recipe.aug_translate)
    # a CUDA graph replays fixed shapes, so it drops the last, smaller batch of an epoch
    drop_last = graphs and len(ytr) >= recipe.batch_size
    tr = DeviceLoader(
        xtr,
        ytr,
        recipe.batch_size,
        device,
        shuffle=True,
        augment=aug,
        seed=recipe.seed,
        drop_last=drop_last,
        channels_last=recipe.channels_last,
    )
    te = DeviceLoader(xte, yte, recipe.eval_batch_size, device, channels_last=recipe.channels_last)
    return tr, te, None


def build_optimizer(recipe: Recipe, model, device: torch.device, *, graphs: bool = False):
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            nesterov=recipe.nesterov,
            weight_decay=recipe.weight_decay,
        )
    # a CUDA graph reads lr from a tensor, so the schedule can change it between replays
    lr = torch.tensor(recipe.lr, device=device) if graphs else recipe.lr
    fused = True if device.type == "cuda" else None
    return torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=recipe.weight_decay, fused=fused, capturable=graphs
    )


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
