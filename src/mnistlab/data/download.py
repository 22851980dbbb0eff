"""Getting the MNIST-format datasets into the data folder (from a mirror or the internet), verified
(mnistlab.data.integrity), and reading their images and labels as tensors."""

from __future__ import annotations

import http.client
import shutil
import sys
import urllib.error
import zipfile
import zlib
from pathlib import Path

from torchvision.datasets.utils import calculate_md5, check_integrity, download_url

from mnistlab.data import datasets, integrity
from mnistlab.data.datafolder import clear_stale_parts, default_data_dir, part, read_record, write_record
from mnistlab.data.datasets import DEFAULT, DatasetSpec, IdxFile, is_folder
from mnistlab.data.mirrors import default_mirror, parse_mirror
from mnistlab.errors import UserError, one_line

_DELETE = "delete it and run again to fetch a fresh copy"  # the fix for a bad file in the data folder
_REPLACE = "replace it with the official file"  # ... and in a mirror folder


def check_dataset(name: str) -> None:
    """A `UserError` listing the choices unless `name` is a known dataset or a `folder:PATH` one (checked by
    mnistlab.data.folders when it is read)."""
    if not is_folder(name):
        datasets.get(name)


# --------------------------------------------------------------------------------------------------------------
# Fetching: a mirror folder, an http(s) mirror or torchvision's internet mirrors; one file or the archive.


def _verified_md5(path: Path, spec: DatasetSpec, f: IdxFile, fix: str, trusted: str | None = None) -> str:
    """The md5 of the .gz at `path`, if it is the official `f` (`integrity.gz_problem`); else a `UserError`."""
    md5 = calculate_md5(str(path))
    problem = integrity.gz_problem(path, spec, f, md5, trusted)
    if problem:
        raise UserError(f"{spec.name}: {path} {problem}; {fix}")
    return md5


def _from_archive(zip_path: Path, spec: DatasetSpec, files: list[IdxFile], raw: Path, fix: str) -> dict[str, str]:
    """Take `files` out of the archive `zip_path` into `raw`, after checking the archive's md5; {name: md5}."""
    archive = spec.archive
    assert archive is not None  # called for datasets that come in an archive only
    if not check_integrity(str(zip_path), archive.md5):
        raise UserError(f"{spec.name}: {zip_path} is corrupted (md5 mismatch, expected {archive.md5}); {fix}")
    got, f = {}, files[0]
    try:
        with zipfile.ZipFile(zip_path) as z:
            for f in files:
                with z.open(archive.folder + f.name) as src, open(part(raw / f.name), "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                part(raw / f.name).replace(raw / f.name)
                got[f.name] = calculate_md5(str(raw / f.name))
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error) as e:
        raise UserError(f"{spec.name}: cannot take {f.name} out of {zip_path}: {one_line(e)}; {fix}") from None
    return got


def _from_folder(spec: DatasetSpec, source: Path, f: IdxFile, raw: Path) -> str:
    """Copy `f` from the mirror folder `source` into `raw`, verified; its md5."""
    archive = spec.archive
    # EMNIST's files may lie in the mirror as they come out of the archive, in its gzip/ folder
    found = [p for p in (source / f.name, source / (archive.folder if archive else "") / f.name) if p.is_file()]
    if not found:
        also = f" (nor {archive.name})" if archive else ""
        raise UserError(
            f"{spec.name}: mirror folder {source} has no {f.name}{also}; it must hold the dataset's official files"
        )
    unknown = f.md5 is None and f.sha256 is None  # no checksum of its own (EMNIST): only its archive can vouch
    fix = f"put the official {archive.name} in the mirror instead" if archive is not None and unknown else _REPLACE
    md5 = _verified_md5(found[0], spec, f, fix)
    shutil.copyfile(found[0], part(raw / f.name))
    part(raw / f.name).replace(raw / f.name)
    return md5


def _download(spec: DatasetSpec, name: str, raw: Path, bases, check) -> None:
    """Fetch `name` from the first URL prefix in `bases` that gives a file passing `check` (None or why not)."""
    dest, tmp = raw / name, part(raw / name)
    errors = []
    for base in bases:
        tmp.unlink(missing_ok=True)  # download_url would keep a stale one
        try:
            download_url(base + name, str(raw), filename=tmp.name)
            problem = check(tmp)
            if problem is None:
                tmp.replace(dest)
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
        return _from_archive(raw / archive.name, spec, missing, raw, _DELETE)
    if isinstance(source, Path):
        if archive is not None and (source / archive.name).is_file():
            return _from_archive(source / archive.name, spec, missing, raw, _REPLACE)
        return {f.name: _from_folder(spec, source, f, raw) for f in missing}
    bases = [source] if source else list(spec.urls)
    if archive is not None:
        wrong = f"md5 mismatch, expected {archive.md5}"
        _download(spec, archive.name, raw, bases, lambda p: None if check_integrity(str(p), archive.md5) else wrong)
        return _from_archive(raw / archive.name, spec, missing, raw, _DELETE)
    for f in missing:
        _download(spec, f.name, raw, bases, lambda p, f=f: integrity.gz_problem(p, spec, f, calculate_md5(str(p))))
    return {f.name: calculate_md5(str(raw / f.name)) for f in missing}


# --------------------------------------------------------------------------------------------------------------
# The data folder filled: verified .gz files, and the idx files torchvision reads extracted from them. Extracted
# files are derived data and their verified .gz the truth: one that does not match its layout or its recorded
# content (`integrity.same_as_extracted`) is extracted again before torchvision reads it.


def _extract(raw: Path, spec: DatasetSpec, f: IdxFile) -> dict:
    """Extract the verified .gz of `f` in `raw`, its layout and content checked; its "extracted" record entry."""
    dest = raw / f.extracted
    try:
        digest = integrity.inflate(raw / f.name, spec.idx(f).size, dest)
        problem = integrity.idx_problem(dest, spec, f)
        if problem is None and f.sha256 is not None and digest != f.sha256:
            problem = f"content sha256 {digest}, expected {f.sha256}"
    except ValueError as e:
        problem = str(e)
    if problem:
        dest.unlink(missing_ok=True)
        raise UserError(
            f"{spec.name}: {f.name} passed its checksum but does not hold the expected data ({problem}); "
            f"mnistlab's record of {spec.name} does not fit this file"
        )
    return integrity.stamp(dest, digest)


def ensure_raw(root: Path, mirror: str | None, dataset: str = DEFAULT) -> Path:
    """Make sure `root/<Class>/raw` holds the dataset's verified .gz files and their extracted idx files; return
    that folder.

    Files already there are verified (`integrity.gz_problem`); missing ones come from `mirror` (see
    `mirrors.parse_mirror`) or, without one, from torchvision's internet mirrors: the files one by one, or the archive
    that holds them (EMNIST). Every failure is a `UserError` naming the dataset, the file and the fix.
    """
    spec = datasets.get(dataset)
    also = f" (or {spec.archive.name}, which holds them)" if spec.archive else ""
    source = parse_mirror(mirror, f"the official {spec.name} .gz files{also}")  # before anything is created
    raw = root / spec.folder
    raw.mkdir(parents=True, exist_ok=True)
    clear_stale_parts(raw)
    known = spec.verified(raw)
    md5s = {
        f.name: _verified_md5(raw / f.name, spec, f, _DELETE, known.get(f.name, {}).get("md5"))
        for f in spec.files
        if (raw / f.name).exists()
    }
    missing = [f for f in spec.files if f.name not in md5s]
    if missing:
        md5s.update(_fetch(spec, raw, source, missing))
    verified = {
        f.name: {"md5": md5s[f.name], "size": (raw / f.name).stat().st_size, "of": spec.checksums(f)}
        for f in spec.files
    }
    write_record(raw, "verified", spec.name, verified)
    stamps = read_record(raw, "extracted", spec.name)
    for f in spec.files:
        extracted = raw / f.extracted
        if extracted.exists() and (
            integrity.idx_problem(extracted, spec, f) or not integrity.same_as_extracted(extracted, f, stamps)
        ):
            extracted.unlink()  # a damaged or edited extraction: extracted again from the verified .gz
        if not extracted.exists():
            stamps[f.extracted] = _extract(raw, spec, f)
    write_record(raw, "extracted", spec.name, stamps)
    return raw


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


def _say_if_unverified(spec: DatasetSpec, train: bool, raw: Path) -> None:
    """One line on stderr when mnistlab records no content sha256 of the split's files (KMNIST, EMNIST, QMNIST)."""
    if any(f.sha256 is None for f in spec.files if f.train == train):
        print(
            f"mnistlab: note: {spec.name}'s {'training' if train else 'test'} files in {raw} are unverified: mnistlab "
            "records no sha256 of their content, so only the md5 of their .gz (or of its archive) and their idx "
            "headers, dimensions and counts were checked",
            file=sys.stderr,
        )


def mnist_dataset(train: bool, data_dir=None, mirror=None, dataset: str = DEFAULT, transform=None):
    """The torchvision dataset, verified, fetched from the mirror if needed: items are (PIL image upright, class
    0..num_classes-1). `.data` is uint8 [N, 28, 28] upright; `.targets` the classes [N], except QMNIST's
    [N, 8] rows as torchvision keeps them (the class in column 0)."""
    spec = datasets.get(dataset)
    root = default_data_dir(data_dir)
    raw = ensure_raw(root, default_mirror(mirror), dataset)
    folder, legacy = raw.parent, raw.parent / "processed"
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
    _say_if_unverified(spec, train, raw)
    if spec.transposed:  # EMNIST stores each image column by column
        ds.data = ds.data.transpose(1, 2).contiguous()
    if spec.label_offset:
        ds.targets = ds.targets - spec.label_offset
    ds.classes = list(spec.classes)
    return ds


def load_tensors(train: bool, data_dir=None, mirror=None, dataset: str = DEFAULT, limit: int | None = None):
    """(images uint8 [N, 28, 28] upright, labels int64 [N] in 0..num_classes-1) of the train or test split, the
    first `limit` if given."""
    ds = mnist_dataset(train, data_dir, mirror, dataset)
    images, labels = ds.data, ds.targets
    if labels.ndim == 2:  # QMNIST: a row of 8 numbers per image, the class first
        labels = labels[:, 0]
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels.contiguous()
