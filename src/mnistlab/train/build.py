"""What a recipe asks for: the data, loaders, optimizer and loss of a run, built from a `Recipe`."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mnistlab.data import datasets, download, folders
from mnistlab.data.loaders import Augment, DeviceLoader, seed_loader
from mnistlab.data.robust import RobustAugment
from mnistlab.data.robust import criterion as robust_criterion
from mnistlab.errors import UserError
from mnistlab.recipes import Recipe
from mnistlab.train import distributed, loops


@dataclass(frozen=True)
class Data:
    """A run's images (uint8, upright, white on black) and labels, with what the dataset says about them."""

    train_images: torch.Tensor  # [N, 28, 28] uint8
    train_labels: torch.Tensor  # [N] int64, 0 .. len(classes) - 1; -1: a not-digit of the recipe's crop set
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]  # the class names, in label order
    mean: float  # the normalisation the run uses: the recipe's, else the dataset's recorded one, else computed
    std: float
    hflip_ok: bool  # whether mirroring an image keeps its label (clothes: yes; digits and letters: no)


def load_data(recipe: Recipe, data_dir=None, mirror=None, *, train: bool = True) -> Data:
    """The recipe's dataset, a named one or `folder:PATH` (both splits, or with `train=False` the test split only,
    for evaluation), and its normalisation: `recipe.mean`/`std` if set, else the dataset's, else computed from
    the training images (once, here; recipe.json then records it)."""
    root = folders.folder_of(recipe.dataset)
    if root is not None:
        if recipe.pipeline == "loader":
            raise UserError(
                f"{recipe.dataset}: the seed's DataLoader pipeline reads the torchvision datasets only; folder "
                "datasets train with the resident pipeline (the default recipe)"
            )
        classes, mean, std, hflip_ok = tuple(folders.classes(root)), None, None, False

        def load(split: bool, limit):
            return folders.load_tensors(root, split, limit)
    else:
        spec = datasets.get(recipe.dataset)
        classes, mean, std, hflip_ok = tuple(spec.classes), spec.mean, spec.std, spec.hflip_ok

        def load(split: bool, limit):
            return download.load_tensors(split, data_dir, mirror, recipe.dataset, limit)

    empty = torch.zeros(0, 28, 28, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64)
    if recipe.val:  # the last `val` training images become the evaluation set; the test set is not read
        xtr, ytr = load(True, None)
        if recipe.val >= len(ytr):
            raise UserError(f"--val {recipe.val} leaves no training images: {recipe.dataset} has {len(ytr):,}")
        xte, yte = xtr[-recipe.val :][: recipe.limit_test], ytr[-recipe.val :][: recipe.limit_test]
        xtr, ytr = xtr[: -recipe.val][: recipe.limit_train], ytr[: -recipe.val][: recipe.limit_train]
    else:
        # the seed's DataLoader reads its own dataset: tensors are loaded for it only to compute a normalisation
        tensors = recipe.pipeline != "loader"
        stats = recipe.mean is None and mean is None
        xtr, ytr = load(True, recipe.limit_train) if (train and tensors) or stats else empty
        xte, yte = load(False, recipe.limit_test) if tensors or not train else empty
    if recipe.crops and train:  # the training split only: the evaluation set stays the dataset's own
        xc, yc = load_crops(recipe)
        xtr, ytr = torch.cat([xtr, xc]), torch.cat([ytr, yc])
    if recipe.mean is not None and recipe.std is not None:
        mean, std = recipe.mean, recipe.std
    elif mean is None or std is None:
        mean, std = datasets.pixel_stats(xtr)
    return Data(xtr, ytr, xte, yte, classes, float(mean), float(std), hflip_ok)


def load_crops(recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe's crop set (scripts/make_crops.py): images uint8 [N, 28, 28], labels int64 [N] (-1: a not-digit,
    which only the robust augmentation's criterion has a target for)."""
    if recipe.pipeline != "resident":
        raise UserError("a crop set trains with the resident pipeline (the default recipe), not the seed's DataLoader")
    try:
        with np.load(str(recipe.crops), allow_pickle=False) as z:
            x, y = torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]).long()
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read the crop set {recipe.crops}: {e}") from None
    if x.dtype != torch.uint8 or x.shape[1:] != (28, 28) or len(x) != len(y) or bool((y < -1).any() | (y > 9).any()):
        raise UserError(f"{recipe.crops} is not a crop set of scripts/make_crops.py (uint8 28x28 images, labels -1..9)")
    if recipe.augment not in ("robust", "outliers") and bool((y < 0).any()):
        raise UserError(f"{recipe.crops} holds not-digits: train on it with augment robust or outliers")
    return x, y


def resolve(recipe: Recipe, d: Data) -> Recipe:
    """The recipe with the normalisation it will use written in (so recipe.json records it)."""
    return dataclasses.replace(recipe, mean=d.mean, std=d.std)


def build_loaders(
    recipe: Recipe,
    d: Data,
    device: torch.device,
    data_dir=None,
    mirror=None,
    *,
    graphs: bool = False,
    rank: int = 0,
    world_size: int = 1,
):
    """(train loader, test loader) as the recipe asks, on `device`.

    The seed DataLoader's `generator` is its shuffling state, which checkpoints save for an exact resume. With
    `world_size` processes, `recipe.batch_size` is the global batch: the training loader of rank `rank` yields its
    share of each global batch (batch_size / world_size images); every rank evaluates the whole test set."""
    batch_size = distributed.share(recipe.batch_size, world_size)
    if recipe.pipeline == "loader":
        kw = dict(data_dir=data_dir, mirror=mirror, dataset=recipe.dataset, num_workers=recipe.num_workers)
        kw.update(seed=recipe.seed, pin_memory=device.type == "cuda", mean=d.mean, std=d.std)
        tr = seed_loader(True, batch_size, limit=recipe.limit_train, rank=rank, world_size=world_size, **kw)
        te = seed_loader(False, recipe.eval_batch_size, limit=recipe.limit_test, **kw)
        return tr, te
    hflip = recipe.aug_hflip == "on" or (recipe.aug_hflip == "auto" and d.hflip_ok)
    aug: Augment | RobustAugment = Augment(recipe.aug_degrees, recipe.aug_scale, recipe.aug_translate, hflip)
    if recipe.augment in ("robust", "outliers"):
        aug = RobustAugment(
            d.mean, d.std, recipe.aug_degrees, recipe.aug_scale, recipe.aug_translate, recipe.outliers,
            corrupt=recipe.augment == "robust",
        )  # fmt: skip
    # a CUDA graph replays fixed shapes, so it drops the last, smaller batch of an epoch
    drop_last = graphs and len(d.train_labels) >= recipe.batch_size
    on_device = functools.partial(DeviceLoader, mean=d.mean, std=d.std, channels_last=recipe.channels_last)
    train_loader = on_device(
        d.train_images,
        d.train_labels,
        batch_size,
        device,
        shuffle=True,
        augment=aug,
        seed=recipe.seed,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
    )
    return train_loader, on_device(d.test_images, d.test_labels, recipe.eval_batch_size, device)


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


def build_criterion(recipe: Recipe) -> Callable:
    """The model outputs log-probabilities: cross-entropy on them equals nll (log_softmax is idempotent). The robust
    augmentation labels its not-digits -1, which its own criterion gives a uniform target."""
    if recipe.augment in ("robust", "outliers") and recipe.pipeline == "resident":
        return functools.partial(robust_criterion, smoothing=recipe.label_smoothing, weight=recipe.outlier_weight)
    if recipe.label_smoothing > 0:
        return functools.partial(F.cross_entropy, label_smoothing=recipe.label_smoothing)
    return F.nll_loss


def use_cuda_graphs(recipe: Recipe, device: torch.device) -> bool:
    if recipe.cuda_graphs == "off" or device.type != "cuda" or recipe.pipeline != "resident":
        return False
    return recipe.optimizer == "adamw" and not recipe.compile


def build_stepper(model, train_model, optimizer, criterion: Callable, loader, *, dtype, graphs: bool) -> Callable:
    """`loops.train_step` on (images, labels), or its CUDA graph on the batch's indices (cuda_graph.py); `model`
    is the network, `train_model` what trains it (the same, or its DDP or compiled wrapper)."""
    step = functools.partial(loops.train_step, train_model, optimizer, criterion, dtype=dtype)
    if not graphs:
        return step
    from mnistlab.train.cuda_graph import CUDAGraphStep

    return CUDAGraphStep(step, loader, model, optimizer)
