"""mnistlab.store.bundled: the model that ships in the package, as safetensors and as ONNX, the two agreeing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mnistlab
from mnistlab.data.download import load_tensors
from mnistlab.store.bundled import bundled_onnx, bundled_weights


@pytest.fixture(scope="module")
def bundled_on_onnx():
    return mnistlab.load(engine="onnx")


def test_the_bundled_onnx_copy_matches_the_safetensors_on_1000_mnist_test_images(bundled, bundled_on_onnx, data_dir):
    images, labels = load_tensors(False, data_dir, limit=1000)
    seen = images.numpy().astype(np.float32) / 255
    got = bundled_on_onnx.model(seen)
    with torch.inference_mode():
        want = bundled.model(bundled.inputs(seen)).numpy()
    assert got.shape == want.shape == (1000, 10)
    assert np.abs(got - want).max() <= 1e-4
    assert (got.argmax(1) == want.argmax(1)).all()
    assert (got.argmax(1) == labels.numpy()).mean() > 0.99  # the bundled model, not another one
    assert bundled_on_onnx.card == json.loads(json.dumps(bundled.card, default=str))  # not a stale copy
    assert bundled_onnx().parent == bundled_weights().parent and bundled_onnx().stat().st_size < 5_000_000
