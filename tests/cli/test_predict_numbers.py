"""`mnistlab predict` reads whole numbers: the text line, --json's number and boxes, the CSV's number, --show's
boxed picture; a 28x28 MNIST digit is still one digit used as given."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from conftest import one_line_error, run_main
from photos import written_number
from PIL import Image

from mnistlab.data.download import load_tensors
from mnistlab.infer import output


@pytest.fixture(scope="module")
def number_png(data_dir, tmp_path_factory):
    """A picture of the number 2076 in MNIST training digits (80 px tall, dark on white), as a PNG file, and where
    each digit was pasted."""
    path = tmp_path_factory.mktemp("numbers") / "price.png"
    images, labels = load_tensors(True, data_dir, limit=400)
    paper, pasted = written_number(images.numpy(), labels.numpy(), "2076", size=(520, 160))
    Image.fromarray(paper, mode="L").save(path)
    return path, pasted


def test_a_number_is_printed_whole_with_its_count(number_png, env):
    number_png, _ = number_png
    r = run_main("predict", number_png, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{number_png}: 2076 (4 digits)"


def test_json_and_csv_carry_the_number_and_each_digits_box(number_png, tmp_path, env):
    number_png, pasted = number_png
    r = run_main("predict", number_png, "--json", "--output", tmp_path / "out.csv", env=env)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["number"] == "2076" and [d["digit"] for d in row["digits"]] == [2, 0, 7, 6]
    boxes = [d["box"] for d in row["digits"]]
    assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)  # reading order, left to right
    for (x0, y0, x1, y1), (a, b, c, d) in zip(boxes, pasted):  # each box is on its digit
        inter = max(0, min(x1, c) - max(x0, a)) * max(0, min(y1, d) - max(y0, b))
        assert inter > 0.5 * (c - a) * (d - b), ((x0, y0, x1, y1), (a, b, c, d))
    assert all(
        0 <= d["digit_score"] <= 1 and 0 < d["found"] <= 1 and d["label"] == str(d["digit"]) for d in row["digits"]
    )
    best = max(row["digits"], key=lambda d: d["digit_score"])  # the one-digit answer: the most digit-like found
    assert row["candidate"] == "found digit" and row["digit"] == best["digit"]
    assert row["digit_score"] == pytest.approx(best["digit_score"], abs=1e-6)
    (cells,) = csv.DictReader((tmp_path / "out.csv").open())
    assert cells["number"] == "2076" and cells["file"] == str(number_png)


def test_show_draws_the_boxes_beside_the_seen_digit(number_png, tmp_path, env):
    number_png, _ = number_png
    r = run_main("predict", number_png, "--show", tmp_path / "seen", env=env)
    assert r.returncode == 0, r.stderr
    boxed = tmp_path / "seen" / "price.boxes.png"
    assert r.stdout.strip() == f"{number_png}: 2076 (4 digits)  seen: {boxed}"
    with Image.open(boxed) as im:
        assert im.info.get("Software") == output.SEEN_MARK and im.size == Image.open(number_png).size
        red = np.asarray(im.convert("RGB")).astype(int)
    reddish = (red[..., 0] > 200) & (red[..., 1] < 80)
    assert reddish.sum() > 4 * 100  # four outlines drawn
    assert (tmp_path / "seen" / "price.png").is_file()  # the 28x28 the one-digit answer saw
    # a rerun replaces its own pictures; a file of the user's at the boxed picture's name is never replaced
    assert run_main("predict", number_png, "--show", tmp_path / "seen", env=env).returncode == 0
    boxed.unlink()
    boxed.write_bytes(b"mine")
    msg = one_line_error(run_main("predict", number_png, "--show", tmp_path / "seen", env=env))
    assert "--show would replace" in msg and boxed.read_bytes() == b"mine"


def test_an_mnist_digit_is_one_digit_used_as_given(data_dir, tmp_path, env):
    images, labels = load_tensors(True, data_dir, limit=1)
    path = tmp_path / "mnist.png"
    Image.fromarray(images[0].numpy(), mode="L").save(path)
    r = run_main("predict", path, "--json", env=env)
    row = json.loads(r.stdout)
    assert row["candidate"] == "as given" and row["number"] == str(int(labels[0]))
    assert row["digits"] == [
        {
            "box": [0.0, 0.0, 28.0, 28.0],
            "digit": row["digit"],
            "label": row["label"],
            "probability": row["top_k"][0]["probability"],
            "digit_score": row["digit_score"],
            "found": 1.0,
        }
    ]


def test_seen_names_leave_room_for_each_boxed_picture(tmp_path):
    paths = output.seen_paths(tmp_path, ["a/x.png", "x.boxes.png", "b/x.png"])
    names = [p.name for p in paths] + [output.boxed_path(p).name for p in paths]
    assert len(set(names)) == 6, names


@pytest.mark.parametrize("found_score, answered", [(0.99, "all ink"), (0.5, "all ink"), (0.2, "all ink")])
def test_a_picture_read_well_as_one_digit_keeps_its_own_reading(monkeypatch, bundled, found_score, answered):
    """The finder seeing two digits in a digit that fills its picture: the picture's own reading (digit score 0.98)
    is kept unless a found digit is over classifier.PREFER more digit-like; a number read as a blob gives way."""
    from mnistlab.cli import predict
    from mnistlab.infer.classifier import Prediction
    from mnistlab.reading import read

    def found(digit, score):
        probs = [0.0] * 10
        probs[digit] = 1.0
        return read.FoundDigit((0.0, 0.0, 10.0, 10.0), digit, probs, score, 0.9, np.zeros((28, 28), np.float32))

    class TwoDigits:
        def __init__(self, classifier):
            pass

        def read(self, file):
            return read.Reading([found(1, found_score), found(4, found_score - 0.01)], "14", str(file))

    monkeypatch.setattr(read, "Reader", TwoDigits)
    for own, expected in ((0.98, answered), (0.3, "found digit" if found_score > 0.35 else "all ink")):
        probs = [0.0] * 10
        probs[7] = 1.0
        result = Prediction(7, probs, [(7, 1.0)], "x.png", "7", np.zeros((28, 28)), own, True, "all ink")
        results, rows = [result], [output.result_row("x.png", result, bundled.classes)]
        predict.read_numbers(bundled, ["x.png"], results, rows, 3)
        assert rows[0]["candidate"] == expected and rows[0]["number"] == "14", (own, found_score)
        assert rows[0]["digit"] == (1 if expected == "found digit" else 7)
