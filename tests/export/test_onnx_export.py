"""ONNX and torch.export files of a model: parity with PyTorch on MNIST's test images, and their metadata."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from mnistlab.data.download import load_tensors
from mnistlab.errors import UserError
from mnistlab.export.onnx_export import OPSET, OUTPUT, export_onnx, export_program, metadata
from mnistlab.infer.onnx_net import CARD, INPUT


@pytest.fixture(scope="module")
def session(bundled_onnx):
    return ort.InferenceSession(str(bundled_onnx), providers=["CPUExecutionProvider"])


def torch_log_probs(classifier, seen: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return classifier.model(classifier.inputs(seen)).numpy()


def test_onnx_matches_pytorch_on_1000_mnist_test_images(bundled, session, data_dir):
    images, labels = load_tensors(False, data_dir, limit=1000)
    seen = images.numpy().astype(np.float32) / 255  # raw pixels: the graph normalises them itself
    got = session.run([OUTPUT], {INPUT: seen[:, None]})[0]
    want = torch_log_probs(bundled, seen)
    assert got.shape == (1000, 10)
    assert np.abs(got - want).max() <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()
    assert (got.argmax(1) == labels.numpy()).mean() > 0.97  # and it is the trained model, not a random one


def test_onnx_file_has_opset_a_dynamic_batch_and_the_model_card(bundled, bundled_onnx, session):
    model = onnx.load(str(bundled_onnx))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET >= 17
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == (INPUT, OUTPUT)
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [1, 28, 28] and out.shape[1] == 10
    for n in (1, 7):  # any batch size
        assert session.run(None, {INPUT: np.zeros((n, 1, 28, 28), np.float32)})[0].shape == (n, 10)
    props = session.get_modelmeta().custom_metadata_map
    assert json.loads(props[CARD]) == json.loads(json.dumps(bundled.card, default=str))
    assert json.loads(props["classes"]) == bundled.classes == [str(d) for d in range(10)]
    assert float(props["mean"]) == bundled.mean and float(props["std"]) == bundled.std
    assert float(props["temperature"]) == bundled.temperature != 1.0  # the bundled model is calibrated
    assert float(props["digit_threshold"]) == bundled.threshold > 0


def test_torch_export_program_matches_and_keeps_the_metadata(bundled, tmp_path):
    path = export_program(bundled, tmp_path / "m.pt2")
    extra = dict.fromkeys(metadata(bundled), "")
    program = torch.export.load(str(path), extra_files=extra)
    assert extra == metadata(bundled)
    seen = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    with torch.inference_mode():
        got = program.module()(torch.from_numpy(seen[:, None])).numpy()
    assert np.abs(got - torch_log_probs(bundled, seen)).max() <= 1e-5


def test_export_without_the_onnx_package_is_a_user_error(bundled, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(UserError, match=r"pip install 'mnistlab\[onnx\]'"):
        export_onnx(bundled, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
