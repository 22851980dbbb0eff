"""A model that gives NaN or infinite outputs is refused when it is loaded, in one line: NaN weights, a diverged run,
extreme card values, an ONNX graph giving NaN (issue 28, row 6)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import hostile_onnx
import pytest
from conftest import REPO, one_line_error, run_cli, run_main

import mnistlab
from mnistlab.errors import UserError
from mnistlab.store.checkpoints import atomic_save
from mnistlab.store.weights import read_weights

SEVEN = REPO / "examples" / "digits" / "seven_pen.png"


def run_folder(folder: Path, change=None, card=None) -> Path:
    """A run folder holding the bundled weights, `change`d, with the bundled card updated by `card`."""
    tensors, meta, _ = read_weights(None)
    tensors = {k: t.clone() for k, t in tensors.items()}
    meta = copy.deepcopy(meta)
    if change:
        change(tensors)
    for key, value in (card or {}).items():
        (meta["recipe"] if key in ("mean", "std") else meta)[key] = value
    folder.mkdir()
    atomic_save(tensors, folder / "model.safetensors", meta)
    return folder


def _nan(tensors):
    tensors["fc2.weight"][3, 7] = float("nan")


def _diverged(tensors):  # finite, but far too large: every output overflows (what lr 10 with momentum 1 leaves)
    for k, t in tensors.items():
        if k.endswith("weight"):
            t.mul_(1e30)


@pytest.mark.parametrize(
    ("change", "card", "says"),
    [
        (_nan, None, "holds NaN or infinite weights"),
        (_diverged, None, "gives NaN or infinite outputs"),
        (None, {"temperature": 1e-300}, r"card has temperature 1e-300; a fitted one lies in \[0.05, 20\]"),
        (None, {"std": 1e-300}, "gives NaN or infinite outputs"),
        (None, {"mean": 1e300}, r"its recipe's mean must be a number in \[0, 1\] or null, not 1e\+300"),
    ],
    ids=["nan-weights", "diverged", "temperature", "std", "mean"],
)
def test_a_model_that_gives_non_finite_outputs_is_refused_at_load(tmp_path, change, card, says):
    folder = run_folder(tmp_path / "run", change, card)
    assert re.search(says, one_line_error(run_main("predict", "--model", folder, SEVEN)))
    with pytest.raises(UserError, match=says):
        mnistlab.load(folder)


def test_the_bundled_card_loads_and_its_values_are_in_range(tmp_path):
    """The control: the same folder, unchanged, predicts."""
    r = run_main("predict", "--model", run_folder(tmp_path / "run"), SEVEN)
    assert r.returncode == 0 and ": 7" in r.stdout, r.stderr


def test_serve_refuses_to_start_with_a_model_of_non_finite_outputs(tmp_path):
    folder = run_folder(tmp_path / "run", _diverged)
    r = run_cli("serve", "--port", "0", "--model", folder, "--engine", "torch", timeout=600)
    assert "gives NaN or infinite outputs" in one_line_error(r)


def test_an_onnx_file_whose_output_is_nan_is_refused_at_load(tmp_path):
    assert "gives NaN or infinite outputs" in one_line_error(
        run_main("predict", "--model", hostile_onnx.write(hostile_onnx.nan_output(), tmp_path / "nan.onnx"), SEVEN)
    )


def test_a_torch_model_of_more_than_max_classes_is_refused():
    from mnistlab.infer.classifier import Classifier
    from mnistlab.infer.onnx_check import MAX_CLASSES
    from mnistlab.model import Net

    with pytest.raises(UserError, match=f"has {MAX_CLASSES + 1:,} classes; a mnistlab model has at most"):
        Classifier(Net(num_classes=MAX_CLASSES + 1), "cpu")
    assert len(Classifier(Net(num_classes=MAX_CLASSES), "cpu").classes) == MAX_CLASSES
