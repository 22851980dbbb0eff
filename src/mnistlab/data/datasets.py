"""The MNIST-format datasets mnistlab knows: files, checksums, sizes, classes, and how their pixels are normalised."""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import torch
from torchvision import datasets as tv

from mnistlab.data.datafolder import default_data_dir, read_record
from mnistlab.errors import UserError
from mnistlab.pixels import MEAN, STD

DEFAULT = "mnist"  # the default dataset; `Recipe.dataset` names it in every run folder
FOLDER_PREFIX = "folder:"  # `folder:PATH` names a folder of your own images (mnistlab.data.folders), not one of these


class Idx(NamedTuple):
    """The layout of an extracted idx file: its magic number, dimensions and bytes per value."""

    magic: int
    dims: tuple[int, ...]
    itemsize: int

    @property
    def size(self) -> int:
        """The file's size in bytes: the header (magic and one int32 per dimension), then the values."""
        return 4 * (1 + len(self.dims)) + math.prod(self.dims) * self.itemsize


@dataclass(frozen=True)
class IdxFile:
    """One official .gz file of a dataset (an idx file, gzipped) and what mnistlab knows of it."""

    name: str  # the official file's name, e.g. "train-images-idx3-ubyte.gz"; extracted, it loses ".gz"
    train: bool  # the training split's file (else the test split's)
    labels: bool  # the labels (else the images)
    md5: str | None  # md5 of the official .gz (torchvision's); None where torchvision records none (EMNIST's)
    sha256: str | None = None  # sha256 of its decompressed content; None: unknown, the copy is "unverified"

    @property
    def extracted(self) -> str:
        return self.name.removesuffix(".gz")


@dataclass(frozen=True)
class Archive:
    """An official archive that holds a dataset's .gz files (EMNIST's gzip.zip, every split in one download)."""

    name: str  # "gzip.zip"
    md5: str
    folder: str  # the folder inside the archive that holds the .gz files, with a trailing "/"


@dataclass(frozen=True)
class DatasetSpec:
    """An MNIST-format dataset: where torchvision keeps it, its files, sizes, classes, and what its images need."""

    name: str
    description: str
    source: type  # the torchvision class that reads it
    source_kwargs: tuple[tuple[str, object], ...]  # its other arguments, e.g. (("split", "digits"),)
    files: tuple[IdxFile, ...]  # train images, train labels, test images, test labels
    train_size: int
    test_size: int
    classes: tuple[str, ...]  # the class names, in (0-based) label order
    urls: tuple[str, ...]  # the internet URL prefixes torchvision fetches the files (or the archive) from
    archive: Archive | None = None  # the files come in this archive (EMNIST), not one by one
    transposed: bool = False  # images are stored column by column (EMNIST): transpose them to stand upright
    label_offset: int = 0  # the label of class 0 in the files (EMNIST letters: 1, "a")
    label_columns: int = 0  # 0: idx1 ubyte labels; else idx2 int32 rows of this many, the class first (QMNIST: 8)
    hflip_ok: bool = False  # whether mirroring an image keeps its label (clothes: yes; digits, letters, kana: no)
    mean: float | None = None  # the recorded training-set pixel mean (on 0..1); None: compute it (pixel_stats)
    std: float | None = None

    @property
    def folder(self) -> str:
        """The folder under the data folder where torchvision keeps the files."""
        return f"{self.source.__name__}/raw"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def size(self, train: bool) -> int:
        return self.train_size if train else self.test_size

    def file(self, train: bool, labels: bool) -> IdxFile:
        return next(f for f in self.files if f.train == train and f.labels == labels)

    def idx(self, f: IdxFile) -> Idx:
        """The layout of `f` extracted."""
        n = self.size(f.train)
        if not f.labels:
            return Idx(0x0803, (n, 28, 28), 1)  # 08: unsigned bytes, 03: three dimensions
        if self.label_columns:
            return Idx(0x0C02, (n, self.label_columns), 4)  # 0C: big-endian int32s, 02: two dimensions
        return Idx(0x0801, (n,), 1)

    def checksums(self, f: IdxFile) -> str:
        """What a copy of `f` is checked against; a record of a check against other checksums no longer holds."""
        return f"{f.md5}/{f.sha256}/{self.archive.md5 if self.archive else None}"

    def verified(self, raw: Path) -> dict[str, dict]:
        """The entries of the "verified" record in the raw folder `raw` (mnistlab.data.datafolder) that still hold."""
        known = read_record(raw, "verified", self.name)
        return {f.name: known[f.name] for f in self.files if known.get(f.name, {}).get("of") == self.checksums(f)}

    def is_present(self, root: Path) -> bool:
        """Whether every file is in the data folder `root` with the size it had when verified (nothing is hashed)."""
        raw = Path(root) / self.folder
        known = self.verified(raw)
        try:
            return all(f.name in known and (raw / f.name).stat().st_size == known[f.name]["size"] for f in self.files)
        except OSError:
            return False

    def torchvision(self, root, train: bool, transform=None):
        """torchvision's dataset, read from the files already extracted under `root` (it never downloads)."""
        # QMNIST: no `what` here, so that torchvision picks "train" or "test" from `train`.
        return self.source(str(root), train=train, download=False, transform=transform, **dict(self.source_kwargs))


def _mnist_like(name: str, description: str, source: type[tv.MNIST], classes, sha256=None, **kw) -> DatasetSpec:
    """A dataset in MNIST's four files (MNIST, Fashion-MNIST, KMNIST): names and md5s from torchvision."""
    md5, sha256 = dict(source.resources), sha256 or {}
    names = [f"{split}-{kind}-ubyte.gz" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]
    files = tuple(IdxFile(n, n.startswith("train"), "labels" in n, md5[n], sha256.get(n)) for n in names)
    return DatasetSpec(
        name, description, source, (), files, 60_000, 10_000, tuple(classes), tuple(source.mirrors), **kw
    )


def _emnist(split: str, description: str, train_size: int, test_size: int, classes, **kw) -> DatasetSpec:
    """An EMNIST split: its .gz files come in the official gzip.zip, whose md5 alone torchvision records."""
    files = tuple(
        IdxFile(f"emnist-{split}-{part}-{kind}-ubyte.gz", part == "train", kind.startswith("labels"), None)
        for part in ("train", "test")
        for kind in ("images-idx3", "labels-idx1")
    )
    base, zip_name = tv.EMNIST.url.rsplit("/", 1)
    kw.update(archive=Archive(zip_name, tv.EMNIST.md5, "gzip/"), transposed=True)
    split_kw, urls = (("split", split),), (base + "/",)
    return DatasetSpec(
        f"emnist-{split}", description, tv.EMNIST, split_kw, files, train_size, test_size, tuple(classes), urls, **kw
    )


def _qmnist() -> DatasetSpec:
    res = {url.rsplit("/", 1)[1]: (url, md5) for part in ("train", "test") for url, md5 in tv.QMNIST.resources[part]}
    files = tuple(
        IdxFile(name, name.startswith("qmnist-train"), "labels" in name, md5) for name, (_, md5) in res.items()
    )
    urls = tuple(sorted({url.rsplit("/", 1)[0] + "/" for url, _ in res.values()}))
    return DatasetSpec(
        "qmnist",
        "QMNIST: MNIST's digits rebuilt from NIST, with a 60,000-image test set",
        tv.QMNIST,
        (("compat", True),),  # compat: an item's target is the class, not the row of 8 numbers
        files,
        60_000,
        60_000,
        tuple(string.digits),
        urls,
        label_columns=8,
    )


# Every spec is a frozen dataclass in a read-only mapping: nothing here changes once imported.
SPECS: MappingProxyType[str, DatasetSpec] = MappingProxyType(
    {
        s.name: s
        for s in (
            _mnist_like(
                "mnist",
                "MNIST: handwritten digits 0-9 (the default)",
                tv.MNIST,
                string.digits,
                mean=MEAN,
                std=STD,
                # sha256 of the decompressed official files, computed from the .gz files whose md5 is torchvision's
                sha256={
                    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                },
            ),
            _mnist_like(
                "fashion-mnist",
                "Fashion-MNIST: Zalando's clothes in 10 classes",
                tv.FashionMNIST,
                tv.FashionMNIST.classes,
                hflip_ok=True,
                # sha256 of what Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 decompresses to: Debian's
                # re-compressed copy (other .gz md5s than torchvision's), its idx headers and counts checked; Zalando's
                # own files were not at hand. Were theirs to differ, their extraction would fail, naming this record.
                sha256={
                    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                },
            ),
            # No content sha256 for the others (their files were never at hand to hash): "unverified" when loaded
            _mnist_like("kmnist", "Kuzushiji-MNIST: 10 cursive hiragana", tv.KMNIST, tv.KMNIST.classes),
            _emnist("digits", "EMNIST digits 0-9 from NIST SD 19", 240_000, 40_000, string.digits),
            # the letters files label a..z as 1..26 (torchvision's class 0 is "N/A", never used)
            _emnist(
                "letters",
                "EMNIST letters a-z, upper and lower case merged",
                124_800,
                20_800,
                string.ascii_lowercase,
                label_offset=1,
            ),
            _emnist(
                "balanced",
                "EMNIST balanced: digits and letters in 47 classes",
                112_800,
                18_800,
                tv.EMNIST.classes_split_dict["balanced"],
            ),
            _qmnist(),
        )
    }
)


def names() -> tuple[str, ...]:
    return tuple(SPECS)


def is_folder(name: str) -> bool:
    """Whether `name` is a `folder:PATH` dataset (read by mnistlab.data.folders), not a named MNIST-format one."""
    return name.startswith(FOLDER_PREFIX)


def get(name: str) -> DatasetSpec:
    """The spec of the dataset `name`, or a `UserError` listing the choices (tests patch this to use small specs)."""
    try:
        return SPECS[name]
    except (KeyError, TypeError):
        pass
    if isinstance(name, str) and is_folder(name):
        raise UserError(f"{name} is a folder dataset, not one of the MNIST-format datasets ({', '.join(SPECS)})")
    raise UserError(f"unknown dataset {name!r}; choose from {', '.join(SPECS)}, or {FOLDER_PREFIX}PATH")


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """(mean, std) of the pixels of uint8 `images` on 0..1, in float64 (from a histogram: exact, no float copy)."""
    if images.numel() == 0:
        raise UserError("no training images to compute the pixel mean and std from")
    counts = torch.bincount(images.reshape(-1).to(torch.int64), minlength=256).to(torch.float64)
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum()
    mean = (counts * values).sum() / n
    std = ((counts * (values - mean) ** 2).sum() / n).sqrt()
    if std == 0:
        raise UserError("every training pixel has the same value; there is nothing to normalise or learn")
    return float(mean), float(std)


def normalization(
    spec: DatasetSpec, train_images: Callable[[], torch.Tensor], mean: float | None = None, std: float | None = None
) -> tuple[float, float]:
    """The (mean, std) a run normalises `spec`'s images with: `mean` and `std` if both are given (a recipe's), else
    the dataset's recorded ones, else those of its training images (`train_images()`, called only then)."""
    if mean is not None and std is not None:
        return float(mean), float(std)
    if spec.mean is not None and spec.std is not None:
        return spec.mean, spec.std
    return pixel_stats(train_images())


def rows(data_dir=None) -> list[dict]:
    """One row per dataset for `mnistlab datasets`: its name, description, sizes, classes, and whether it is present."""
    root = default_data_dir(data_dir)
    keys = ("name", "description", "train_size", "test_size", "num_classes")
    out = []
    for name in names():
        spec = get(name)
        row = dict(zip(("name", "description", "train", "test", "classes"), (getattr(spec, k) for k in keys)))
        out.append({**row, "present": spec.is_present(root)})
    return out
