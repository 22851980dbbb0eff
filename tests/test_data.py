import hashlib
import shutil

import pytest
import torch
from torchvision import datasets

from mnistlab import data
from mnistlab.errors import UserError


def _copy_mirror(mirror, dest):
    dest.mkdir(parents=True, exist_ok=True)
    for f in mirror.iterdir():
        shutil.copyfile(f, dest / f.name)
    return dest


def test_tensors_from_mirror(data_dir):
    x, y = data.load_tensors(False, data_dir, limit=100)
    assert x.shape == (100, 28, 28) and x.dtype == torch.uint8
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    xtr, ytr = data.load_tensors(True, data_dir)
    assert xtr.shape == (60_000, 28, 28) and torch.bincount(ytr).min() > 5000


def test_corrupted_mirror_file_is_named(tmp_path, mirror):
    bad = _copy_mirror(mirror, tmp_path / "mirror")
    with open(bad / "t10k-labels-idx1-ubyte.gz", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte.gz is corrupted \(md5 mismatch"):
        data.load_tensors(False, tmp_path / "data", str(bad))


def test_mirror_missing_a_file(tmp_path, mirror):
    partial = _copy_mirror(mirror, tmp_path / "mirror")
    (partial / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(UserError, match="has no train-images-idx3-ubyte.gz"):
        data.load_tensors(True, tmp_path / "data", str(partial))


def test_truncated_download_in_data_dir_is_named(tmp_path, mirror):
    d = tmp_path / "data"
    data.load_tensors(False, d, str(mirror))
    gz = d / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:1000])
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte.gz is corrupted.*delete it"):
        data.load_tensors(False, d, str(mirror))


def test_truncated_extraction_is_redone(tmp_path, mirror):
    d = tmp_path / "data"
    x0, _ = data.load_tensors(False, d, str(mirror))
    raw = d / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    raw.write_bytes(raw.read_bytes()[:5000])
    x1, _ = data.load_tensors(False, d, str(mirror))
    assert torch.equal(x0, x1)


def test_file_url_mirror(tmp_path, mirror):
    x, _ = data.load_tensors(False, tmp_path / "data", mirror.resolve().as_uri(), limit=5)
    assert x.shape == (5, 28, 28)
    md5 = hashlib.md5((tmp_path / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    assert md5 == dict(datasets.MNIST.resources)["t10k-labels-idx1-ubyte.gz"]
