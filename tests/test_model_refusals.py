"""A model that cannot predict is refused when it is loaded, in one line: non-finite outputs (NaN weights, a diverged
run, extreme card values, an ONNX graph giving NaN) and hostile ONNX graphs, those before onnxruntime reads them."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import hostile_onnx
import onnxruntime
import pytest
from conftest import REPO, one_line_error, run_cli, run_main

import mnistlab
from mnistlab import onnx_check
from mnistlab.checkpoints import atomic_save
from mnistlab.errors import UserError
from mnistlab.weights import read_weights

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
    r = run_cli("serve", "--port", "0", "--model", folder, "--engine", "torch", timeout=120)
    assert "gives NaN or infinite outputs" in one_line_error(r)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    return hostile_onnx.files(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def no_session(monkeypatch):
    """onnxruntime must not even read the file: making a session fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("onnxruntime read a file that should have been refused before")

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("10^8 classes", "declares 100,000,000 classes; a mnistlab ONNX model has 2 to 10,000"),
        ("10^9 classes", "declares 1,000,000,000 classes"),
        ("0 classes", "declares 0 classes"),
        ("1 class", "declares 1 class;"),
        ("N x 784 input", "its one input must be image: batch x 1 x 28 x 28, FLOAT (it has image: batch x 784, FLOAT)"),
        ("float64 input", "(it has image: batch x 1 x 28 x 28, DOUBLE)"),
        ("4 TB ConstantOfShape", "its value 'filled' would hold 1,000,000,000,000 elements"),
        ("ConstantOfShape sized by the pixels", "the size of its value 'filled' cannot be known before it runs"),
        ("Loop of 2^40 steps", "has control flow (Loop)"),
    ],
)
def test_a_hostile_onnx_file_is_refused_before_it_runs(hostile, no_session, case, says):
    assert says in one_line_error(run_main("predict", "--model", hostile[case], SEVEN))


def test_an_onnx_file_whose_output_is_nan_is_refused_at_load(hostile):
    assert "gives NaN or infinite outputs" in one_line_error(
        run_main("predict", "--model", hostile["NaN output"], SEVEN)
    )


def test_the_checks_pass_a_plain_model_and_mnistlabs_export(tmp_path, bundled_onnx):
    """The controls: a plain linear model and the bundled export pass the checks and load."""
    plain = hostile_onnx.write(hostile_onnx.plain(), tmp_path / "plain.onnx")
    assert onnx_check.check_graph(plain, "image") == 10 and onnx_check.check_graph(bundled_onnx, "image") == 10
    assert len(mnistlab.load(plain).predict(SEVEN)[0].probabilities) == 10
    assert mnistlab.load(bundled_onnx).predict(SEVEN)[0].digit == 7


def test_the_file_size_operator_count_and_domain_are_bounded(bundled_onnx, tmp_path, monkeypatch, no_session):
    monkeypatch.setattr(onnx_check, "MAX_FILE_BYTES", 1000)
    with pytest.raises(UserError, match=r"bytes; a mnistlab ONNX model is at most 1,000"):
        mnistlab.load(bundled_onnx)
    monkeypatch.setattr(onnx_check, "MAX_FILE_BYTES", 2**30)
    monkeypatch.setattr(onnx_check, "MAX_NODES", 18)  # the export has 19
    with pytest.raises(UserError, match="has 19 operators; a mnistlab ONNX model has at most 18"):
        mnistlab.load(bundled_onnx)
    model = hostile_onnx.nan_output()
    model.graph.node[0].domain = "com.example"
    with pytest.raises(UserError, match=r"uses the operator com.example.Flatten; only standard ONNX ones run"):
        mnistlab.load(hostile_onnx.write(model, tmp_path / "custom.onnx"))
