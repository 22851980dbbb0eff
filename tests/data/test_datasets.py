"""Every MNIST-format dataset layout from small mirrors (the registry's specs swapped for the small files' own),
integrity on the decompressed content, one-line errors naming the dataset, and `datasets.rows`."""

import dataclasses
import functools
import gzip
import hashlib
import http.server
import json
import os
import shutil
import threading
import types

import numpy as np
import pytest
import torch
from idx import gz_bytes, make_mirror
from torchvision import datasets as tv

from mnistlab.data import datasets
from mnistlab.data import download as data
from mnistlab.errors import UserError
from mnistlab.pixels import MEAN, STD, normalize

NAMES = ("mnist", "fashion-mnist", "kmnist", "emnist-digits", "emnist-letters", "emnist-balanced", "qmnist")


def _no_download(*args, **kwargs):
    raise AssertionError(f"tried to download {args}")


@pytest.fixture
def use(monkeypatch):
    """`use(*specs)`: from now on `datasets.get` (which everything asks) answers with these specs for their names."""
    table = {}
    real = datasets.get
    monkeypatch.setattr(datasets, "get", lambda name: table[name] if name in table else real(name))
    monkeypatch.setattr(data, "download_url", _no_download)  # mirrors only, never the internet

    def use(*specs):
        table.update((s.name, s) for s in specs)

    return use


@pytest.fixture
def small(tmp_path, use):
    """`small(name, **make_mirror options)`: a small mirror of that dataset in use; a `idx.Mirror`."""

    def small(name, folder="mirror", **kw):
        m = make_mirror(tmp_path / folder, datasets.SPECS[name], **kw)
        use(m.spec)
        return m

    return small


def _one_line(e: pytest.ExceptionInfo, *needles: str) -> str:
    msg = str(e.value)
    assert len(msg.splitlines()) == 1, msg
    for needle in needles:
        assert needle in msg, msg
    return msg


# --------------------------------------------------------------------------------------------------------------
# The registry


def test_registry_is_frozen_and_matches_torchvision():
    assert datasets.names() == NAMES and datasets.get("mnist") is datasets.SPECS["mnist"]
    with pytest.raises(TypeError):
        datasets.SPECS["x"] = datasets.SPECS["mnist"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        datasets.SPECS["mnist"].train_size = 1  # type: ignore[misc]
    for spec in datasets.SPECS.values():
        assert spec.folder == f"{spec.source.__name__}/raw" and len(spec.files) == 4
        assert spec.num_classes == len(set(spec.classes))
        if spec.archive is None:
            res = spec.source.resources
            res = (
                [(url.rsplit("/", 1)[1], md5) for part in ("train", "test") for url, md5 in res[part]]
                if isinstance(res, dict)
                else res
            )
            assert {f.name: f.md5 for f in spec.files} == dict(res)
    assert (datasets.get("mnist").mean, datasets.get("mnist").std) == (MEAN, STD) == (0.1307, 0.3081)
    assert datasets.get("emnist-letters").classes == tuple("abcdefghijklmnopqrstuvwxyz")
    assert datasets.get("emnist-balanced").classes == tuple(tv.EMNIST.classes_split_dict["balanced"])
    assert datasets.get("emnist-balanced").num_classes == 47
    assert datasets.get("kmnist").classes[:3] == ("o", "ki", "su")
    assert datasets.get("fashion-mnist").classes[0] == "T-shirt/top" and datasets.get("fashion-mnist").hflip_ok
    assert not any(datasets.get(n).hflip_ok for n in NAMES if n != "fashion-mnist")
    assert datasets.get("emnist-digits").archive.md5 == "58c8d27c78d21e728a6bc7b3cc06412e"
    qmnist = datasets.get("qmnist")
    assert {f.name for f in qmnist.files} == {
        f"qmnist-{s}-{k}.gz" for s in ("train", "test") for k in ("images-idx3-ubyte", "labels-idx2-int")
    }
    assert (qmnist.train_size, qmnist.test_size) == (60_000, 60_000)


def test_mnist_content_checksums_are_the_real_files(mirror):
    spec = datasets.get("mnist")
    for f in spec.files:
        content = gzip.decompress((mirror / f.name).read_bytes())
        assert hashlib.sha256(content).hexdigest() == f.sha256 and len(content) == spec.idx(f).size


def test_unknown_dataset_lists_the_choices(tmp_path):
    for call in (lambda: data.check_dataset("cifar"), lambda: data.load_tensors(False, tmp_path, None, "cifar")):
        with pytest.raises(UserError) as e:
            call()
        _one_line(e, "unknown dataset 'cifar'", ", ".join(NAMES))
    data.check_dataset("folder:/some/images")  # read by mnistlab.data.folders
    assert data.is_folder("folder:x") and not data.is_folder("mnist")
    assert not tmp_path.joinpath("MNIST").exists()


def test_pixel_stats():
    x = torch.tensor([[0, 255], [0, 255]], dtype=torch.uint8)
    assert datasets.pixel_stats(x) == (0.5, 0.5)
    with pytest.raises(UserError, match="no training images"):
        datasets.pixel_stats(torch.zeros(0, 28, 28, dtype=torch.uint8))


def test_pixel_stats_of_mnist_are_the_recorded_ones(data_dir):
    mean, std = datasets.pixel_stats(data.load_tensors(True, data_dir)[0])
    assert round(mean, 4) == MEAN and round(std, 4) == STD


# --------------------------------------------------------------------------------------------------------------
# Every layout, from a small mirror


@pytest.mark.parametrize("name", NAMES)
def test_every_layout_loads_upright_from_zero(name, small, tmp_path):
    m = small(name)
    d = tmp_path / "data"
    for train in (True, False):
        x, y = data.load_tensors(train, d, str(m.folder), name)
        assert x.dtype == torch.uint8 and y.dtype == torch.int64 and x.shape == m.images[train].shape
        assert torch.equal(x, m.images[train]) and torch.equal(y, m.labels[train])
        assert (x[0, 0] == 255).all() and (x[0, 1:14, 0] == 128).all()  # upright: the bright row on top
        assert int(y.min()) == 0 and int(y.max()) == m.spec.num_classes - 1
    x, y = data.load_tensors(False, d, None, name, limit=5)  # from the data folder alone, now
    assert x.shape == (5, 28, 28) and y.tolist() == m.labels[False][:5].tolist()
    ds = data.mnist_dataset(True, d, None, name)
    image, label = ds[0]
    assert np.array_equal(np.asarray(image), m.images[True][0].numpy()) and label == int(m.labels[True][0])
    assert type(label) is int and list(ds.classes) == list(m.spec.classes)


def test_seed_loader_normalises_with_the_training_images(small, tmp_path):
    from mnistlab.data.loaders import seed_loader

    m = small("fashion-mnist")
    kw = dict(data_dir=tmp_path / "data", mirror=str(m.folder), dataset="fashion-mnist", num_workers=0)
    loader = seed_loader(False, 8, **kw)
    x, y = next(iter(loader))
    mean, std = datasets.pixel_stats(m.images[True])
    want = (m.images[False][:8].float() / 255 - mean) / std
    assert torch.allclose(x[:, 0], want, atol=1e-5) and torch.equal(y, m.labels[False][:8])


def test_file_url_mirror_of_another_dataset(small, tmp_path):
    m = small("kmnist", folder="my mirror")
    x, _ = data.load_tensors(True, tmp_path / "data", m.folder.as_uri(), "kmnist")
    assert torch.equal(x, m.images[True])


@pytest.mark.parametrize("layout", ["zip", "loose", "gzip-folder"])
def test_emnist_mirror_forms(layout, small, tmp_path):
    m = small("emnist-letters", zipped=layout == "zip", in_gzip_folder=layout == "gzip-folder")
    d = tmp_path / "data"
    x, y = data.load_tensors(False, d, str(m.folder), "emnist-letters")
    assert torch.equal(x, m.images[False]) and torch.equal(y, m.labels[False])
    raw = d / "EMNIST" / "raw"
    assert {p.name for p in raw.glob("*.gz")} == {f.name for f in m.spec.files}
    # again, without the mirror: the files taken out of the verified zip pass on the md5s recorded then
    x, _ = data.load_tensors(True, d, None, "emnist-letters")
    assert torch.equal(x, m.images[True])


def test_emnist_loose_files_without_a_checksum_are_refused(small, use, tmp_path):
    m = small("emnist-digits", zipped=False)
    use(dataclasses.replace(m.spec, files=tuple(dataclasses.replace(f, md5=None, sha256=None) for f in m.spec.files)))
    with pytest.raises(UserError) as e:
        data.load_tensors(True, tmp_path / "data", str(m.folder), "emnist-digits")
    _one_line(e, "emnist-digits: ", "cannot be checked: mnistlab knows no checksum", "put the official gzip.zip")


def test_emnist_file_changed_in_the_data_folder_is_refused(small, tmp_path):
    m = small("emnist-balanced", known_content=False)  # as the real spec: only the zip's md5 is known
    d = tmp_path / "data"
    data.load_tensors(True, d, str(m.folder), "emnist-balanced")
    gz = d / "EMNIST" / "raw" / m.spec.files[1].name
    gz.write_bytes(gz_bytes(m.contents[gz.name], level=1, mtime=7))  # same content: but nothing knows it
    with pytest.raises(UserError) as e:
        data.load_tensors(True, d, str(m.folder), "emnist-balanced")
    _one_line(e, "emnist-balanced: ", str(gz), "cannot be checked", "delete it and run again")
    gz.unlink()  # as the message says: taken out of the mirror's zip again
    x, _ = data.load_tensors(True, d, str(m.folder), "emnist-balanced")
    assert torch.equal(x, m.images[True])


def test_corrupted_emnist_zip_is_named(small, tmp_path):
    m = small("emnist-digits")
    zip_path = m.folder / "gzip.zip"
    zip_path.write_bytes(zip_path.read_bytes()[:-10])
    with pytest.raises(UserError) as e:
        data.load_tensors(True, tmp_path / "data", str(m.folder), "emnist-digits")
    _one_line(e, "emnist-digits: ", "gzip.zip is corrupted (md5 mismatch", "replace it with the official file")


def test_another_datasets_mirror_is_named(mirror, tmp_path, monkeypatch):
    """MNISTLAB_MIRROR (a folder of MNIST) used for Fashion-MNIST, whose files have the same names."""
    monkeypatch.setattr(data, "download_url", _no_download)
    with pytest.raises(UserError) as e:
        data.load_tensors(True, tmp_path / "data", str(mirror), "fashion-mnist")
    _one_line(e, "fashion-mnist: ", "is mnist's train-images-idx3-ubyte.gz, not the official fashion-mnist file")


@pytest.mark.parametrize("name", ["kmnist", "emnist-digits"])
def test_missing_file_names_the_dataset(name, small, tmp_path):
    m = small(name, zipped=False)
    (m.folder / m.spec.files[2].name).unlink()
    with pytest.raises(UserError) as e:
        data.load_tensors(True, tmp_path / "data", str(m.folder), name)
    also = " (nor gzip.zip)" if name.startswith("emnist") else ""
    _one_line(e, f"{name}: mirror folder {m.folder} has no {m.spec.files[2].name}{also}; it must hold the dataset's")


# --------------------------------------------------------------------------------------------------------------
# Integrity on the decompressed content


def _recompress(path, level=1, mtime=12345):
    """The same content gzipped again with other settings: other .gz bytes."""
    old = path.read_bytes()
    path.write_bytes(gz_bytes(gzip.decompress(old), level=level, mtime=mtime))
    assert path.read_bytes() != old


@pytest.mark.parametrize("name", ["mnist", "qmnist", "emnist-letters"])
def test_recompressed_copy_is_accepted_when_the_content_hash_is_known(name, small, tmp_path):
    m = small(name, zipped=False)
    for f in m.spec.files:
        _recompress(m.folder / f.name)
    d = tmp_path / "data"
    x, y = data.load_tensors(False, d, str(m.folder), name)
    assert torch.equal(x, m.images[False]) and torch.equal(y, m.labels[False])
    x, _ = data.load_tensors(True, d, None, name)  # again from the data folder (its recorded md5s)
    assert torch.equal(x, m.images[True])


def test_recompressed_real_mnist_is_accepted(data_dir, mirror, tmp_path, monkeypatch):
    """The recorded content checksums of the real files: a re-compressed copy of MNIST passes."""
    monkeypatch.setattr(data, "download_url", _no_download)
    folder = tmp_path / "mirror"
    folder.mkdir()
    for f in datasets.get("mnist").files:
        shutil.copyfile(mirror / f.name, folder / f.name)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        _recompress(folder / name, level=1)
    x, y = data.load_tensors(False, tmp_path / "data", str(folder))
    x0, y0 = data.load_tensors(False, data_dir)
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_recompressed_copy_is_refused_without_a_content_hash(small, tmp_path):
    m = small("fashion-mnist", known_content=False)
    _recompress(m.folder / "train-labels-idx1-ubyte.gz")
    with pytest.raises(UserError) as e:
        data.load_tensors(True, tmp_path / "data", str(m.folder), "fashion-mnist")
    _one_line(e, "fashion-mnist: ", "is not the official file", "no checksum of the official decompressed content")


@pytest.mark.parametrize("known", [True, False])
def test_unverified_copy_is_said_in_one_line(known, small, tmp_path, capsys):
    """A copy whose decompressed sha256 mnistlab does not record passes on its .gz md5 and its idx layout, and says
    so in one line on stderr; a verified one says nothing."""
    m = small("kmnist", known_content=known)
    x, _ = data.load_tensors(True, tmp_path / "data", str(m.folder), "kmnist")
    assert torch.equal(x, m.images[True])
    err = capsys.readouterr().err
    if known:
        assert "unverified" not in err, err
    else:
        assert len(err.splitlines()) == 1 and "kmnist's training files in" in err and "are unverified" in err, err
    stamps = json.loads((tmp_path / "data" / "KMNIST" / "raw" / "mnistlab-extracted-kmnist.json").read_text())
    assert {n: e["sha256"] for n, e in stamps["files"].items()} == {
        n.removesuffix(".gz"): hashlib.sha256(c).hexdigest() for n, c in m.contents.items()
    }  # the content's sha256 is recorded for every file, known beforehand or not


def test_normalization_is_resolved_in_one_place():
    mnist, fashion = datasets.get("mnist"), datasets.get("fashion-mnist")
    assert datasets.normalization(mnist, _no_download) == (MEAN, STD)
    assert datasets.normalization(fashion, _no_download, 0.5, 0.25) == (0.5, 0.25)
    images = torch.tensor([[0, 255], [0, 255]], dtype=torch.uint8)
    assert datasets.normalization(fashion, lambda: images) == (0.5, 0.5)
    x = torch.tensor([0.0, 1.0])
    assert normalize(x).tolist() == pytest.approx([-0.1307 / 0.3081, 0.8693 / 0.3081])
    assert normalize(np.float32([1.0]), 0.5, 0.25).dtype == np.float32


DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"  # Debian's package dataset-fashion-mnist (re-compressed)


@pytest.mark.skipif(
    not os.path.isdir(DEBIAN_FASHION), reason=f"{DEBIAN_FASHION} is absent: apt-get install dataset-fashion-mnist"
)
def test_debians_fashion_mnist_trains_and_evaluates(tmp_path, capsys, monkeypatch):
    """Debian's re-compressed Fashion-MNIST passes on its decompressed content, quietly, and a few images train."""
    from mnistlab import cli

    monkeypatch.setattr(data, "download_url", _no_download)
    gz = os.path.join(DEBIAN_FASHION, "t10k-labels-idx1-ubyte.gz")
    assert hashlib.md5(open(gz, "rb").read()).hexdigest() != datasets.get("fashion-mnist").file(False, True).md5
    out, where = tmp_path / "run", ["--mirror", DEBIAN_FASHION, "--data-dir", str(tmp_path / "data")]
    train = ["train", "--dataset", "fashion-mnist", "--epochs", "1", "--batch-size", "32", "--device", "cpu"]
    args = ["--limit-train", "64", "--limit-test", "32", "--quiet", "--no-plots", "--out", str(out)]
    assert cli.main([*train, *args, *where]) == 0
    assert cli.main(["evaluate", str(out), "--json", "--limit-test", "32", *where]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert report["test_images"] == 32 and report["classes"][0] == "T-shirt/top"
    assert "unverified" not in captured.err and "not the official file" not in captured.err, captured.err
    x, y = data.load_tensors(False, tmp_path / "data", None, "fashion-mnist")
    assert x.shape == (10_000, 28, 28) and torch.equal(torch.bincount(y), torch.full((10,), 1000))


def _changed_byte(content: bytes) -> bytes:
    b = bytearray(content)
    b[len(b) // 2] ^= 0x01
    return gz_bytes(bytes(b))


@pytest.mark.parametrize("name", ["mnist", "qmnist"])
@pytest.mark.parametrize("damage", ["changed-byte", "truncated", "not-gzip"])
@pytest.mark.parametrize("where", ["mirror", "data-folder"])
def test_changed_or_truncated_file_is_refused(name, damage, where, small, tmp_path):
    m = small(name)
    d = tmp_path / "data"
    f = m.spec.files[0]
    folder = m.folder
    if where == "data-folder":
        data.load_tensors(True, d, str(m.folder), name)
        folder = d / m.spec.folder
    path = folder / f.name
    path.write_bytes(
        {
            "changed-byte": lambda: _changed_byte(m.contents[f.name]),
            "truncated": lambda: path.read_bytes()[: len(path.read_bytes()) // 2],
            "not-gzip": lambda: b"<html>not found</html>",
        }[damage]()
    )
    with pytest.raises(UserError) as e:
        data.load_tensors(True, d, str(m.folder), name)
    why = "not the official one" if damage == "changed-byte" else "it does not decompress"
    fix = "replace it with the official file" if where == "mirror" else "delete it and run again"
    _one_line(e, f"{name}: {path} is corrupted (md5 mismatch, expected {f.md5}; ", why, fix)


def test_content_that_does_not_fit_the_record_is_named(small, use, tmp_path):
    """A file that passes its checksum but holds other dimensions (a wrong record) is named, not looped on."""
    m = small("kmnist")
    use(dataclasses.replace(m.spec, train_size=m.spec.train_size + 1))
    with pytest.raises(UserError) as e:
        data.load_tensors(True, tmp_path / "data", str(m.folder), "kmnist")
    _one_line(e, "kmnist: train-images-idx3-ubyte.gz passed its checksum but does not hold the expected data")


# --------------------------------------------------------------------------------------------------------------
# An http(s) mirror (a server on this machine)


@pytest.fixture
def http_mirror(tmp_path):
    """`http_mirror(folder)`: the URL of a local HTTP server serving `folder`."""
    servers = []

    def serve(folder):
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for s in servers:
        s.shutdown()
        s.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.parametrize("name", ["qmnist", "emnist-digits"])
def test_http_mirror(name, small, http_mirror, tmp_path, monkeypatch):
    from torchvision.datasets.utils import download_url

    m = small(name)
    monkeypatch.setattr(data, "download_url", download_url)  # this server only
    url = http_mirror(m.folder)
    x, y = data.load_tensors(False, tmp_path / "data", url, name)
    assert torch.equal(x, m.images[False]) and torch.equal(y, m.labels[False])
    assert not list((tmp_path / "data").rglob("*.part"))


def test_http_mirror_with_a_bad_file(small, http_mirror, tmp_path, monkeypatch):
    from torchvision.datasets.utils import download_url

    m = small("mnist")
    monkeypatch.setattr(data, "download_url", download_url)
    (m.folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the file")
    with pytest.raises(UserError) as e:
        data.load_tensors(False, tmp_path / "data", http_mirror(m.folder), "mnist")
    _one_line(e, "mnist: cannot get t10k-labels-idx1-ubyte.gz (http://127.0.0.1:", "is corrupted (md5 mismatch")
    assert not (tmp_path / "data" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").exists()


# --------------------------------------------------------------------------------------------------------------
# rows(), for `mnistlab datasets`


def test_rows_report_present_and_absent(small, tmp_path):
    d = tmp_path / "data"
    rows = datasets.rows(d)
    assert [r["name"] for r in rows] == list(NAMES) and not any(r["present"] for r in rows)
    real = {r["name"]: r for r in rows}
    assert (real["emnist-digits"]["train"], real["emnist-digits"]["test"], real["emnist-digits"]["classes"]) == (
        240_000,
        40_000,
        10,
    )
    assert real["emnist-letters"]["classes"] == 26 and real["mnist"]["description"]
    m = small("fashion-mnist")
    data.load_tensors(True, d, str(m.folder), "fashion-mnist")
    present = {r["name"]: r["present"] for r in datasets.rows(d)}
    assert present == {n: n == "fashion-mnist" for n in NAMES}
    gz = d / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:-1])
    assert not {r["name"]: r["present"] for r in datasets.rows(d)}["fashion-mnist"]


def test_no_module_level_mutable_state():
    for module in (data, datasets):
        for name, value in vars(module).items():
            if name.startswith("__") or isinstance(value, (types.ModuleType, type, types.FunctionType)):
                continue
            assert not isinstance(value, (list, dict, set, bytearray)), f"{module.__name__}.{name}"


# --------------------------------------------------------------------------------------------------------------
# Training on another dataset, end to end


@pytest.mark.parametrize("name", ["fashion-mnist", "emnist-letters"])
def test_train_and_evaluate_another_dataset_from_its_mirror(name, small, tmp_path, capsys):
    import json

    from mnistlab import cli
    from mnistlab.store.checkpoints import read_safetensors

    m = small(name, n_train=64, n_test=32)
    out, where = tmp_path / "run", ["--mirror", str(m.folder), "--data-dir", str(tmp_path / "data")]
    train = ["train", "--dataset", name, "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--quiet"]
    assert cli.main([*train, "--no-plots", "--out", str(out), *where]) == 0
    recipe = json.loads((out / "recipe.json").read_text())
    assert recipe["dataset"] == name
    assert (recipe["mean"], recipe["std"]) == pytest.approx(datasets.pixel_stats(m.images[True]))
    log = (out / "train.log").read_text()
    assert f"dataset           {name}" in log and "mean" in log  # the resolved recipe is printed at start
    _, card = read_safetensors(out / "model.safetensors")
    assert card["classes"] == list(m.spec.classes) and card["dataset"] == name
    assert cli.main(["evaluate", str(out), "--json", *where]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["test_images"] == 32 and len(report["per_class_acc"]) == m.spec.num_classes
    assert report["classes"][0] == {"fashion-mnist": "T-shirt/top", "emnist-letters": "a"}[name]
