"""Small MNIST-format files for tests: idx writers, gzip, EMNIST's gzip.zip, and a small mirror of any dataset."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnistlab.data.datasets import DatasetSpec


def idx_bytes(a: np.ndarray) -> bytes:
    """`a` (uint8 or int32, 1 to 3 dimensions) as an idx file: magic (type code, dimension count), the dimensions,
    then the values, all big-endian."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}[a.dtype]
    header = np.array([code << 8 | a.ndim, *a.shape], dtype=">i4").tobytes()
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def gz_bytes(content: bytes, level: int = 9, mtime: int = 0) -> bytes:
    """`content` gzipped; another `level` or `mtime` gives other bytes for the same content."""
    return gzip.compress(content, compresslevel=level, mtime=mtime)


def write_zip(path: Path, members: dict[str, bytes]) -> bytes:
    """A zip at `path` holding `members` (name inside the zip: bytes), as EMNIST's gzip.zip holds gzip/*.gz."""
    with zipfile.ZipFile(path, "w") as z:
        for name, b in members.items():
            z.writestr(name, b)
    return path.read_bytes()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@dataclass
class Mirror:
    """A small mirror folder of one dataset's layout, the spec that describes it and what loading must give."""

    folder: Path
    spec: DatasetSpec  # the real spec with the small files' sizes and checksums
    images: dict[bool, torch.Tensor]  # train (True) / test (False): uint8 [N, 28, 28], upright
    labels: dict[bool, torch.Tensor]  # int64 [N], from 0
    contents: dict[str, bytes]  # official file name: its decompressed (idx) content


def upright_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` random images; the first has a bright top row and a grey left column (not symmetric under a
    transpose or a flip), so a wrong orientation shows."""
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    if n:
        x[0] = 0
        x[0, 0, :] = 255
        x[0, 1:14, 0] = 128
    return x


def make_mirror(
    folder: Path,
    spec: DatasetSpec,
    n_train: int = 60,
    n_test: int = 30,
    *,
    zipped: bool = True,
    known_content: bool = True,
    in_gzip_folder: bool = False,
    seed: int = 0,
) -> Mirror:
    """Write a small mirror of `spec`'s layout into `folder` and return it with the matching spec.

    The files are laid out as the official ones are: MNIST's four idx files, EMNIST's transposed images and
    (letters) 1-based labels, QMNIST's idx2 int32 label rows. An EMNIST mirror holds the zip (`zipped`, then the
    spec, like the real one, knows only the zip's md5) or the loose .gz files (in a gzip/ sub-folder with
    `in_gzip_folder`; the spec then knows their md5s). `known_content` records the content sha256s."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    k = spec.num_classes
    images, labels, contents = {}, {}, {}
    for train, n in ((True, n_train), (False, n_test)):
        x = upright_images(n, rng)
        y = (np.arange(n) + rng.integers(0, k)) % k  # every class once n >= k
        images[train], labels[train] = torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))
        stored = x.transpose(0, 2, 1) if spec.transposed else x
        if spec.label_columns:  # QMNIST: the class, then other numbers (writer ids, indices, ...)
            rows = rng.integers(0, 2**31 - 1, size=(n, spec.label_columns), dtype=np.int32)
            rows[:, 0] = y
            label_file = idx_bytes(rows)
        else:
            label_file = idx_bytes((y + spec.label_offset).astype(np.uint8))
        contents[spec.file(train, False).name] = idx_bytes(np.ascontiguousarray(stored))
        contents[spec.file(train, True).name] = label_file
    gz = {name: gz_bytes(c) for name, c in contents.items()}
    files = tuple(
        dataclasses.replace(
            f,
            md5=None if spec.archive and zipped else md5(gz[f.name]),
            sha256=sha256(contents[f.name]) if known_content else None,
        )
        for f in spec.files
    )
    archive = spec.archive
    if archive and zipped:
        z = write_zip(folder / archive.name, {archive.folder + name: b for name, b in gz.items()})
        archive = dataclasses.replace(archive, md5=md5(z))
    else:
        target = folder / archive.folder if archive and in_gzip_folder else folder
        target.mkdir(exist_ok=True)
        for name, b in gz.items():
            (target / name).write_bytes(b)
    small = dataclasses.replace(spec, files=files, train_size=n_train, test_size=n_test, archive=archive)
    return Mirror(folder, small, images, labels, contents)
