"""MNIST-format data: fetching (mirror + md5), tensors, the seed's DataLoader path and the device-resident path."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import datasets
from torchvision.datasets.utils import download_url
from torchvision.transforms import v2

from mnistlab.errors import UserError


@dataclass(frozen=True)
class DatasetSpec:
    """An MNIST-format dataset: the torchvision class that reads it and its normalisation."""

    name: str
    cls: type[datasets.MNIST]
    mean: float
    std: float


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("mnist", datasets.MNIST, 0.1307, 0.3081),
}

# Sizes of the extracted idx files, to catch a truncated extraction before torchvision parses it.
_EXTRACTED_SIZES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}") from None


def default_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """`data_dir`, else $MNISTLAB_DATA, else ~/.cache/mnistlab."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("MNISTLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mnistlab"


def default_mirror(mirror: str | None = None) -> str | None:
    """`mirror`, else $MNISTLAB_MIRROR, else None (torchvision's internet mirrors)."""
    return mirror or os.environ.get("MNISTLAB_MIRROR") or None


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_url(mirror: str) -> bool:
    return "://" in mirror


def ensure_raw(spec: DatasetSpec, root: Path, mirror: str | None) -> Path:
    """Make sure `root/<Class>/raw` holds the dataset's .gz files with the right md5s; return that folder.

    Files already there are verified; missing ones come from `mirror` (a folder or a URL prefix) or, without
    one, from torchvision's internet mirrors. Every failure is a `UserError` naming the file and the fix.
    """
    raw = root / spec.cls.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if mirror and mirror.startswith("file://"):  # a local folder given as a URL
        mirror = urllib.request.url2pathname(urllib.parse.urlparse(mirror).path)
    for filename, md5 in spec.cls.resources:
        dest = raw / filename
        if dest.exists():
            if _md5(dest) == md5:
                continue
            raise UserError(
                f"{dest} is corrupted (md5 mismatch, expected {md5}); delete it and run again to fetch a fresh copy"
            )
        if mirror and not _is_url(mirror):
            src = Path(mirror).expanduser() / filename
            if not src.is_file():
                raise UserError(f"mirror folder {mirror} has no {filename}; it must hold the four official .gz files")
            if _md5(src) != md5:
                raise UserError(f"{src} is corrupted (md5 mismatch, expected {md5}); replace it with the official file")
            tmp = dest.with_name(dest.name + ".part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
            continue
        urls = [mirror.rstrip("/") + "/"] if mirror else list(spec.cls.mirrors)
        errors = []
        for base in urls:
            try:
                download_url(base + filename, str(raw), filename=filename, md5=md5)
                break
            except (urllib.error.URLError, OSError, RuntimeError) as e:
                errors.append(f"{base}: {e}")
                if dest.exists():
                    dest.unlink()
        else:
            raise UserError(
                f"cannot get {filename} ({'; '.join(errors)}); either put the four official MNIST .gz files in "
                f"{raw}, or point --mirror / MNISTLAB_MIRROR at a folder or URL that holds them"
            )
    for name, size in _EXTRACTED_SIZES.items():
        extracted = raw / name
        if extracted.exists() and extracted.stat().st_size != size:
            extracted.unlink()  # a truncated extraction: torchvision re-extracts it from the verified .gz
    return raw


def mnist_dataset(train: bool, data_dir=None, mirror=None, dataset: str = "mnist", transform=None):
    """The torchvision dataset, md5-verified, fetched from the mirror if needed."""
    spec = get_spec(dataset)
    root = default_data_dir(data_dir)
    ensure_raw(spec, root, default_mirror(mirror))
    try:
        return spec.cls(str(root), train=train, download=True, transform=transform)
    except (RuntimeError, OSError, ValueError) as e:
        folder = root / spec.cls.__name__
        raise UserError(f"cannot read {dataset} from {root}: {e}; delete {folder} and run again") from e


def load_tensors(train: bool, data_dir=None, mirror=None, dataset: str = "mnist", limit: int | None = None):
    """(images uint8 [N, 28, 28], labels int64 [N]) of the train or test split, the first `limit` if given."""
    ds = mnist_dataset(train, data_dir, mirror, dataset)
    images, labels = ds.data, ds.targets
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


# --------------------------------------------------------------------------------------------------------------
# The seed's path: PIL transforms in a torchvision DataLoader.


def seed_transforms(train: bool, mean: float = 0.1307, std: float = 0.3081) -> v2.Compose:
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
    dataset: str = "mnist",
    limit: int | None = None,
    num_workers: int = 2,
    seed: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A torchvision DataLoader with the seed's transforms (shuffled for training)."""
    spec = get_spec(dataset)
    ds = mnist_dataset(train, data_dir, mirror, dataset, transform=seed_transforms(train, spec.mean, spec.std))
    if limit is not None:
        ds = Subset(ds, range(min(limit, len(ds))))
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=train,
        num_workers=num_workers,
        pin_memory=pin_memory,
        # fresh workers each epoch draw their seeds from `generator`, which checkpoints save: exact resume
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
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
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=g)
        else:
            perm = torch.arange(self.n)
        total = self.num_samples * self.world_size
        if total > self.n:
            perm = torch.cat([perm, perm[: total - self.n]])
        return perm[self.rank : total : self.world_size]


@dataclass(frozen=True)
class Augment:
    """Random affine per image: rotation +-degrees, scale 1+-scale, shift +-translate pixels (bilinear)."""

    degrees: float = 15.0
    scale: float = 0.1
    translate: float = 2.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = x.shape
        r = torch.rand(b, 4, device=x.device, generator=generator, dtype=torch.float32) * 2 - 1
        angle = r[:, 0] * math.radians(self.degrees)
        s = 1 + r[:, 1] * self.scale
        cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
        tx, ty = r[:, 2] * (2 * self.translate / w), r[:, 3] * (2 * self.translate / h)
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).to(x.dtype)
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
        mean: float = 0.1307,
        std: float = 0.3081,
        shuffle: bool = False,
        augment: Augment | None = None,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
    ):
        self.device = torch.device(device)
        x = images.to(self.device).unsqueeze(1).float().div_(255).sub_(mean).div_(std)
        self.images = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        self.labels = labels.to(self.device)
        self.batch_size, self.augment, self.seed, self.drop_last = batch_size, augment, seed, drop_last
        self.channels_last = channels_last
        self.sampler = EpochSampler(len(labels), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size)
        self.epoch = 0
        self.dataset = self.images  # len(loader.dataset) = number of images, as with a DataLoader

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.sampler.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def iter_indices(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(indices, labels) of each batch of the current epoch, on the device."""
        idx_all = self.sampler.indices(self.epoch).to(self.device)
        for i in range(len(self)):
            idx = idx_all[i * self.batch_size : (i + 1) * self.batch_size]
            yield idx, self.labels.index_select(0, idx)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gen = None
        if self.augment is not None:
            gen = torch.Generator(device=self.device).manual_seed(self.seed * 7_919 + self.epoch)
        for idx, y in self.iter_indices():
            x = self.images.index_select(0, idx)
            if self.augment is not None:
                x = self.augment(x, gen)
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
            yield x, y
