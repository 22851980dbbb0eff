"""`mnistlab.load("model.onnx")`: an ONNX file read by onnxruntime gives the torch classifier's readings."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import REPO, draw_seven

import mnistlab
from mnistlab.errors import UserError
from mnistlab.infer.classifier import Classifier
from mnistlab.infer.onnx_net import OnnxNet

DIGITS = sorted(p for p in (REPO / "examples" / "digits").glob("*.png") if p.name != "blank.png")


@pytest.fixture(scope="module")
def onnx_classifier(bundled_onnx):
    return mnistlab.load(bundled_onnx)


def test_load_onnx_gives_a_classifier_with_the_stored_card(bundled, bundled_onnx, onnx_classifier):
    c = onnx_classifier
    assert isinstance(c, Classifier) and isinstance(c.model, OnnxNet)
    assert c.source == str(bundled_onnx) and c.classes == bundled.classes
    assert (c.temperature, c.threshold, c.mean, c.std) == (
        bundled.temperature,
        bundled.threshold,
        bundled.mean,
        bundled.std,
    )
    assert c.card["classes"] == bundled.card["classes"] and c.card.get("recipe") == bundled.card.get("recipe")


def test_onnx_reads_images_exactly_like_torch(bundled, onnx_classifier):
    rng = np.random.default_rng(1)
    images = [*DIGITS, draw_seven(), np.asarray(draw_seven(mode="L")), rng.random((28, 28), dtype=np.float32)]
    want, got = bundled.predict(images, top_k=3), onnx_classifier.predict(images, top_k=3)
    assert len(got) == len(want) == len(images)
    for g, w in zip(got, want):
        assert (g.digit, g.label, g.candidate, g.is_digit, g.source) == (
            w.digit,
            w.label,
            w.candidate,
            w.is_digit,
            w.source,
        )
        assert [d for d, _ in g.top_k] == [d for d, _ in w.top_k]
        assert np.abs(np.array(g.probabilities) - w.probabilities).max() <= 1e-4
        assert abs(g.digit_score - w.digit_score) <= 1e-4 and np.array_equal(g.seen, w.seen)


def test_onnx_refuses_images_as_torch_does(bundled, onnx_classifier):
    blank = REPO / "examples" / "digits" / "blank.png"
    (g,), (w,) = onnx_classifier.predict_each([blank]), bundled.predict_each([blank])
    assert isinstance(g, UserError) and str(g) == str(w)


def test_a_missing_or_non_onnx_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        mnistlab.load(tmp_path / "missing.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(UserError, match="is not a readable ONNX model"):
        mnistlab.load(tmp_path / "text.onnx")


def test_onnx_needs_onnxruntime_and_the_cpu(bundled_onnx, monkeypatch):
    with pytest.raises(UserError, match="runs on the CPU"):
        mnistlab.load(bundled_onnx, device="cuda")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with pytest.raises(UserError, match=r"needs onnxruntime: pip install onnxruntime"):
        mnistlab.load(bundled_onnx)


def test_an_onnx_file_of_another_model_is_a_user_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "other.onnx"))
    with pytest.raises(UserError, match="is not a mnistlab ONNX model"):
        mnistlab.load(tmp_path / "other.onnx")
