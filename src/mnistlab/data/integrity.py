"""Integrity of a dataset's files: each .gz on its md5 or its decompressed content, each extracted idx file's
layout and content."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from mnistlab.data import datasets
from mnistlab.data.datafolder import part
from mnistlab.data.datasets import DatasetSpec, IdxFile
from mnistlab.errors import one_line

_CHUNK = 1 << 20  # bytes read at a time when decompressing
# An extracted file this small is hashed at every load, whatever its stamp says: every label file (10 KB to 2 MB)
# and MNIST's, Fashion-MNIST's and KMNIST's 10,000 test images (7.8 MB), a few ms each. Labels shifted by one with
# the modification time kept (bit rot, `cp -a` of a damaged folder) keep size and mtime, and would be read as
# they are. Larger files (60,000 training images, 47 MB, about 0.1 s to hash) are hashed when their size or
# modification time changed.
REHASH_MAX_BYTES = 8 << 20


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def inflate(gz: Path, limit: int, dest: Path | None = None) -> str:
    """sha256 of what the gzip file `gz` decompresses to, which is written to `dest` (whole or not at all) if given;
    `ValueError` if it does not decompress or gives more than `limit` bytes (no need to inflate a bomb to know it
    is not the file)."""
    h, n = hashlib.sha256(), 0
    tmp = part(dest) if dest is not None else None
    try:
        with gzip.open(gz, "rb") as src, open(tmp, "wb") if tmp else contextlib.nullcontext() as out:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                n += len(chunk)
                if n > limit:
                    raise ValueError(f"it decompresses to more than the official {limit:,} bytes")
                h.update(chunk)
                if out is not None:
                    out.write(chunk)
        if tmp is not None and dest is not None:  # (tmp is set exactly when dest is)
            os.replace(tmp, dest)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"it does not decompress: {one_line(e)}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return h.hexdigest()


def gz_problem(path: Path, spec: DatasetSpec, f: IdxFile, md5: str, trusted: str | None = None) -> str | None:
    """Why the .gz at `path` (md5 `md5`) is not the official `f`, or None: it is when its md5 is the official one
    (or `trusted`: the md5 mnistlab recorded when it last verified this very copy), or when it decompresses to the
    recorded content (a copy some tool or distribution re-compressed: other .gz bytes, the same idx file)."""
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
        # without the sha256 of the content, a re-compressed copy (other md5, perhaps the same images) cannot be
        # told from a damaged one: it is refused
        return (
            f"is not the official file (md5 {md5}, expected {f.md5}); mnistlab has no checksum of the official "
            "decompressed content to accept a re-compressed copy"
        )
    try:
        if inflate(path, spec.idx(f).size) == f.sha256:
            return None
        why = "its decompressed content is not the official one either"
    except ValueError as e:
        why = str(e)
    return f"is corrupted (md5 mismatch, expected {f.md5}; {why})"


def idx_problem(path: Path, spec: DatasetSpec, f: IdxFile) -> str | None:
    """What is wrong with the extracted idx file `path` of `f`, or None: its size, magic number, dimensions,
    labels."""
    magic, dims, itemsize = layout = spec.idx(f)
    size = path.stat().st_size
    if size != layout.size:
        return f"{size:,} bytes, expected {layout.size:,}"
    with open(path, "rb") as fh:
        got_magic, *got_dims = struct.unpack(f">{1 + len(dims)}i", fh.read(4 * (1 + len(dims))))
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


def stamp(path: Path, sha256: str) -> dict:
    """The "extracted" record's entry for the idx file `path` of content `sha256` (mnistlab.data.datafolder)."""
    st = path.stat()
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def same_as_extracted(path: Path, f: IdxFile, stamps: dict) -> bool:
    """Whether `path` still holds what was extracted from the verified .gz; it is hashed when it is small
    (`REHASH_MAX_BYTES`: the labels, the test images) or its size or modification time differ from its stamp, and a
    hash other than the recorded content's (or, without one, the stamp's) means it was edited (pixels zeroed,
    labels shifted). Stamps it when it holds."""
    st = path.stat()
    old = stamps.get(f.extracted, {})
    same_file = old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns
    if same_file and f.sha256 in (None, old.get("sha256")) and st.st_size > REHASH_MAX_BYTES:
        return True
    digest = sha256_of(path)
    expected = f.sha256 or old.get("sha256")
    if expected and digest != expected:
        return False
    stamps[f.extracted] = stamp(path, digest)
    return True
