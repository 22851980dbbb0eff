"""mnistlab.reading.finder_onnx, the reading path on onnxruntime: the finder's ONNX copy against torch, a picture read
without importing torch, a dot picture read with bounded work, and the files it refuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import mnistlab
from mnistlab.errors import UserError
from mnistlab.reading import finder, frame
from mnistlab.reading.finder_onnx import OnnxFinder
from mnistlab.reading.read import Reader, bundled_finder_onnx, load_finder
from mnistlab.store.bundled import bundled_onnx
from mnistlab.synth import scenes

PARITY = 1e-4  # the bound on the finder's ONNX outputs against torch's (max abs difference)

READ_ON_ONNX = """
import json, sys
import mnistlab
from mnistlab.reading.finder_onnx import OnnxFinder
from mnistlab.reading.read import Reader
reader = Reader(mnistlab.load(engine="onnx"))
assert reader.classifier.engine == "onnx" and isinstance(reader.finder, OnnxFinder), reader.finder
r = reader.read(sys.argv[1])
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
print(json.dumps({"number": r.number, "boxes": [d.box for d in r.digits], "found": [d.found for d in r.digits]}))
"""


@pytest.fixture(scope="module")
def made(data_dir) -> list[scenes.Scene]:
    """Generated scenes (MNIST's training split, DejaVu fonts), the first ones of seed 29."""
    from mnistlab.data.download import load_tensors

    images, labels = load_tensors(True, data_dir, limit=600)
    return scenes.make_scenes(scenes.load_sprites(images, labels), 12, np.random.default_rng(29))


@pytest.fixture(scope="module")
def onnx_finder() -> OnnxFinder:
    if not bundled_finder_onnx().is_file():
        pytest.fail("the finder's ONNX copy is not bundled (scripts/bundle_onnx.py finder)")
    return OnnxFinder(bundled_finder_onnx())


def test_the_onnx_finder_gives_torchs_outputs_and_card(made, onnx_finder):
    model, card = load_finder()
    pictures = [frame.grey(s.image) for s in made[:4]]
    pictures += [np.kron(pictures[0], np.ones((3, 2), np.float32)), pictures[1][:100, :180]]  # shrunk; enlarged
    x = np.stack([frame.prepare(g).input for g in pictures])
    with torch.inference_mode():
        want = [t.numpy() for t in model(torch.from_numpy(x))]
    got = onnx_finder(x)  # the whole batch at once (the batch axis is dynamic), then one alone
    alone = onnx_finder(x[-1:])
    for w, g, a in zip(want, got, alone):
        assert g.shape == w.shape and g.dtype == np.float32
        assert float(np.abs(g - w).max()) <= PARITY
        assert float(np.abs(a - w[-1:]).max()) <= PARITY
    assert onnx_finder.card == card and card  # the card made the trip


def test_a_reader_picks_the_finder_of_its_classifiers_engine(bundled):
    on_torch = Reader(bundled)
    assert isinstance(on_torch.finder, finder.Finder)
    assert isinstance(Reader(mnistlab.load(engine="onnx")).finder, OnnxFinder)


def _scene_of_a_number(made) -> scenes.Scene:
    """The first generated scene holding 3 or 4 digits, all on one line."""
    for s in made:
        if 3 <= len(s.labels) <= 4 and np.ptp((s.boxes[:, 1] + s.boxes[:, 3]) / 2) < 10:
            return s
    raise AssertionError("no scene of one 3-4 digit number among the generated ones")


def test_a_picture_is_read_on_onnx_without_torch_as_on_torch(made, bundled, tmp_path):
    scene = _scene_of_a_number(made)
    path = tmp_path / "number.png"
    rgb = (scene.image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(rgb).resize((600, 600), Image.Resampling.BILINEAR).save(path)  # 600 px: the shrinking path
    env = {k: v for k, v in os.environ.items() if k != "MNISTLAB_ENGINE"}
    r = subprocess.run([sys.executable, "-c", READ_ON_ONNX, str(path)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    want = Reader(bundled).read(path)
    assert len(want.digits) >= 3 and got["number"] == want.number
    assert np.abs(np.array(got["boxes"]) - np.array([d.box for d in want.digits])).max() <= 0.05
    assert np.abs(np.array(got["found"]) - np.array([d.found for d in want.digits])).max() <= PARITY
    on_onnx = Reader(mnistlab.load(engine="onnx"))
    assert on_onnx.read(scene.image).number == on_onnx.read(rgb).number  # a tensor is still a picture


def test_a_dot_picture_is_read_on_onnx_with_bounded_work(onnx_finder, tmp_path, monkeypatch):
    """2000 x 2000 px of isolated 1-px dots: one finder batch of INPUT x INPUT inputs (the whole view, the zoomed
    view and at most 2 x 2 tiles of the second look), at most MAX_FOUND crops scored."""
    rng = np.random.default_rng(3)
    page = np.full((2000, 2000), 255, np.uint8)
    ys, xs = np.mgrid[1:2000:4, 1:2000:4]  # one dot at most per 4 x 4 cell, at its centre: never touching
    on = rng.random(ys.shape) < 0.5
    page[ys[on], xs[on]] = 0
    path = tmp_path / "dots.png"
    Image.fromarray(page).save(path)
    inputs: list[tuple[int, ...]] = []
    scored: list[int] = []

    class Counting(OnnxFinder):
        def __call__(self, x):
            inputs.append(x.shape)
            return super().__call__(x)

    classifier = mnistlab.load(engine="onnx")
    probabilities = classifier.probabilities
    monkeypatch.setattr(classifier, "probabilities", lambda seen: scored.append(len(seen)) or probabilities(seen))
    r = Reader(classifier, Counting(bundled_finder_onnx())).read(path)
    assert inputs == [(2 + 4, 2, frame.INPUT, frame.INPUT)]
    assert sum(scored) <= frame.MAX_FOUND and len(r.digits) <= frame.MAX_FOUND


def test_a_finder_file_that_is_missing_unreadable_or_another_model_is_a_user_error(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="no finder at"):
        OnnxFinder(tmp_path / "missing.onnx")
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(UserError, match="is not a readable ONNX model"):
        OnnxFinder(tmp_path / "text.onnx")
    with pytest.raises(UserError, match="is not a mnistlab finder"):
        OnnxFinder(bundled_onnx())  # the classifier's file
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with pytest.raises(UserError, match="needs onnxruntime: pip install onnxruntime"):
        OnnxFinder(bundled_finder_onnx())
