"""mnistlab.images.photo_path: the rule-based reading of photos and scans into a 28x28 MNIST digit."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import draw_seven
from PIL import Image

from mnistlab.errors import NoDigitError, NoInkError
from mnistlab.images.photo_path import mnistify


def photo(img, noise=0.02, seed=0) -> np.ndarray:
    """A drawing as a photo's gray plane: light falling off across it, and sensor noise (not a clean scan)."""
    g = np.asarray(img, np.float32) / 255
    rng = np.random.default_rng(seed)
    light = np.linspace(0.6, 1.0, g.shape[1], dtype=np.float32)[None, :]
    return np.clip(g * light + rng.normal(0, noise, g.shape).astype(np.float32), 0, 1)


def test_an_mnist_digit_is_used_as_given():
    digit = np.zeros((28, 28), np.float32)
    digit[6:22, 12:16] = 1.0
    assert np.array_equal(mnistify(digit), digit)


def test_a_scan_and_a_photo_become_a_centred_white_on_black_field():
    for g in (np.asarray(draw_seven(), np.float32) / 255, photo(draw_seven(canvas=(240, 240), box=(60, 40, 180, 200)))):
        out = mnistify(g, "seven")
        assert out.shape == (28, 28) and out.dtype == np.float32
        assert out[0].max() == 0 and out.max() == pytest.approx(1.0)  # white on black, nothing on the border
        ys, xs = np.indices(out.shape)
        assert abs(float((out * ys).sum() / out.sum()) - 14) < 1 and abs(float((out * xs).sum() / out.sum()) - 14) < 1


def test_the_photo_path_drops_ruled_lines():
    img = photo(draw_seven(canvas=(240, 240), box=(60, 40, 180, 200), width=12))
    lined = img.copy()
    for y in range(20, 240, 40):
        lined[y : y + 2, :] *= 0.55  # faint ruled lines across the page and the digit
    plain, ruled = mnistify(img), mnistify(lined)
    assert float(np.abs(plain - ruled).mean()) < 0.05


def test_blank_pages_specks_and_rivals_are_refused():
    with pytest.raises(NoInkError, match="blank"):
        mnistify(np.full((100, 100), 0.8, np.float32), "blank.png")
    speck = np.ones((300, 300), np.float32)
    speck[150:152, 150:152] = 0
    with pytest.raises(NoDigitError, match="speck"):
        mnistify(speck, "speck.png")
    two = Image.new("L", (480, 240), 255)
    for left in (0, 240):  # two sevens side by side: which is the digit?
        two.paste(draw_seven(canvas=(240, 240), box=(60, 40, 180, 200)), (left, 0))
    with pytest.raises(NoDigitError, match="marks of a digit's size"):
        mnistify(photo(two), "two.png")
