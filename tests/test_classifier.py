"""mnistlab.classifier: weights loaded (and refused) safely, and a Classifier reading digits in images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import draw_seven
from PIL import Image
from safetensors.torch import save_file

from mnistlab.classifier import Classifier, Prediction, image_files, load_model, read_weights, transfer_weights
from mnistlab.errors import UserError
from mnistlab.model import Net


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
    bad = Classifier(bundled.model, torch.device("cpu"), {"classes": ["x"], "temperature": -1, "recipe": {"std": 0}})
    assert bad.classes == [str(i) for i in range(10)] and bad.temperature == 1.0 and bad.threshold == 0.0
    seen = np.zeros((2, 28, 28), np.float32)
    assert torch.allclose(clf.inputs(seen), torch.full((2, 1, 28, 28), -2.0))
    cold = Classifier(bundled.model, torch.device("cpu"), card | {"temperature": 0.5})
    seven = np.asarray(bundled.predict(draw_seven())[0].seen)[None]
    assert clf.probabilities(seven).max() < cold.probabilities(seven).max()  # a higher temperature is less sure


def test_weights_that_do_not_fit_are_refused(tmp_path):
    state = Net().state_dict()
    save_file({k: v.contiguous() for k, v in state.items() if k != "fc2.bias"}, tmp_path / "missing.safetensors")
    with pytest.raises(UserError, match="1 missing"):
        load_model(tmp_path / "missing.safetensors")
    nan = {k: v.clone().contiguous() for k, v in state.items()}
    nan["fc1.weight"][0, 0] = float("nan")
    save_file(nan, tmp_path / "nan.safetensors")
    with pytest.raises(UserError, match="NaN or infinite"):
        load_model(tmp_path / "nan.safetensors")
    torch.save(state, tmp_path / "pickle.pt")
    with pytest.raises(UserError, match="not a valid safetensors"):
        read_weights(tmp_path / "pickle.pt")
    with pytest.raises(UserError, match="does not exist"):
        read_weights(tmp_path / "nowhere")


def test_transfer_weights_keeps_a_new_head(tmp_path):
    ten = Net()
    save_file({k: v.contiguous() for k, v in ten.state_dict().items()}, tmp_path / "w.safetensors")
    five = Net(num_classes=5)
    head = five.fc2.weight.detach().clone()
    line = transfer_weights(five, tmp_path / "w.safetensors")
    assert "10-class head replaced by a new 5-class one" in line
    assert torch.equal(five.fc2.weight, head) and torch.equal(five.fc1.weight, ten.fc1.weight)


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
