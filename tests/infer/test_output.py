"""mnistlab.infer.output: result rows, the CSV and JSON Lines files, the printed lines and the saved 28x28 images."""

from __future__ import annotations

import csv
import json
import math
import os

import numpy as np
import pytest
from conftest import REPO, one_line_error, run_main
from PIL import Image

from mnistlab.errors import UserError
from mnistlab.infer import output
from mnistlab.infer.classifier import Prediction
from mnistlab.infer.output import check_show, escaped, print_results, printable, result_row, save_seen, write_results


def prediction(digit=7, score=0.9, is_digit=True, seen=None) -> Prediction:
    probs = [0.0] * 10
    probs[digit], probs[(digit + 1) % 10] = 0.8, 0.2
    return Prediction(digit, probs, [(digit, 0.8), ((digit + 1) % 10, 0.2)], None, str(digit), seen, score, is_digit)


SEVEN = REPO / "examples" / "digits" / "seven_pen.png"


def test_printable_escapes_control_characters():
    assert printable("a\nb\tc d") == "a\\nb\\tc d"
    assert escaped("x\x1b[31mRED\r\n.png") == "x\\x1b[31mRED\\r\\n.png" and escaped("ünï côdé 7") == "ünï côdé 7"


def test_a_name_with_a_newline_or_an_ansi_escape_stays_one_escaped_cell_and_line(tmp_path, capsys):
    """Issue 28, minor: such a name was written raw into --output's CSV (a forged row) and a terminal's colours."""
    name = "evil\n7,forged\x1b[31m.png"
    rows = [result_row(name, prediction()), result_row(name, UserError(f"{name} is empty"))]
    write_results(tmp_path / "out.csv", rows)
    text = (tmp_path / "out.csv").read_text()
    assert "\x1b" not in text and len(text.splitlines()) == 3  # the header and one line a row
    table = list(csv.reader(text.splitlines()))
    assert table[1][0] == table[2][0] == "evil\\n7,forged\\x1b[31m.png"
    assert table[2][-1] == "evil\\n7,forged\\x1b[31m.png is empty"
    print_results(rows, as_json=False)
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and len(out.splitlines()) == len(err.splitlines()) == 1


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
    header = ["file", "digit", "label", "digit_score", "is_digit", "number", *(f"p{d}" for d in range(10)), "error"]
    assert table[0] == header
    assert table[1][:3] == ["a.png", "7", "7"] and table[1][6 + 7] == "0.8"
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


def _seen(seen):
    results = [prediction(seen=seen)]
    return results, [result_row("x.png", r) for r in results]


def test_show_replaces_only_what_an_earlier_show_wrote(tmp_path):
    seen = np.zeros((28, 28), np.float32)
    folder = tmp_path / "seen"
    results, rows = _seen(seen)
    save_seen(folder, ["a/x.png"], results, rows, check_show(folder, ["a/x.png"]))
    first = (folder / "x.png").read_bytes()
    seen[3:9, 3:9] = 1.0
    results, rows = _seen(seen)
    save_seen(folder, ["a/x.png"], results, rows, check_show(folder, ["a/x.png"]))  # a rerun: its own image replaced
    assert (folder / "x.png").read_bytes() != first and sorted(os.listdir(folder)) == ["x.png"]
    (folder / "y.png").write_bytes(first.replace(output.SEEN_MARK.encode(), b"someone else's app."))
    (folder / "z.png").mkdir()
    for name in ("y.png", "z.png"):
        with pytest.raises(UserError, match="--show would replace"):
            check_show(folder, [f"a/{name}"])


def _tree(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_predict_show_in_the_images_own_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    """Issue 28, row 4: `predict --show .` in the photos' folder replaced them by their 28x28 renderings, exit 0."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("seven.png", "again.png"):
        (photos / name).write_bytes(SEVEN.read_bytes())
    before = _tree(tmp_path)
    loads = []
    monkeypatch.setattr("mnistlab.infer.classifier.load", lambda *a, **k: loads.append(a))
    for args in (["."], ["seven.png", "again.png"], [photos, "--show", "."]):
        show = [] if "--show" in args else ["--show", "."]
        msg = one_line_error(run_main("predict", *args, *show, cwd=photos))
        assert "is the folder of" in msg, msg
    assert _tree(tmp_path) == before and loads == []  # refused before the model was loaded


def test_predict_show_never_writes_through_a_link_in_dir(tmp_path, monkeypatch):
    """Issue 28, row 4: a link out/x.png -> ../victim.txt turned victim.txt into a PNG."""
    (tmp_path / "victim.txt").write_text("the user's notes\n")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.png").write_bytes(SEVEN.read_bytes())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.png").symlink_to("../victim.txt")
    (tmp_path / "out" / "y.png").symlink_to("../nothing-yet.png")  # a dangling link: nothing to create through it
    (tmp_path / "in" / "y.png").write_bytes(SEVEN.read_bytes())
    before = _tree(tmp_path)
    loads = []
    monkeypatch.setattr("mnistlab.infer.classifier.load", lambda *a, **k: loads.append(a))
    for image in ("in/x.png", "in/y.png"):
        msg = one_line_error(run_main("predict", image, "--show", "out", cwd=tmp_path))
        assert "a link" in msg, msg
    assert _tree(tmp_path) == before and loads == [] and not (tmp_path / "nothing-yet.png").exists()
    assert os.readlink(tmp_path / "out" / "x.png") == "../victim.txt"


def test_save_seen_replaces_a_link_planted_after_the_check_never_its_target(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    folder = tmp_path / "out"
    results, rows = _seen(np.ones((28, 28), np.float32))
    paths = check_show(folder, ["a/x.png"])
    folder.mkdir()
    (folder / "x.png").symlink_to(victim)  # between the check and the write
    save_seen(folder, ["a/x.png"], results, rows, paths)
    assert victim.read_text() == "keep me\n" and not (folder / "x.png").is_symlink()
    assert Image.open(folder / "x.png").size == (28, 28) and sorted(os.listdir(folder)) == ["x.png"]
