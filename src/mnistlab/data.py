"""Getting the MNIST-format datasets: the data folder, a mirror or the internet, checksums, and the images and labels
as tensors."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import struct
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np
from torchvision.datasets.utils import download_url

from mnistlab import datasets
from mnistlab.datasets import DatasetSpec, IdxFile, is_folder
from mnistlab.errors import UserError, one_line

DATASET = "mnist"  # the default dataset; `Recipe.dataset` names it in every run folder
# MNIST's training-set pixel mean and std (on 0..1), as the seed normalised
MEAN, STD = datasets.SPECS[DATASET].mean, datasets.SPECS[DATASET].std
_CHUNK = 1 << 20  # bytes read at a time when hashing or decompressing


def check_dataset(name: str) -> None:
    """A `UserError` listing the choices unless `name` is a known dataset or a `folder:PATH` one (checked by
    mnistlab.folders when it is read)."""
    if not is_folder(name):
        datasets.get(name)


def default_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """`data_dir`, else $MNISTLAB_DATA, else ~/.cache/mnistlab."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("MNISTLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mnistlab"


def default_mirror(mirror: str | None = None) -> str | None:
    """`mirror`, else $MNISTLAB_MIRROR, else None (torchvision's internet mirrors)."""
    return mirror or os.environ.get("MNISTLAB_MIRROR") or None


def normalization(dataset: str = DATASET, data_dir=None, mirror=None) -> tuple[float, float]:
    """(mean, std) to normalise `dataset` with: its recorded values, else computed from its training images."""
    spec = datasets.get(dataset)
    if spec.mean is not None and spec.std is not None:
        return spec.mean, spec.std
    return datasets.pixel_stats(load_tensors(True, data_dir, mirror, dataset)[0])


def _digest(path: Path, algorithm: str = "md5") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _mirror_forms(spec: DatasetSpec) -> str:
    also = f" (or {spec.archive.name}, which holds them)" if spec.archive else ""
    return (
        "expected a folder, file:///absolute/folder or an http(s):// URL prefix that holds "
        f"the official {spec.name} .gz files{also}"
    )


def _parse_mirror(mirror: str | None, spec: DatasetSpec) -> Path | str | None:
    """The mirror as a local folder (a Path), an http(s) URL prefix ending in "/" (a str), or None (torchvision's
    internet mirrors). Anything else (a malformed URL, another scheme, a file URL naming another host or a folder
    that does not exist, a missing folder) is a `UserError`: a file URL never falls back to the internet."""
    if not mirror:
        return None
    forms = _mirror_forms(spec)
    try:
        url = urllib.parse.urlsplit(mirror)
    except ValueError as e:
        raise UserError(f"mirror {mirror!r} is not a valid URL ({e}); {forms}") from None
    if not url.scheme or len(url.scheme) == 1:  # no scheme (or a Windows drive letter): a folder path
        if "://" in mirror:
            raise UserError(f"mirror {mirror!r} is not a valid URL (no scheme before '://'); {forms}")
        return _mirror_folder(mirror, Path(mirror).expanduser(), forms)
    if url.scheme not in ("file", "http", "https"):
        raise UserError(f"mirror {mirror!r} has unsupported scheme {url.scheme!r}; {forms}")
    if any(c.isspace() or not c.isprintable() for c in mirror):
        raise UserError(
            f"mirror {mirror!r} is not a valid URL (it holds a space or control character; write a space as %20); "
            f"{forms}"
        )
    if url.query or url.fragment:
        raise UserError(f"mirror {mirror!r} is not a valid URL prefix (it has a ?query or #fragment); {forms}")
    if url.scheme == "file":
        if url.netloc not in ("", "localhost"):
            raise UserError(
                f"mirror {mirror!r} names the host {url.netloc!r}, but a file URL must name a local folder "
                f"(three slashes: file:///absolute/folder); {forms}"
            )
        if not url.path.startswith("/"):
            raise UserError(f"mirror {mirror!r} does not name an absolute folder; {forms}")
        return _mirror_folder(mirror, Path(urllib.request.url2pathname(url.path)), forms)
    try:
        url.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError as e:
        raise UserError(f"mirror {mirror!r} is not a valid URL ({e}); {forms}") from None
    if not url.hostname:
        raise UserError(f"mirror {mirror!r} is not a valid URL (it names no host); {forms}")
    return mirror.rstrip("/") + "/"


def _mirror_folder(mirror: str, folder: Path, forms: str) -> Path:
    """`folder`, the local folder that `mirror` names, if it is one."""
    if not folder.is_dir():
        named = f"mirror {mirror!r}" + ("" if str(folder) == mirror else f" (folder {str(folder)!r})")
        raise UserError(f"{named} {'is not a folder' if folder.exists() else 'does not exist'}; {forms}")
    return folder


# --------------------------------------------------------------------------------------------------------------
# Integrity: a .gz passes on its md5, or on the sha256 of what it decompresses to.


def _content_sha256(path: Path, limit: int) -> str:
    """sha256 of what the gzip file `path` decompresses to; `ValueError` if it does not decompress or gives more
    than `limit` bytes (no need to inflate a bomb to know it is not the file)."""
    h, n = hashlib.sha256(), 0
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                n += len(chunk)
                if n > limit:
                    raise ValueError(f"it decompresses to more than the official {limit:,} bytes")
                h.update(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"it does not decompress: {one_line(e)}") from None
    return h.hexdigest()


def _gz_problem(path: Path, spec: DatasetSpec, f: IdxFile, md5: str, trusted: str | None = None) -> str | None:
    """Why the .gz at `path` (md5 `md5`) is not the official `f`, or None: it is when its md5 is the official one
    (or `trusted`: the md5 mnistlab recorded when it last verified this very copy), or when it decompresses to the
    official content (a copy some tool re-compressed: other .gz bytes, the same idx file)."""
    if md5 == f.md5 or (trusted is not None and md5 == trusted):
        return None
    other = next((f"{s.name}'s {g.name}" for s in datasets.SPECS.values() for g in s.files if g.md5 == md5), None)
    if other:  # e.g. MNISTLAB_MIRROR, a folder of MNIST, used for Fashion-MNIST (the same file names)
        return f"is {other}, not the official {spec.name} file (a mirror folder holds one dataset's files)"
    if f.sha256 is None:
        if f.md5 is None:
            return (
                f"cannot be checked: mnistlab knows no checksum of it, only the md5 of the official "
                f"{spec.archive.name if spec.archive else 'archive'} that holds it"
            )
        # mnistlab never had these official files to hash their content, so a re-compressed copy (other md5,
        # possibly the same images) cannot be told from a damaged one: it is refused
        return (
            f"is not the official file (md5 {md5}, expected {f.md5}); mnistlab has no checksum of the official "
            "decompressed content to accept a re-compressed copy"
        )
    try:
        if _content_sha256(path, spec.idx(f).size) == f.sha256:
            return None
        why = "its decompressed content is not the official one either"
    except ValueError as e:
        why = str(e)
    return f"is corrupted (md5 mismatch, expected {f.md5}; {why})"


# What ensure_raw verified, per file: {"md5": of the .gz there, "size": its bytes, "of": what it was checked
# against}. It lets a copy that passed on its content (or came out of a verified archive) pass again on its md5
# alone, and `is_present` answer without hashing. A file that differs from it is checked in full again.


def _marker(raw: Path, spec: DatasetSpec) -> Path:
    return raw / f"mnistlab-verified-{spec.name}.json"


def _checked_against(spec: DatasetSpec, f: IdxFile) -> str:
    return f"{f.md5}/{f.sha256}/{spec.archive.md5 if spec.archive else None}"


def _read_marker(raw: Path, spec: DatasetSpec) -> dict[str, dict]:
    try:
        files = json.loads(_marker(raw, spec).read_text())["files"]
        return {
            f.name: files[f.name]
            for f in spec.files
            if isinstance(files.get(f.name), dict) and files[f.name].get("of") == _checked_against(spec, f)
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_marker(raw: Path, spec: DatasetSpec, files: dict[str, dict]) -> None:
    tmp = raw / f"{_marker(raw, spec).name}.{os.getpid()}.part"
    tmp.write_text(json.dumps({"dataset": spec.name, "files": files}, indent=1, sort_keys=True))
    os.replace(tmp, _marker(raw, spec))


def is_present(root: Path, spec: DatasetSpec) -> bool:
    """Whether every official file of `spec` is in the data folder `root` with the size it had when ensure_raw
    last verified it (its marker); cheap: nothing is hashed."""
    raw = Path(root) / spec.folder
    known = _read_marker(raw, spec)
    try:
        return all(f.name in known and (raw / f.name).stat().st_size == known[f.name]["size"] for f in spec.files)
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------------------
# Fetching: a mirror folder, an http(s) mirror or torchvision's internet mirrors; one file or the archive.


def _part(dest: Path) -> Path:
    return dest.with_name(f"{dest.name}.{os.getpid()}.part")


def _clear_stale_parts(raw: Path) -> None:
    """Delete the `.part` files (`_part`) of processes that are gone: one killed while fetching or extracting left
    its half-written copy behind. Those of running processes (a concurrent fill) are theirs to finish."""
    for part in raw.glob("*.part"):
        m = re.fullmatch(r".*\.(\d+)\.part", part.name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            part.unlink(missing_ok=True)
        except (PermissionError, OverflowError, OSError):  # another user's process, or not a pid at all
            pass


def _copy(src: Path, dest: Path) -> None:
    tmp = _part(dest)
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def _from_archive(zip_path: Path, spec: DatasetSpec, files: list[IdxFile], raw: Path, fix: str) -> dict[str, str]:
    """Take `files` out of the archive `zip_path` into `raw`, after checking the archive's md5; {name: md5}."""
    archive = spec.archive
    md5 = _digest(zip_path)
    if md5 != archive.md5:
        raise UserError(f"{spec.name}: {zip_path} is corrupted (md5 mismatch, expected {archive.md5}); {fix}")
    got, f = {}, files[0]
    try:
        with zipfile.ZipFile(zip_path) as z:
            for f in files:
                tmp = _part(raw / f.name)
                with z.open(archive.folder + f.name) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                os.replace(tmp, raw / f.name)
                got[f.name] = _digest(raw / f.name)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"{spec.name}: cannot take {f.name} out of {zip_path}: {one_line(e)}; {fix}") from None
    return got


def _download(spec: DatasetSpec, name: str, raw: Path, bases, check) -> None:
    """Fetch `name` from the first URL prefix in `bases` that gives a file passing `check` (None or why not)."""
    dest, tmp = raw / name, _part(raw / name)
    errors = []
    for base in bases:
        tmp.unlink(missing_ok=True)  # download_url would keep a stale one
        try:
            download_url(base + name, str(raw), filename=tmp.name)
            problem = check(tmp)
            if problem is None:
                os.replace(tmp, dest)
                return
            errors.append(f"{base}: {problem}")
        except (urllib.error.URLError, http.client.HTTPException, OSError, RuntimeError, ValueError) as e:
            errors.append(f"{base}: {one_line(e)}")
        tmp.unlink(missing_ok=True)
    raise UserError(
        f"{spec.name}: cannot get {name} ({'; '.join(errors)}); either put the official {spec.name} files in "
        f"{raw}, or point --mirror / MNISTLAB_MIRROR at a folder or URL that holds them"
    )


def _fetch(spec: DatasetSpec, raw: Path, source: Path | str | None, missing: list[IdxFile]) -> dict[str, str]:
    """Get the `missing` files into `raw` from `source`, verified; {name: md5}."""
    archive = spec.archive
    if archive is not None and (raw / archive.name).is_file():  # fetched before (or by torchvision)
        return _from_archive(raw / archive.name, spec, missing, raw, "delete it and run again to fetch a fresh copy")
    if isinstance(source, Path):
        if archive is not None and (source / archive.name).is_file():
            return _from_archive(source / archive.name, spec, missing, raw, "replace it with the official file")
        got = {}
        for f in missing:
            # EMNIST's files may lie in the mirror as they come out of the archive, in its gzip/ folder
            found = [p for p in (source / f.name, source / (archive.folder if archive else "") / f.name) if p.is_file()]
            if not found:
                also = f" (nor {archive.name})" if archive else ""
                raise UserError(
                    f"{spec.name}: mirror folder {source} has no {f.name}{also}; it must hold the dataset's official "
                    "files"
                )
            md5 = _digest(found[0])
            problem = _gz_problem(found[0], spec, f, md5)
            if problem:
                unknown = archive is not None and f.md5 is None and f.sha256 is None
                fix = (
                    f"put the official {archive.name} in the mirror instead"
                    if unknown
                    else "replace it with the official file"
                )
                raise UserError(f"{spec.name}: {found[0]} {problem}; {fix}")
            _copy(found[0], raw / f.name)
            got[f.name] = md5
        return got
    bases = [source] if source else list(spec.urls)
    if archive is not None:

        def archive_ok(p: Path) -> str | None:
            md5 = _digest(p)
            return None if md5 == archive.md5 else f"md5 mismatch (got {md5}, expected {archive.md5})"

        _download(spec, archive.name, raw, bases, archive_ok)
        return _from_archive(raw / archive.name, spec, missing, raw, "delete it and run again to fetch a fresh copy")
    got = {}
    for f in missing:
        _download(spec, f.name, raw, bases, lambda p, f=f: _gz_problem(p, spec, f, _digest(p)))
        got[f.name] = _digest(raw / f.name)
    return got


# --------------------------------------------------------------------------------------------------------------
# Extraction: each verified .gz into the idx file torchvision reads, its layout checked. Extracted files are
# derived data, and their verified .gz is the truth: one that does not match its layout (size, header, a label out
# of range) is deleted and extracted again before torchvision reads it.


def _idx_problem(path: Path, spec: DatasetSpec, f: IdxFile) -> str | None:
    """What is wrong with the extracted idx file `path` of `f`, or None: its size, magic number, dimensions,
    labels."""
    magic, dims, itemsize = layout = spec.idx(f)
    size = path.stat().st_size
    if size != layout.size:
        return f"{size:,} bytes, expected {layout.size:,}"
    header = 4 * (1 + len(dims))
    with open(path, "rb") as fh:
        got_magic, *got_dims = struct.unpack(f">{1 + len(dims)}i", fh.read(header))
        if got_magic != magic:
            return f"magic number {got_magic}, expected {magic}"
        if tuple(got_dims) != dims:
            return f"dimensions {tuple(got_dims)}, expected {dims}"
        if f.labels:  # at most a few MB
            values = np.frombuffer(fh.read(), dtype=">i4" if itemsize == 4 else np.uint8)
            labels = values[:: dims[1]] if len(dims) == 2 else values  # QMNIST's rows: the class first
            lo, hi = spec.label_offset, spec.label_offset + spec.num_classes - 1
            if len(labels) and (int(labels.min()) < lo or int(labels.max()) > hi):
                return f"a label outside {lo}..{hi}"
    return None


def _extract(gz: Path, dest: Path, limit: int) -> None:
    tmp = _part(dest)
    n = 0
    try:
        with gzip.open(gz, "rb") as src, open(tmp, "wb") as out:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                n += len(chunk)
                if n > limit:
                    break  # not the layout expected; _idx_problem says so
                out.write(chunk)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_raw(root: Path, mirror: str | None, dataset: str = DATASET) -> Path:
    """Make sure `root/<Class>/raw` holds the dataset's verified .gz files and their extracted idx files; return
    that folder.

    Files already there are verified (`_gz_problem`); missing ones come from `mirror` (see `_parse_mirror`) or,
    without one, from torchvision's internet mirrors: the files one by one, or the archive that holds them
    (EMNIST). Every failure is a `UserError` naming the dataset, the file and the fix. Extracted idx files that
    fail `_idx_problem` are extracted again from the verified .gz files.
    """
    spec = datasets.get(dataset)
    source = _parse_mirror(mirror, spec)  # before anything is created or fetched
    raw = root / spec.folder
    raw.mkdir(parents=True, exist_ok=True)
    _clear_stale_parts(raw)
    known = _read_marker(raw, spec)
    md5s, missing = {}, []
    for f in spec.files:
        dest = raw / f.name
        if not dest.exists():
            missing.append(f)
            continue
        md5 = _digest(dest)
        problem = _gz_problem(dest, spec, f, md5, known.get(f.name, {}).get("md5"))
        if problem:
            raise UserError(f"{spec.name}: {dest} {problem}; delete it and run again to fetch a fresh copy")
        md5s[f.name] = md5
    if missing:
        md5s.update(_fetch(spec, raw, source, missing))
    verified = {
        f.name: {"md5": md5s[f.name], "size": (raw / f.name).stat().st_size, "of": _checked_against(spec, f)}
        for f in spec.files
    }
    if verified != known:
        _write_marker(raw, spec, verified)
    stamps = _read_stamps(raw, spec)
    for f in spec.files:
        extracted, limit = raw / f.extracted, spec.idx(f).size
        if extracted.exists() and (_idx_problem(extracted, spec, f) or not _same_as_extracted(extracted, f, stamps)):
            extracted.unlink()  # a damaged or edited extraction: extracted again below from the verified .gz
        if not extracted.exists():
            _extract(raw / f.name, extracted, limit)
            problem = _idx_problem(extracted, spec, f)
            if problem:
                extracted.unlink()
                raise UserError(
                    f"{spec.name}: {f.name} passed its checksum but does not hold the expected data ({problem}); "
                    f"mnistlab's record of {spec.name} does not fit this file"
                )
            stamps.pop(f.extracted, None)
            _same_as_extracted(extracted, f, stamps)  # hashed once, stamped
    _write_stamps(raw, spec, stamps)
    return raw


# An extracted idx file is hashed (sha256) when it is made, or when its size or modification time differ from its
# stamp; a hash that differs from the official decompressed sha256 (or, without one, from the stamp's) means the
# file was edited after extraction (pixels zeroed, labels shifted), and it is extracted again.


def _stamps_path(raw: Path, spec: DatasetSpec) -> Path:
    return raw / f"mnistlab-extracted-{spec.name}.json"


def _read_stamps(raw: Path, spec: DatasetSpec) -> dict:
    try:
        stamps = json.loads(_stamps_path(raw, spec).read_text())
        return stamps if isinstance(stamps, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_stamps(raw: Path, spec: DatasetSpec, stamps: dict) -> None:
    if stamps != _read_stamps(raw, spec):
        tmp = _part(_stamps_path(raw, spec))
        tmp.write_text(json.dumps(stamps, indent=1, sort_keys=True))
        os.replace(tmp, _stamps_path(raw, spec))


def _same_as_extracted(path: Path, f: IdxFile, stamps: dict) -> bool:
    """Whether `path` still holds what was extracted from the verified .gz (see above); stamps it when it does."""
    st = path.stat()
    stamp = stamps.get(f.extracted)
    if isinstance(stamp, dict) and stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns:
        return True
    digest = _digest(path, "sha256")
    expected = f.sha256 or (stamp.get("sha256") if isinstance(stamp, dict) else None)
    if expected and digest != expected:
        return False
    stamps[f.extracted] = {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return True


# --------------------------------------------------------------------------------------------------------------
# Reading: torchvision's dataset, checked, with images upright and labels from 0.


def _loaded_problem(ds, spec: DatasetSpec, train: bool, raw: Path) -> str | None:
    """What is wrong with what torchvision loaded (it may read a legacy processed/ copy), or None."""
    images, labels = raw / spec.file(train, False).extracted, raw / spec.file(train, True).extracted
    n = spec.size(train)
    shape = (n, spec.label_columns) if spec.label_columns else (n,)
    lo, hi = spec.label_offset, spec.label_offset + spec.num_classes - 1
    if tuple(ds.data.shape) != (n, 28, 28):
        return f"{images} is damaged (images of shape {tuple(ds.data.shape)}, expected {(n, 28, 28)})"
    if tuple(ds.targets.shape) != shape:
        return f"{labels} is damaged ({len(ds.targets)} labels, expected {n})"
    classes = ds.targets[:, 0] if spec.label_columns else ds.targets
    if n and (classes.min() < lo or classes.max() > hi):
        return f"{labels} is damaged (a label outside {lo}..{hi})"
    return None


def mnist_dataset(train: bool, data_dir=None, mirror=None, dataset: str = DATASET, transform=None):
    """The torchvision dataset, verified, fetched from the mirror if needed: items are (PIL image upright, class
    0..num_classes-1). `.data` is uint8 [N, 28, 28] upright; `.targets` the classes [N], except QMNIST's
    [N, 8] rows as torchvision keeps them (the class in column 0)."""
    spec = datasets.get(dataset)
    root = default_data_dir(data_dir)
    raw = ensure_raw(root, default_mirror(mirror), dataset)
    folder = raw.parent
    legacy = folder / "processed"
    if (legacy / "training.pt").is_file() and (legacy / "test.pt").is_file():  # torchvision would unpickle these
        raise UserError(
            f"{legacy} holds torchvision's old cache (training.pt, test.pt): pickles, which mnistlab does not load; "
            f"delete {legacy} and run again"
        )
    try:  # torchvision's parser raises AssertionError, TypeError, KeyError, ... on a malformed idx file
        ds = spec.torchvision(root, train, transform)
    except (RuntimeError, OSError, ValueError, AssertionError, TypeError, KeyError, IndexError, EOFError) as e:
        raise UserError(f"cannot read {dataset} from {folder}: {one_line(e)}; delete {folder} and run again") from e
    bad = _loaded_problem(ds, spec, train, raw)
    if bad:
        raise UserError(f"{spec.name}: {bad}; delete {folder} and run again")
    if spec.transposed:  # EMNIST stores each image column by column
        ds.data = ds.data.transpose(1, 2).contiguous()
    if spec.label_offset:
        ds.targets = ds.targets - spec.label_offset
    ds.classes = list(spec.classes)
    return ds


def load_tensors(train: bool, data_dir=None, mirror=None, dataset: str = DATASET, limit: int | None = None):
    """(images uint8 [N, 28, 28] upright, labels int64 [N] in 0..num_classes-1) of the train or test split, the
    first `limit` if given."""
    ds = mnist_dataset(train, data_dir, mirror, dataset)
    images, labels = ds.data, ds.targets
    if labels.ndim == 2:  # QMNIST: a row of 8 numbers per image, the class first
        labels = labels[:, 0]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels.contiguous()
