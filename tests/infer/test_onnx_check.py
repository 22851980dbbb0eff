"""mnistlab.infer.onnx_check: hostile ONNX graphs (tests/hostile_onnx.py) are refused in one line
before onnxruntime reads them (issue 28, row 7); a plain model and mnistlab's own export pass."""

from __future__ import annotations

from pathlib import Path

import hostile_onnx
import onnxruntime
import pytest
from conftest import REPO, one_line_error, run_main

import mnistlab
from mnistlab.errors import UserError
from mnistlab.infer import onnx_check

SEVEN = REPO / "examples" / "digits" / "seven_pen.png"


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
