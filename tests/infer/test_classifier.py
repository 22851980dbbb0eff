"""mnistlab.infer.classifier: weights loaded (and refused) safely, and a Classifier reading digits in images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import draw_seven
from PIL import Image

from mnistlab.errors import UserError
from mnistlab.infer.classifier import Classifier, Prediction, image_files
from mnistlab.pixels import MEAN, STD


def test_bundled_weights_read_a_drawn_seven(bundled):
    [p] = bundled.predict(draw_seven())
    assert isinstance(p, Prediction) and p.digit == 7 and p.label == "7" and p.is_digit
    assert sum(p.probabilities) == pytest.approx(1.0, abs=1e-4) and len(p.probabilities) == 10
    assert p.top_k[0][0] == 7 and len(p.top_k) == 3 and p.seen.shape == (28, 28) and p.candidate


def test_predict_each_puts_the_error_in_the_place_of_an_unusable_image(bundled):
    blank = Image.new("L", (50, 50), 255)
    seven, error = bundled.predict_each([draw_seven(), blank], top_k=1)
    assert seven.digit == 7 and len(seven.top_k) == 1
    assert isinstance(error, UserError) and "image 1 (the PIL image)" in str(error)
    with pytest.raises(UserError, match="blank"):
        bundled.predict(blank)
    with pytest.raises(UserError, match="top-k must be a whole number from 1 to 10"):
        bundled.predict(draw_seven(), top_k=11)


def test_a_card_sets_classes_temperature_and_normalisation(bundled):
    card = {"classes": list("abcdefghij"), "temperature": 2.0, "recipe": {"mean": 0.5, "std": 0.25}}
    clf = Classifier(bundled.model, torch.device("cpu"), card)
    assert clf.classes == list("abcdefghij") and clf.temperature == 2.0 and (clf.mean, clf.std) == (0.5, 0.25)
    old = Classifier(bundled.model, torch.device("cpu"), {"classes": ["x"], "temperature": "?", "recipe": {"std": 1}})
    assert old.classes == [str(i) for i in range(10)] and old.temperature == 1.0 and old.threshold == 0.0
    assert (old.mean, old.std) == (MEAN, STD)  # a recipe without its mean: MNIST's
    for damaged in ({"temperature": -1}, {"temperature": float("nan")}, {"recipe": {"mean": 0.1, "std": 0}}):
        with pytest.raises(UserError, match="card"):  # a number no card can hold is a damaged card, not a default
            Classifier(bundled.model, torch.device("cpu"), damaged)
    seen = np.zeros((2, 28, 28), np.float32)
    assert torch.allclose(clf.inputs(seen), torch.full((2, 1, 28, 28), -2.0))
    cold = Classifier(bundled.model, torch.device("cpu"), card | {"temperature": 0.5})
    seven = np.asarray(bundled.predict(draw_seven())[0].seen)[None]
    assert clf.probabilities(seven).max() < cold.probabilities(seven).max()  # a higher temperature is less sure


def test_image_files_expands_folders_to_their_images(tmp_path):
    for name in ("b.png", "a.JPG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in image_files(tmp_path)] == ["a.JPG", "b.png"]
    assert image_files(str(tmp_path / "notes.txt")) == [tmp_path / "notes.txt"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no images"):
        image_files([tmp_path / "empty"])
    with pytest.raises(UserError, match="does not exist"):
        image_files([tmp_path / "nope.png"])
