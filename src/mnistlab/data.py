"""Getting MNIST: the data folder, a mirror or the internet, md5 checks, and the images and labels as tensors."""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import shutil
import struct
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from torchvision import datasets
from torchvision.datasets.utils import download_url

from mnistlab.errors import UserError, one_line

MEAN, STD = 0.1307, 0.3081  # MNIST's training-set pixel mean and std (on 0..1), as the seed normalised
DATASET = "mnist"  # the one dataset so far; `Recipe.dataset` names it in every run folder
_SOURCE = datasets.MNIST  # the torchvision class that reads it (resources = file names and md5s, mirrors)

# The extracted idx files: (magic number, dimensions), both big-endian int32s in the header (magic at offset 0).
# An extracted file that does not match (size, header, a label outside 0..9) is deleted before torchvision reads it,
# so that torchvision re-extracts it from the md5-verified .gz: it is derived data, and its .gz is the truth.
_IDX = {
    "train-images-idx3-ubyte": (2051, (60_000, 28, 28)),
    "train-labels-idx1-ubyte": (2049, (60_000,)),
    "t10k-images-idx3-ubyte": (2051, (10_000, 28, 28)),
    "t10k-labels-idx1-ubyte": (2049, (10_000,)),
}
_MIRROR_FORMS = (
    "expected a folder, file:///absolute/folder or an http(s):// URL prefix that holds the four MNIST .gz files"
)


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


def _parse_mirror(mirror: str | None) -> Path | str | None:
    """The mirror as a local folder (a Path), an http(s) URL prefix ending in "/" (a str), or None (torchvision's
    internet mirrors). Anything else (a malformed URL, another scheme, a file URL naming another host or a folder
    that does not exist, a missing folder) is a `UserError`: a file URL never falls back to the internet."""
    if not mirror:
        return None
    try:
        url = urllib.parse.urlsplit(mirror)
    except ValueError as e:
        raise UserError(f"mirror {mirror!r} is not a valid URL ({e}); {_MIRROR_FORMS}") from None
    if not url.scheme or len(url.scheme) == 1:  # no scheme (or a Windows drive letter): a folder path
        if "://" in mirror:
            raise UserError(f"mirror {mirror!r} is not a valid URL (no scheme before '://'); {_MIRROR_FORMS}")
        return _mirror_folder(mirror, Path(mirror).expanduser())
    if url.scheme not in ("file", "http", "https"):
        raise UserError(f"mirror {mirror!r} has unsupported scheme {url.scheme!r}; {_MIRROR_FORMS}")
    if any(c.isspace() or not c.isprintable() for c in mirror):
        raise UserError(
            f"mirror {mirror!r} is not a valid URL (it holds a space or control character; write a space as %20); "
            f"{_MIRROR_FORMS}"
        )
    if url.query or url.fragment:
        raise UserError(f"mirror {mirror!r} is not a valid URL prefix (it has a ?query or #fragment); {_MIRROR_FORMS}")
    if url.scheme == "file":
        if url.netloc not in ("", "localhost"):
            raise UserError(
                f"mirror {mirror!r} names the host {url.netloc!r}, but a file URL must name a local folder "
                f"(three slashes: file:///absolute/folder); {_MIRROR_FORMS}"
            )
        if not url.path.startswith("/"):
            raise UserError(f"mirror {mirror!r} does not name an absolute folder; {_MIRROR_FORMS}")
        return _mirror_folder(mirror, Path(urllib.request.url2pathname(url.path)))
    try:
        url.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError as e:
        raise UserError(f"mirror {mirror!r} is not a valid URL ({e}); {_MIRROR_FORMS}") from None
    if not url.hostname:
        raise UserError(f"mirror {mirror!r} is not a valid URL (it names no host); {_MIRROR_FORMS}")
    return mirror.rstrip("/") + "/"


def _mirror_folder(mirror: str, folder: Path) -> Path:
    """`folder`, the local folder that `mirror` names, if it is one."""
    if not folder.is_dir():
        named = f"mirror {mirror!r}" + ("" if str(folder) == mirror else f" (folder {str(folder)!r})")
        raise UserError(f"{named} {'is not a folder' if folder.exists() else 'does not exist'}; {_MIRROR_FORMS}")
    return folder


def _idx_problem(path: Path, magic: int, dims: tuple[int, ...]) -> str | None:
    """What is wrong with the extracted idx file `path`, or None: its size, magic number, dimensions, labels."""
    header = 4 * (1 + len(dims))
    size = path.stat().st_size
    if size != header + math.prod(dims):
        return f"{size:,} bytes, expected {header + math.prod(dims):,}"
    with open(path, "rb") as f:
        got_magic, *got_dims = struct.unpack(f">{1 + len(dims)}i", f.read(header))
        if got_magic != magic:
            return f"magic number {got_magic}, expected {magic}"
        if tuple(got_dims) != dims:
            return f"dimensions {tuple(got_dims)}, expected {dims}"
        if len(dims) == 1 and max(f.read()) > 9:  # labels: at most 60 kB
            return "a label outside 0..9"
    return None


def ensure_raw(root: Path, mirror: str | None) -> Path:
    """Make sure `root/<Class>/raw` holds the dataset's .gz files with the right md5s; return that folder.

    Files already there are verified; missing ones come from `mirror` (see `_parse_mirror`) or, without one, from
    torchvision's internet mirrors. Every failure is a `UserError` naming the file and the fix. Extracted idx files
    that fail `_idx_problem` are deleted, for torchvision to extract them again from the verified .gz files.
    """
    source = _parse_mirror(mirror)  # before anything is created or fetched
    raw = root / _SOURCE.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for filename, md5 in _SOURCE.resources:
        dest = raw / filename
        if dest.exists():
            if _md5(dest) == md5:
                continue
            raise UserError(
                f"{dest} is corrupted (md5 mismatch, expected {md5}); delete it and run again to fetch a fresh copy"
            )
        if isinstance(source, Path):
            src = source / filename
            if not src.is_file():
                raise UserError(f"mirror folder {source} has no {filename}; it must hold the four official .gz files")
            if _md5(src) != md5:
                raise UserError(f"{src} is corrupted (md5 mismatch, expected {md5}); replace it with the official file")
            tmp = dest.with_name(dest.name + ".part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
            continue
        urls = [source] if source else list(_SOURCE.mirrors)
        errors = []
        for base in urls:
            try:
                download_url(base + filename, str(raw), filename=filename, md5=md5)
                break
            except (urllib.error.URLError, http.client.HTTPException, OSError, RuntimeError, ValueError) as e:
                errors.append(f"{base}: {one_line(e)}")
                if dest.exists():
                    dest.unlink()
        else:
            raise UserError(
                f"cannot get {filename} ({'; '.join(errors)}); either put the four official MNIST .gz files in "
                f"{raw}, or point --mirror / MNISTLAB_MIRROR at a folder or URL that holds them"
            )
    for name, (magic, dims) in _IDX.items():
        extracted = raw / name
        if extracted.exists() and _idx_problem(extracted, magic, dims):
            extracted.unlink()  # a damaged extraction: torchvision re-extracts it from the verified .gz
    return raw


def mnist_dataset(train: bool, data_dir=None, mirror=None, dataset: str = "mnist", transform=None):
    """The torchvision dataset, md5-verified, fetched from the mirror if needed."""
    check_dataset(dataset)
    root = default_data_dir(data_dir)
    raw = ensure_raw(root, default_mirror(mirror))
    folder = raw.parent
    try:  # torchvision's parser raises AssertionError, TypeError, KeyError, ... on a malformed idx file
        ds = _SOURCE(str(root), train=train, download=True, transform=transform)
    except (RuntimeError, OSError, ValueError, AssertionError, TypeError, KeyError, IndexError, EOFError) as e:
        raise UserError(f"cannot read {dataset} from {folder}: {one_line(e)}; delete {folder} and run again") from e
    # A last check of what was loaded: ensure_raw checked the files, but torchvision may read a legacy processed/
    split = "train" if train else "t10k"
    images, labels = raw / f"{split}-images-idx3-ubyte", raw / f"{split}-labels-idx1-ubyte"
    n = _IDX[labels.name][1][0]
    if tuple(ds.data.shape) != (n, 28, 28):
        bad = f"{images} is damaged (images of shape {tuple(ds.data.shape)}, expected {(n, 28, 28)})"
    elif tuple(ds.targets.shape) != (n,):
        bad = f"{labels} is damaged ({len(ds.targets)} labels, expected {n})"
    elif ds.targets.min() < 0 or ds.targets.max() > 9:
        bad = f"{labels} is damaged (a label outside 0..9)"
    else:
        return ds
    raise UserError(f"{bad}; delete {folder} and run again")


def load_tensors(train: bool, data_dir=None, mirror=None, dataset: str = "mnist", limit: int | None = None):
    """(images uint8 [N, 28, 28], labels int64 [N]) of the train or test split, the first `limit` if given."""
    ds = mnist_dataset(train, data_dir, mirror, dataset)
    images, labels = ds.data, ds.targets
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels
