"""The Python API and `mnistlab predict`: bundled weights, every kind of image, safe weight loading, output formats."""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, draw_seven, one_line_error, run_cli
from PIL import Image

import mnistlab
from mnistlab.data.download import load_tensors
from mnistlab.data.loaders import DeviceLoader
from mnistlab.errors import UserError
from mnistlab.images.preprocess import NoInkError, open_image, preprocess
from mnistlab.infer.classifier import Classifier, Prediction, image_files
from mnistlab.model import Net
from mnistlab.store import checkpoints
from mnistlab.store.weights import bundled_weights, load_model

SEVEN = REPO / "examples" / "digits" / "seven_pen.png"


def grey_seven() -> Image.Image:
    """A 7 in dark grey on light grey paper, 120x150."""
    return draw_seven((120, 150), (30, 37, 96, 128), width=10, ink=20, paper=235)


# --------------------------------------------------------------------------------------------------------------
# The bundled model


def test_bundled_weights_score_at_least_99_5_on_the_mnist_test_set(bundled, data_dir):
    x, y = load_tensors(False, data_dir)
    loader = DeviceLoader(x, y, 2000, "cpu")
    with torch.inference_mode():
        correct = sum(int((bundled.model(xb).argmax(1) == yb).sum()) for xb, yb in loader)
    assert correct / len(y) >= 0.995, correct
    card = bundled.card
    assert card["recipe"]["name"] == "robust" and card["epochs"] == card["recipe"]["epochs"]
    assert card["recipe"]["val"] == 5000 and card["calibration"]["images"] == 5000  # calibrated on held-out digits
    assert card["test_images"] == 10_000 and card["test_acc"] == pytest.approx(correct / len(y), abs=2e-4)


def test_load_with_no_argument_reads_the_example_seven_without_training_or_data(tmp_path):
    """The README's first two lines, in a fresh process with no data folder and no mirror."""
    code = "import mnistlab; print(mnistlab.load().predict('examples/digits/seven_pen.png'))"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MNISTLAB_DATA": str(tmp_path / "no-data")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Prediction(digit=7," in r.stdout and "source='examples/digits/seven_pen.png'" in r.stdout
    assert not (tmp_path / "no-data").exists()
    assert bundled_weights().stat().st_size < 5_000_000


# --------------------------------------------------------------------------------------------------------------
# Every kind of image the API takes gives the same answer


def test_every_kind_of_image_gives_the_same_prediction(bundled, tmp_path):
    img = grey_seven()
    path = tmp_path / "seven.png"
    img.save(path)
    arr = np.asarray(img)
    kinds = {
        "path": path,
        "str": str(path),
        "PIL": img,
        "uint8 HxW": arr,
        "float HxW": arr.astype(np.float32) / 255,
        "uint8 HxWx3": np.stack([arr] * 3, -1),
        "tensor": torch.from_numpy(arr.copy()),
        "bytes": path.read_bytes(),
    }
    preds = bundled.predict(list(kinds.values()), top_k=3)
    assert len(preds) == len(kinds)
    for kind, p in zip(kinds, preds):
        assert isinstance(p, Prediction) and p.digit == 7, kind
        assert len(p.probabilities) == 10 and sum(p.probabilities) == pytest.approx(1, abs=1e-5), kind
        assert p.top_k[0] == (7, pytest.approx(p.probabilities[7])) and len(p.top_k) == 3, kind
        assert [q for _, q in p.top_k] == sorted((q for _, q in p.top_k), reverse=True), kind
        assert p.probabilities == pytest.approx(preds[0].probabilities, abs=2e-3), kind
    assert [p.source for p in preds[:2]] == [str(path)] * 2 and all(p.source is None for p in preds[2:])
    one = bundled.predict(img)  # one image in, a list of one out
    assert len(one) == 1 and one[0].digit == 7


def test_a_28x28_mnist_digit_is_used_as_it_is(bundled, data_dir):
    """MNIST's own test digits, as uint8 arrays, reach the network exactly as the test set does."""
    x, y = load_tensors(False, data_dir, limit=200)
    loader_input = next(iter(DeviceLoader(x, y, 200, "cpu")))[0]
    for i in range(0, 200, 17):
        torch.testing.assert_close(preprocess(x[i].numpy()), loader_input[i], atol=1e-6, rtol=0)
        torch.testing.assert_close(preprocess(x[i]), loader_input[i], atol=1e-6, rtol=0)
    preds = bundled.predict([x[i].numpy() for i in range(200)], top_k=1)
    with torch.inference_mode():
        expected = bundled.model(loader_input).argmax(1)
    assert [p.digit for p in preds] == expected.tolist()
    assert sum(p.digit == int(t) for p, t in zip(preds, y)) >= 198


def test_bad_images_raise_in_predict_and_stay_in_place_in_predict_each(bundled, tmp_path):
    good = tmp_path / "seven.png"
    grey_seven().save(good)
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    blank = np.full((40, 40), 255, np.uint8)
    with pytest.raises(UserError, match="bad.png"):
        bundled.predict([good, bad])
    with pytest.raises(NoInkError, match="the array"):
        bundled.predict(blank)
    results = bundled.predict_each([bad, good, tmp_path / "gone.png", blank, b"\x89PNG broken"], top_k=10)
    assert isinstance(results[0], UserError) and "bad.png" in str(results[0])
    assert isinstance(results[1], Prediction) and results[1].digit == 7 and len(results[1].top_k) == 10
    assert "does not exist" in str(results[2])
    assert isinstance(results[3], NoInkError) and "image 3 (the array)" in str(results[3])
    assert "image 4 (the image bytes)" in str(results[4])
    for k in (0, 11, -1, 2.5, True):
        with pytest.raises(UserError, match="top-k"):
            bundled.predict(good, top_k=k)


def test_open_image_reads_bytes_like_files(tmp_path):
    path = tmp_path / "seven.png"
    grey_seven().save(path)
    assert np.array_equal(np.asarray(open_image(path.read_bytes())), np.asarray(open_image(path)))
    with pytest.raises(UserError, match="upload.png is empty"):
        open_image(b"", name="upload.png")


# --------------------------------------------------------------------------------------------------------------
# Accuracy on MNIST digits re-rendered as image files


def write_mnist_files(folder: Path, images: np.ndarray) -> list[Path]:
    """MNIST digits as dark-on-light PNG/JPEG files of random sizes (40-200 px) and margins."""
    rng = np.random.default_rng(0)
    files = []
    for i, img in enumerate(images):
        size = int(rng.integers(40, 201))
        digit = Image.fromarray(255 - img).resize((size, size), Image.Resampling.BICUBIC)
        left, top, right, bottom = (int(v) for v in rng.integers(0, size // 2 + 1, 4))
        canvas = Image.new("L", (size + left + right, size + top + bottom), 255)
        canvas.paste(digit, (left, top))
        f = folder / f"{i:03d}.{'jpg' if i % 5 == 0 else 'png'}"
        canvas.save(f, **({"quality": 90} if i % 5 == 0 else {}))
        files.append(f)
    return files


def test_accuracy_on_mnist_digits_saved_as_image_files(tmp_path, data_dir, trained_one_epoch):
    images, labels = load_tensors(False, data_dir, limit=300)
    files = write_mnist_files(tmp_path, images.numpy())
    Image.new("L", (120, 90), 255).save(tmp_path / "blank.png")
    found = image_files([tmp_path])
    assert len(found) == 301 and (tmp_path / "blank.png") in found

    clf = Classifier(trained_one_epoch.model.eval(), torch.device("cpu"))
    results = dict(zip(found, clf.predict_each(found, top_k=3)))
    assert isinstance(results[tmp_path / "blank.png"], NoInkError)
    predicted = np.array([results[f].digit for f in files])
    accuracy = float((predicted == labels.numpy()).mean())
    print(f"predict accuracy on 300 MNIST test digits saved as image files: {accuracy:.2%}")
    assert accuracy >= 0.97, accuracy

    # the same weights through a run folder give the same predictions
    run = tmp_path / "run"
    run.mkdir()
    checkpoints.save_weights(clf.model, run / checkpoints.WEIGHTS, {"note": "from a test"})
    again = mnistlab.load(run, device="cpu")
    assert not again.model.training and again.card == {"note": "from a test"}
    assert [p.digit for p in again.predict(files[:40], top_k=1)] == list(predicted[:40])


# --------------------------------------------------------------------------------------------------------------
# Loading weights: run folders, checkpoints, and refusing everything else without unpickling it


def test_load_model_from_weights_and_checkpoint(tmp_path):
    net = Net()
    run = tmp_path / "run"
    run.mkdir()
    checkpoints.atomic_save(
        {f"model/{k}": v for k, v in net.state_dict().items()} | {"rng/torch": torch.zeros(3)},
        run / checkpoints.CHECKPOINT,
        {"format": 1},
    )
    model, _ = load_model(run)  # no model.safetensors: the checkpoint's model part is used
    assert not model.training
    for k, v in net.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    f = tmp_path / "w.safetensors"
    checkpoints.save_weights(net, f)
    model, meta = load_model(f)
    assert torch.equal(model.fc2.weight, net.fc2.weight) and meta == {}


@pytest.mark.parametrize(
    "tensors,needle",
    [
        ({"encoder.weight": torch.zeros(2, 2)}, "12 missing, 1 unexpected tensors"),
        ({**Net().state_dict(), "fc2.bias": torch.zeros(11)}, "1 wrongly shaped tensors"),
        ({**Net().state_dict(), "fc2.bias": torch.zeros(10, dtype=torch.int64)}, "1 non-float tensors"),
        ({**Net().state_dict(), "fc1.bias": torch.full((50,), float("nan"))}, "NaN or infinite weights"),
    ],
    ids=["foreign", "wrong shape", "integer", "nan"],
)
def test_load_model_refuses_weights_that_do_not_fit(tmp_path, tensors, needle):
    f = tmp_path / "w.safetensors"
    checkpoints.atomic_save(tensors, f)
    with pytest.raises(UserError, match=needle):
        load_model(f)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_load_model_missing_empty_and_malicious(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="model.safetensors"):
        load_model(empty)

    # the payload is live: unpickling it really creates its marker
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Evil(probe)))
    assert probe.exists()

    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(marker))
    run = tmp_path / "evil-run"
    run.mkdir()
    targets = [tmp_path / "evil.pt", tmp_path / "evil.safetensors", run / checkpoints.WEIGHTS]
    for t in targets:
        t.write_bytes(payload)
    for t in [*targets, run]:
        with pytest.raises(UserError):
            load_model(t)
        assert not marker.exists(), t


def test_image_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        image_files([tmp_path / "missing.png"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="no images"):
        image_files([empty])
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("b.PNG", "a.jpg", "c.txt", "d.webp"):
        (folder / name).write_bytes(b"")
    (folder / "sub.png").mkdir()
    single = tmp_path / "x.dat"
    single.write_bytes(b"")
    assert image_files([single, folder]) == [single, folder / "a.jpg", folder / "b.PNG", folder / "d.webp"]


# --------------------------------------------------------------------------------------------------------------
# The command line


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory, data_dir) -> list[Path]:
    """Two MNIST test digits as 100x100 dark-on-light PNGs, and a blank sheet."""
    folder = tmp_path_factory.mktemp("digits")
    x, y = load_tensors(False, data_dir, limit=2)
    paths = []
    for i in range(2):
        p = folder / f"digit{i}-{int(y[i])}.png"
        Image.fromarray(255 - x[i].numpy()).resize((100, 100), Image.BILINEAR).save(p)
        paths.append(p)
    Image.new("L", (50, 50), 255).save(folder / "zz-blank.png")
    return paths


def test_predict_json_matches_the_library(digit_files, env, bundled):
    r = run_cli("predict", *digit_files, "--json", "--top-k", "10", env=env)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["file"] for d in rows] == [str(p) for p in digit_files]
    for row, p, pred in zip(rows, digit_files, bundled.predict(digit_files, top_k=10)):
        verdict, reading = {"digit_score", "is_digit", "candidate"}, {"number", "digits"}
        assert row.keys() == {"file", "digit", "label", "probabilities", "top_k"} | verdict | reading
        assert row["digit_score"] == pytest.approx(pred.digit_score, abs=1e-6) and row["is_digit"] is pred.is_digit
        assert row["digit"] == pred.digit == int(p.stem[-1]) and row["label"] == pred.label == p.stem[-1]
        assert row["probabilities"] == pytest.approx(pred.probabilities, abs=1e-6)
        assert [t["digit"] for t in row["top_k"]] == [d for d, _ in pred.top_k]
        assert [t["probability"] for t in row["top_k"]] == pytest.approx([q for _, q in pred.top_k], abs=1e-6)


def test_predict_text_folder_errors_and_output_files(digit_files, env, tmp_path):
    folder = digit_files[0].parent
    r = run_cli("predict", folder, "--output", tmp_path / "out.csv", env=env)
    assert r.returncode == 2  # the blank sheet failed
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    for line, p in zip(lines, digit_files):
        m = re.fullmatch(r"(.+): (\d)  \((\d \d+\.\d%), (\d \d+\.\d%), (\d \d+\.\d%)\)", line)
        assert m and m.group(1) == str(p) and int(m.group(2)) == int(p.stem[-1]), line
    assert "zz-blank.png" in one_line_error(r) and "no ink found" in r.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert [row["file"] for row in rows] == [*map(str, digit_files), str(folder / "zz-blank.png")]
    assert rows[0]["digit"] == lines[0].split(": ")[1][0] and rows[2]["digit"] == "" and "no ink" in rows[2]["error"]
    assert sum(float(rows[0][f"p{d}"]) for d in range(10)) == pytest.approx(1, abs=1e-5)

    r = run_cli("predict", folder, "--json", "--output", tmp_path / "out.jsonl", env=env)
    assert r.returncode == 2 and r.stderr == ""  # in JSON mode the error is an object in the stream
    assert (tmp_path / "out.jsonl").read_text() == r.stdout
    last = json.loads(r.stdout.splitlines()[-1])
    assert last.keys() == {"file", "error"} and "no ink found" in last["error"]


def test_predict_with_a_run_folder(digit_files, env, trained_one_epoch, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    checkpoints.save_weights(trained_one_epoch.model, run / checkpoints.WEIGHTS)
    r = run_cli("predict", digit_files[0], "--model", run, "--json", env=env)
    assert r.returncode == 0, r.stderr
    expected = Classifier(trained_one_epoch.model.eval(), torch.device("cpu")).predict(digit_files[0])[0]
    assert json.loads(r.stdout)["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)
