"""The two ways to batch MNIST: the seed's DataLoader with PIL transforms, and the data held on the device."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, Subset
from torchvision.transforms import v2

from mnistlab.data import datasets
from mnistlab.data.download import load_tensors, mnist_dataset
from mnistlab.pixels import MEAN, STD, normalize

if TYPE_CHECKING:  # robust is imported where its recipes are built (build.py), not by every loader
    from mnistlab.data.robust import RobustAugment

# Each random stream of an epoch gets its own seed, `seed * multiplier + epoch`. The multipliers are primes larger
# than any realistic epoch count, so (seed, epoch) pairs do not collide within a stream, and they differ between
# streams, so the shuffle order and the augmentation never draw from the same seed.
_STREAM_MULTIPLIERS = {"order": 1_000_003, "augment": 7_919}


def epoch_seed(seed: int, epoch: int, stream: str) -> int:
    """The seed of one random stream ("order" or "augment") in one epoch, from the run's seed alone.

    Deriving it (rather than carrying a generator along) is what lets a resumed run replay any epoch exactly.
    """
    return (seed * _STREAM_MULTIPLIERS[stream] + epoch) % 2**64


# --------------------------------------------------------------------------------------------------------------
# The seed's path: PIL transforms in a torchvision DataLoader.


def seed_transforms(train: bool, mean: float = MEAN, std: float = STD) -> v2.Compose:
    """The seed's transforms (transforms.v2 equivalents of its v1 pipeline on PIL images)."""
    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize((mean,), (std,))]
    if not train:
        return v2.Compose(tail)
    return v2.Compose(
        [
            v2.RandomApply([v2.CenterCrop(22)], p=0.1),
            v2.Resize((28, 28)),
            v2.RandomRotation((-15.0, 15.0), fill=0),
            *tail,
        ]
    )


def seed_loader(
    train: bool,
    batch_size: int,
    *,
    data_dir=None,
    mirror=None,
    dataset: str = datasets.DEFAULT,
    limit: int | None = None,
    num_workers: int = 2,
    seed: int = 0,
    pin_memory: bool = False,
    mean: float | None = None,
    std: float | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A torchvision DataLoader with the seed's transforms (shuffled for training), normalised with `mean` and
    `std`, else the dataset's recorded values, else those of its training images.

    With `world_size` > 1 a training loader reads rank `rank`'s shard through a `DistributedSampler` (call
    `loader.sampler.set_epoch(e)` each epoch); `batch_size` is then this process's share of the global batch."""
    mean, std = datasets.normalization(
        datasets.get(dataset), lambda: load_tensors(True, data_dir, mirror, dataset)[0], mean, std
    )
    ds = mnist_dataset(train, data_dir, mirror, dataset, transform=seed_transforms(train, mean, std))
    if limit is not None:
        ds = Subset(ds, range(min(limit, len(ds))))
    sampler: DistributedSampler | None = None
    if train and world_size > 1:
        sampler = DistributedSampler(ds, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        # fresh workers each epoch draw their seeds from `generator`, which checkpoints save: exact resume
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed % 2**64),
    )


# --------------------------------------------------------------------------------------------------------------
# The fast path: the whole dataset resident on the device, batches sliced from a per-epoch permutation.


class EpochSampler:
    """Indices for one epoch: a permutation drawn from (seed, epoch) alone, so any epoch can be replayed.

    With `world_size` > 1 the permutation is padded to a multiple of `world_size` and rank r takes every
    world_size-th index from r, as `DistributedSampler` does; each rank then sees `num_samples` indices.
    """

    def __init__(self, n: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        self.n, self.shuffle, self.seed, self.rank, self.world_size = n, shuffle, seed, rank, world_size
        self.num_samples = math.ceil(n / world_size)

    def indices(self, epoch: int) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch, "order"))
            perm = torch.randperm(self.n, generator=g)
        else:
            perm = torch.arange(self.n)
        total = self.num_samples * self.world_size
        if total > self.n:
            perm = torch.cat([perm, perm[: total - self.n]])
        return perm[self.rank : total : self.world_size]


@dataclass(frozen=True)
class Augment:
    """Random affine per image: rotation +-degrees, scale 1+-scale, shift +-translate pixels (bilinear), and with
    `hflip` a mirror image half of the time (only for data whose labels survive it: clothes, not digits)."""

    degrees: float = 15.0
    scale: float = 0.1
    translate: float = 2.0
    hflip: bool = False

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator | None = None, *, rank: int = 0, world_size: int = 1
    ) -> torch.Tensor:
        """`x` augmented. With `world_size` > 1, `x` is rank `rank`'s share of a global batch (its positions
        rank::world_size): the draws are made for the whole global batch and this share's rows are kept, so an
        image is augmented the same whatever the number of processes."""
        b, _, h, w = x.shape
        # a fifth draw only with hflip, so that runs without it draw exactly what they always drew
        cols = 5 if self.hflip else 4
        r = torch.rand(b * world_size, cols, device=x.device, generator=generator, dtype=torch.float32) * 2 - 1
        if world_size > 1:
            r = r[rank::world_size]
        angle = r[:, 0] * math.radians(self.degrees)
        s = 1 + r[:, 1] * self.scale
        cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
        tx, ty = r[:, 2] * (2 * self.translate / w), r[:, 3] * (2 * self.translate / h)
        mirror = torch.where(r[:, 4] < 0, -1.0, 1.0) if self.hflip else 1.0  # -1 reads the input's x backwards
        rows = torch.stack([cos * mirror, -sin, tx], 1), torch.stack([sin * mirror, cos, ty], 1)
        theta = torch.stack(rows, 1).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # MNIST's border pixels are background, so border padding fills with the exact background value.
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class DeviceLoader:
    """Batches from a dataset held on the device, normalised once; optional on-device augmentation.

    Iterating yields (images [B,1,28,28] float32, labels [B] int64) already on `device`. Call
    `set_epoch(e)` before each epoch (as with `DistributedSampler`); the order and the augmentation of
    epoch e depend only on (seed, e), which makes runs resumable at epoch boundaries.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        device: torch.device | str,
        *,
        mean: float = MEAN,
        std: float = STD,
        shuffle: bool = False,
        augment: Augment | RobustAugment | None = None,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
    ):
        self.device = torch.device(device)
        x = normalize(images.to(self.device).unsqueeze(1).float().div_(255), mean, std)
        self.images = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        self.labels = labels.to(self.device)
        self.batch_size, self.augment, self.seed, self.drop_last = batch_size, augment, seed, drop_last
        self.channels_last = channels_last
        self.sampler = EpochSampler(len(labels), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.dataset = self.images  # len(loader.dataset) = number of images, as with a DataLoader

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.sampler.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batch(self, idx: torch.Tensor, generator: torch.Generator | None = None):
        """(images, labels) of the images at `idx`: gathered, augmented if training, in the model's layout.

        The one gather-and-augment path: eager iteration calls it with the epoch's generator, and the CUDA graph
        captures it with `generator=None` (the default CUDA generator, which graphs can replay safely).
        """
        x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)
        if self.augment is not None:
            if isinstance(self.augment, Augment):
                x = self.augment(x, generator, rank=self.rank, world_size=self.world_size)
            else:  # robust.RobustAugment: not-digits replace some rows (and their labels)
                x, y = self.augment(x, y, generator, rank=self.rank, world_size=self.world_size)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def iter_indices(self) -> Iterator[torch.Tensor]:
        """The indices of each batch of the current epoch, on the device."""
        idx_all = self.sampler.indices(self.epoch).to(self.device)
        for i in range(len(self)):
            yield idx_all[i * self.batch_size : (i + 1) * self.batch_size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = None
        if self.augment is not None:
            gen = torch.Generator(device=self.device).manual_seed(epoch_seed(self.seed, self.epoch, "augment"))
        for idx in self.iter_indices():
            yield self.batch(idx, gen)
