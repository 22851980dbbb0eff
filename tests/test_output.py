"""mnistlab.output: result rows, the CSV and JSON Lines files, the printed lines and the saved 28x28 images."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
from PIL import Image

from mnistlab.classifier import Prediction
from mnistlab.errors import UserError
from mnistlab.output import print_results, printable, result_row, save_seen, write_results


def prediction(digit=7, score=0.9, is_digit=True, seen=None) -> Prediction:
    probs = [0.0] * 10
    probs[digit], probs[(digit + 1) % 10] = 0.8, 0.2
    return Prediction(digit, probs, [(digit, 0.8), ((digit + 1) % 10, 0.2)], None, str(digit), seen, score, is_digit)


def test_printable_escapes_control_characters():
    assert printable("a\nb\tc d") == "a\\nb\\tc d"


def test_result_row_of_a_prediction_an_error_and_a_nan():
    row = result_row("x.png", prediction(), classes=[f"c{i}" for i in range(10)])
    assert (
        row["digit"] == 7
        and row["label"] == "c7"
        and row["top_k"][0] == {"digit": 7, "label": "c7", "probability": 0.8}
    )
    assert row["is_digit"] is True and len(row["probabilities"]) == 10
    assert result_row("y.png", UserError("y.png does not exist")) == {"file": "y.png", "error": "y.png does not exist"}
    nan = prediction()
    nan.probabilities[0] = math.nan
    assert "not finite" in result_row("z.png", nan)["error"]


def test_write_results_csv_and_jsonl(tmp_path):
    rows = [result_row("a.png", prediction()), result_row("b.png", UserError("b.png is empty"))]
    write_results(tmp_path / "out.csv", rows)
    table = list(csv.reader((tmp_path / "out.csv").open()))
    assert table[0] == ["file", "digit", "label", "digit_score", "is_digit", *(f"p{d}" for d in range(10)), "error"]
    assert table[1][:3] == ["a.png", "7", "7"] and table[1][5 + 7] == "0.8"
    assert table[2][0] == "b.png" and table[2][-1] == "b.png is empty"
    write_results(tmp_path / "out.jsonl", rows)
    assert [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()] == rows


def test_print_results_answers_on_stdout_errors_on_stderr(capsys):
    rows = [
        result_row("a.png", prediction()),
        result_row("n.png", prediction(score=0.1, is_digit=False)),
        result_row("b.png", UserError("b.png is empty")),
    ]
    print_results(rows, as_json=False)
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("a.png: 7  (7 80.0%, 8 20.0%)")
    assert "n.png: not a digit (score 0.10" in out
    assert err.strip() == "mnistlab: error: b.png is empty"
    print_results(rows, as_json=True)
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == rows


def test_save_seen_writes_each_image_once_even_with_repeated_names(tmp_path):
    seen = np.zeros((28, 28), np.float32)
    seen[5:20, 10:14] = 1.0
    files = ["one/x.png", "two/x.png", "bad.png"]
    results = [prediction(seen=seen), prediction(seen=seen), UserError("bad")]
    rows = [result_row(f, r) for f, r in zip(files, results)]
    save_seen(tmp_path / "seen", files, results, rows)
    assert rows[0]["seen"].endswith("x.png") and rows[1]["seen"].endswith("x-2.png") and "seen" not in rows[2]
    img = np.asarray(Image.open(rows[1]["seen"]))
    assert img.shape == (28, 28) and img[10, 12] == 255 and img[0, 0] == 0
