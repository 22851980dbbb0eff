"""Your own labelled images as a dataset (`folder:PATH`): one sub-folder per class, prepared as `predict` does."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets.folder import find_classes

from mnistlab.errors import UserError, one_line
from mnistlab.images.decode import IMAGE_EXTENSIONS

PREFIX = "folder:"
TEST_SHARE = 0.2  # without a test/ folder, about this share of each class is held out for testing ...
# ... chosen by a hash of the file's path inside its class folder: the same files whatever order the disk lists
# them in, and adding an image never moves another one between the splits.


def folder_of(dataset: str) -> Path | None:
    """The folder a `folder:PATH` dataset name points at, or None for a named dataset."""
    if not dataset.startswith(PREFIX):
        return None
    path = dataset[len(PREFIX) :]
    if not path:
        raise UserError("folder: needs a path (folder:PATH, with one sub-folder of images per class)")
    return Path(path).expanduser()


def layout(root: Path) -> tuple[Path, Path | None]:
    """(the training folder, the test folder or None): root/train and root/test if there is a train/, else root."""
    if not root.is_dir():
        raise UserError(f"{PREFIX}{root}: {'not a folder' if root.exists() else 'no such folder'}")
    if (root / "train").is_dir():
        test = root / "test"
        return root / "train", test if test.is_dir() else None
    return root, None


def classes(root: Path) -> list[str]:
    """The class names: the training folder's sub-folders, sorted (as torchvision's ImageFolder orders them). A
    name that is not UTF-8 is shown with its odd bytes escaped (`zero\\xff`), once, here: what is printed, plotted,
    served and stored with the weights is always valid text."""
    return [n.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") for n in _folder_names(root)]


def _folder_names(root: Path) -> list[str]:
    """The class folders' names as the file system gives them (undecodable bytes as surrogates)."""
    train, _ = layout(root)
    try:
        names, _ = find_classes(str(train))
    except FileNotFoundError:  # torchvision's word for "no sub-folders"
        names = []
    except OSError as e:
        raise UserError(f"{PREFIX}{root}: cannot list {train}: {one_line(e)}") from None
    if len(names) < 2:
        raise UserError(
            f"{PREFIX}{root}: found {len(names)} class folder(s) in {train}; a classifier needs at least 2 "
            "(one sub-folder of images per class, named after it)"
        )
    return names


def held_out(relative: str) -> bool:
    """Whether the image at `relative` (its path inside its class folder's parent) belongs to the test split."""
    digest = hashlib.sha256(relative.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") < TEST_SHARE * 2**64


def _samples(folder: Path, index: dict[str, int], skip: frozenset = frozenset()) -> list[tuple[Path, int]]:
    """(image file, class index) under each class folder. Links to folders are not followed (a link loop would
    walk for ever), and a file reached twice (through links, or hard links) counts once, at its first path;
    files whose (device, inode) is in `skip` are left out."""
    seen: set[tuple[int, int]] = set(skip)
    out = []
    for name in sorted(index):
        for dirpath, dirnames, filenames in os.walk(folder / name, followlinks=False):
            dirnames.sort()
            for fn in sorted(filenames):
                path = Path(dirpath) / fn
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                try:
                    st = path.stat()  # a link to a file is followed to it
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    out.append((path, index[name]))
    return out


def _inodes(samples) -> frozenset:
    return frozenset((st.st_dev, st.st_ino) for st in (p.stat() for p, _ in samples))


def files(root: Path, train: bool) -> list[tuple[Path, int]]:
    """(image file, class index) of the split, sorted by path."""
    names = _folder_names(root)
    index = {name: i for i, name in enumerate(names)}
    train_dir, test_dir = layout(root)
    folder = train_dir if train or test_dir is None else test_dir
    if folder is test_dir:
        extra = sorted(set(find_classes(str(test_dir))[0]) - set(names))
        if extra:
            raise UserError(f"{PREFIX}{root}: {test_dir} has classes the training folder lacks: {', '.join(extra)}")
        index = {name: index[name] for name in find_classes(str(test_dir))[0]}
    # a test image that is also a training image (a link to it) is left out of the test split
    skip = _inodes(_samples(train_dir, {n: i for i, n in enumerate(names)})) if folder is test_dir else frozenset()
    chosen = _samples(folder, index, skip)
    if test_dir is None:
        chosen = [(p, c) for p, c in chosen if held_out(p.relative_to(folder).as_posix()) != train]
    if not chosen:
        split = "training" if train else "test"
        raise UserError(f"{PREFIX}{root}: no {split} images found (looked for {' '.join(IMAGE_EXTENSIONS)})")
    return sorted(chosen)


def load_tensors(root: Path, train: bool, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 [N, 28, 28] white on black, int64 [N]) of the split: each image prepared as `mnistlab predict`
    prepares it (the digit found, cropped, scaled to 20 px and centred). An image that cannot be prepared is an
    error naming it: training quietly without it would hide a mislabelled or broken file."""
    from mnistlab.images.preprocess import prepare

    chosen = files(root, train)[:limit]
    if train and limit is None:
        used = {c for _, c in chosen}
        for name in (n for i, n in enumerate(classes(root)) if i not in used):
            print(f"mnistlab: warning: the class folder {name!r} holds no training images", file=sys.stderr)
    images = np.zeros((len(chosen), 28, 28), dtype=np.uint8)
    bad = []
    for i, (path, _) in enumerate(chosen):
        try:
            images[i] = np.rint(prepare(path) * 255)
        except UserError as e:
            bad.append(str(e))
    if bad:
        raise UserError(
            f"{PREFIX}{root}: {len(bad)} of {len(chosen)} images cannot be used (first: {bad[0]}); fix or remove them"
        )
    labels = torch.tensor([c for _, c in chosen], dtype=torch.int64)
    return torch.from_numpy(images), labels
