"""mnistlab.data.integrity: a dataset's .gz files checked on their md5 or content, extracted idx files on their
layout."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from pathlib import Path

import pytest

from mnistlab.data import datasets
from mnistlab.data.integrity import gz_problem, idx_problem, inflate, same_as_extracted, sha256_of, stamp

SPEC = datasets.get("mnist")
LABELS = SPEC.file(False, True)  # t10k-labels-idx1-ubyte.gz: 10 KB


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def labels_file(path: Path, labels: bytes) -> Path:
    path.write_bytes(struct.pack(">ii", 2049, len(labels)) + labels)
    return path


@pytest.fixture
def official(tmp_path) -> Path:
    mirror = Path(os.environ.get("MNISTLAB_MIRROR", "/nonexistent")) / LABELS.name
    if not mirror.is_file():
        pytest.skip("needs $MNISTLAB_MIRROR holding MNIST's official .gz files")
    return mirror


def test_inflate_hashes_writes_and_refuses_bombs(tmp_path):
    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress(b"a" * 1000))
    assert inflate(gz, 1000, tmp_path / "x") == hashlib.sha256(b"a" * 1000).hexdigest()
    assert (tmp_path / "x").read_bytes() == b"a" * 1000 and not list(tmp_path.glob("*.part"))
    with pytest.raises(ValueError, match="more than the official 999 bytes"):
        inflate(gz, 999, tmp_path / "y")
    assert not (tmp_path / "y").exists() and not list(tmp_path.glob("*.part"))
    gz.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="does not decompress"):
        inflate(gz, 1000)


def test_gz_problem_accepts_the_official_file_and_a_recompressed_copy(official, tmp_path):
    assert gz_problem(official, SPEC, LABELS, md5(official)) is None
    again = tmp_path / LABELS.name
    again.write_bytes(gzip.compress(gzip.decompress(official.read_bytes()), compresslevel=1))
    assert md5(again) != LABELS.md5 and gz_problem(again, SPEC, LABELS, md5(again)) is None


def test_gz_problem_refuses_other_content_and_another_files_md5(tmp_path):
    bad = tmp_path / LABELS.name
    bad.write_bytes(gzip.compress(struct.pack(">ii", 2049, 10000) + bytes(10000)))
    why = gz_problem(bad, SPEC, LABELS, md5(bad))
    assert why.startswith("is corrupted (md5 mismatch") and "not the official one either" in why
    assert gz_problem(bad, SPEC, LABELS, md5(bad), trusted=md5(bad)) is None  # the copy mnistlab verified before
    other = SPEC.file(True, True)
    assert "is mnist's train-labels-idx1-ubyte.gz" in gz_problem(bad, SPEC, LABELS, other.md5)


def test_idx_problem_checks_size_magic_and_labels(tmp_path):
    assert idx_problem(labels_file(tmp_path / "ok", bytes(range(10)) * 1000), SPEC, LABELS) is None
    assert "a label outside 0..9" == idx_problem(labels_file(tmp_path / "big", bytes([12]) * 10000), SPEC, LABELS)
    assert "expected 10,008" in idx_problem(labels_file(tmp_path / "short", bytes(10)), SPEC, LABELS)
    wrong = tmp_path / "magic"
    wrong.write_bytes(struct.pack(">ii", 2051, 10000) + bytes(10000))
    assert idx_problem(wrong, SPEC, LABELS) == "magic number 2051, expected 2049"


def test_same_as_extracted_notices_an_edited_file(tmp_path):
    path = labels_file(tmp_path / LABELS.extracted, bytes(10000))
    stamps = {LABELS.extracted: stamp(path, sha256_of(path))}
    unknown = datasets.IdxFile(LABELS.name, False, True, LABELS.md5)  # no recorded content: the stamp's hash counts
    assert same_as_extracted(path, unknown, stamps)
    labels_file(path, bytes([1]) + bytes(9999))
    os.utime(path, ns=(1, 1))
    assert not same_as_extracted(path, unknown, stamps)
    assert not same_as_extracted(path, LABELS, {})  # not the official content
