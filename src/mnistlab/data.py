"""Getting MNIST: the data folder, a mirror or the internet, md5 checks, and the images and labels as tensors."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from torchvision import datasets
from torchvision.datasets.utils import download_url

from mnistlab.errors import UserError

MEAN, STD = 0.1307, 0.3081  # MNIST's training-set pixel mean and std (on 0..1), as the seed normalised
DATASET = "mnist"  # the one dataset so far; `Recipe.dataset` names it in every run folder
_SOURCE = datasets.MNIST  # the torchvision class that reads it (resources = file names and md5s, mirrors)

# Sizes of the extracted idx files, to catch a truncated extraction before torchvision parses it.
_EXTRACTED_SIZES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}


def check_dataset(name: str) -> None:
    if name != DATASET:
        raise UserError(f"unknown dataset {name!r}; choose from {DATASET}")


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


def ensure_raw(root: Path, mirror: str | None) -> Path:
    """Make sure `root/<Class>/raw` holds the dataset's .gz files with the right md5s; return that folder.

    Files already there are verified; missing ones come from `mirror` (a folder or a URL prefix) or, without
    one, from torchvision's internet mirrors. Every failure is a `UserError` naming the file and the fix.
    """
    raw = root / _SOURCE.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if mirror and mirror.startswith("file://"):  # a local folder given as a URL
        mirror = urllib.request.url2pathname(urllib.parse.urlparse(mirror).path)
    for filename, md5 in _SOURCE.resources:
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
        urls = [mirror.rstrip("/") + "/"] if mirror else list(_SOURCE.mirrors)
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
    check_dataset(dataset)
    root = default_data_dir(data_dir)
    ensure_raw(root, default_mirror(mirror))
    try:
        return _SOURCE(str(root), train=train, download=True, transform=transform)
    except (RuntimeError, OSError, ValueError) as e:
        folder = root / _SOURCE.__name__
        raise UserError(f"cannot read {dataset} from {root}: {e}; delete {folder} and run again") from e


def load_tensors(train: bool, data_dir=None, mirror=None, dataset: str = "mnist", limit: int | None = None):
    """(images uint8 [N, 28, 28], labels int64 [N]) of the train or test split, the first `limit` if given."""
    ds = mnist_dataset(train, data_dir, mirror, dataset)
    images, labels = ds.data, ds.targets
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels
