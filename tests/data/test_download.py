import hashlib
import shutil
import struct

import pytest
import torch
from conftest import one_line_error, run_cli
from torchvision import datasets

from mnistlab.data import download as data
from mnistlab.data import integrity
from mnistlab.errors import UserError

T10K_FIRST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def _copy_mirror(mirror, dest):
    """Copy the four .gz files of `mirror` (not the idx files extracted next to them) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in mirror.glob("*.gz"):
        shutil.copyfile(f, dest / f.name)
    return dest


def _no_download(*args, **kwargs):
    raise AssertionError(f"tried to download {args}")


def _patch(path, offset, new):
    """Overwrite bytes of `path` at `offset`, keeping its size."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(new)


def test_tensors_from_mirror(data_dir):
    x, y = data.load_tensors(False, data_dir, limit=100)
    assert x.shape == (100, 28, 28) and x.dtype == torch.uint8
    assert y[:10].tolist() == T10K_FIRST_LABELS
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


def test_edited_extraction_of_the_same_size_is_redone(tmp_path, mirror):
    """Pixels zeroed in the extracted file, header and size kept (issue 19): its sha256 no longer matches the
    official decompressed one, so it is extracted again; an untouched file is not hashed again (its stamp)."""
    d = tmp_path / "data"
    x0, y0 = data.load_tensors(False, d, str(mirror))
    raw = d / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    blob = raw.read_bytes()
    raw.write_bytes(blob[:16] + bytes(len(blob) - 16))
    x1, y1 = data.load_tensors(False, d, str(mirror))
    assert torch.equal(x0, x1) and torch.equal(y0, y1) and raw.read_bytes() == blob
    stamps = d / "MNIST" / "raw" / "mnistlab-extracted-mnist.json"
    assert "t10k-images-idx3-ubyte" in stamps.read_text()


def test_file_url_mirror(tmp_path, mirror):
    x, _ = data.load_tensors(False, tmp_path / "data", mirror.resolve().as_uri(), limit=5)
    assert x.shape == (5, 28, 28)
    md5 = hashlib.md5((tmp_path / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").read_bytes()).hexdigest()
    assert md5 == dict(datasets.MNIST.resources)["t10k-labels-idx1-ubyte.gz"]


MISSING_FOLDER = object()  # stands for a folder under tmp_path that does not exist


@pytest.mark.parametrize(
    "bad,reason",
    [
        pytest.param("http://[::1", "Invalid IPv6 URL", id="unclosed-ipv6-host"),
        pytest.param("://", "no scheme", id="no-scheme"),
        pytest.param("http://exa mple.com/mnist/", "write a space as %20", id="space-in-url"),
        pytest.param("ftp://host/x", "unsupported scheme 'ftp'", id="ftp"),
        pytest.param("file://otherhost/x", "names the host 'otherhost'", id="file-url-remote-host"),
        pytest.param("file:///nonexistent/folder", "does not exist", id="file-url-missing-folder"),
        pytest.param("file://", "does not name an absolute folder", id="file-url-no-folder"),
        pytest.param(MISSING_FOLDER, "does not exist", id="missing-folder"),
    ],
)
def test_bad_mirror_is_refused_in_one_line(bad, reason, tmp_path, monkeypatch):
    bad = str(tmp_path / "no-such-folder") if bad is MISSING_FOLDER else bad
    monkeypatch.setattr(data, "download_url", _no_download)  # never the internet
    d = tmp_path / "data"
    with pytest.raises(UserError) as e:
        data.load_tensors(False, d, bad)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and repr(bad) in msg and reason in msg, msg
    assert "expected a folder, file:///absolute/folder or an http(s):// URL" in msg, msg
    assert not d.exists()  # refused before anything was created or fetched


def test_bad_mirror_on_the_command_line_is_one_line(tmp_path, env):
    r = run_cli("train", "--mirror", "http://[::1", "--data-dir", tmp_path / "data", "--out", tmp_path / "r", env=env)
    assert "'http://[::1' is not a valid URL" in one_line_error(r)
    assert not (tmp_path / "data").exists() and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(lambda folder: folder.as_uri(), id="as_uri"),
        pytest.param(lambda folder: "file:" + folder.as_uri().removeprefix("file://"), id="file-colon-path"),
        pytest.param(lambda folder: "file://localhost" + folder.as_uri().removeprefix("file://"), id="localhost"),
    ],
)
def test_file_url_forms_load(form, tmp_path, mirror, monkeypatch):
    folder = _copy_mirror(mirror, tmp_path / "my mirror")  # the space is %20 in the URL
    url = form(folder)
    assert "%20" in url
    monkeypatch.setattr(data, "download_url", _no_download)  # the folder, never the internet
    x, y = data.load_tensors(False, tmp_path / "data", url)
    assert x.shape == (10_000, 28, 28) and y[:10].tolist() == T10K_FIRST_LABELS


DAMAGE = {  # (extracted file, offset, new bytes): each keeps the file's size
    "wrong-magic": ("t10k-images-idx3-ubyte", 0, struct.pack(">i", 2049)),
    "no-magic": ("t10k-images-idx3-ubyte", 0, b"\0\0\0\0"),
    "wrong-count": ("t10k-labels-idx1-ubyte", 4, struct.pack(">i", 60_000)),
    "wrong-dims": ("train-images-idx3-ubyte", 8, struct.pack(">ii", 14, 56)),
    "label-11": ("t10k-labels-idx1-ubyte", 8 + 3, bytes([11])),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_extraction_is_redone(damage, tmp_path, mirror):
    """An extracted idx file with garbage inside (but the right size) is extracted again from its verified .gz."""
    name, offset, new = DAMAGE[damage]
    d = tmp_path / "data"
    data.load_tensors(False, d, str(mirror))  # extracts all four
    idx = d / "MNIST" / "raw" / name
    good = idx.read_bytes()
    _patch(idx, offset, new)
    assert idx.read_bytes() != good and idx.stat().st_size == len(good)
    x, y = data.load_tensors(name.startswith("train"), d)
    assert idx.read_bytes() == good
    assert x.shape[1:] == (28, 28) and int(y.max()) <= 9


@pytest.mark.parametrize(
    "damage,needle",
    [
        ("no-magic", r"cannot read mnist from .*MNIST: AssertionError; delete .*MNIST and run again"),
        ("wrong-magic", r"cannot read mnist from .*MNIST: .*; delete .*MNIST and run again"),
        ("wrong-count", r"cannot read mnist from .*MNIST: .*; delete .*MNIST and run again"),
        ("wrong-dims", r"train-images-idx3-ubyte is damaged \(images of shape \(60000, 14, 56\), expected"),
        ("label-11", r"t10k-labels-idx1-ubyte is damaged \(a label outside 0..9\); delete .*MNIST and run again"),
    ],
)
def test_unreadable_extraction_is_one_line(damage, needle, tmp_path, mirror, monkeypatch):
    """Were the idx check and the sha256 check to miss a damaged file, torchvision's parse errors and the check of
    what it loaded still give one line, not a traceback."""
    name, offset, new = DAMAGE[damage]
    d = tmp_path / "data"
    data.load_tensors(False, d, str(mirror))
    _patch(d / "MNIST" / "raw" / name, offset, new)
    monkeypatch.setattr(integrity, "idx_problem", lambda *args: None)
    monkeypatch.setattr(integrity, "same_as_extracted", lambda *args: True)
    with pytest.raises(UserError, match=needle) as e:
        data.load_tensors(name.startswith("train"), d)
    assert len(str(e.value).splitlines()) == 1
