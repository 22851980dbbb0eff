"""mnistlab.images.gray: images and arrays of every kind as one plane of floats in [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mnistlab.errors import UserError
from mnistlab.images.gray import array_to_gray, to_grayscale


def test_to_grayscale_of_the_common_modes():
    assert to_grayscale(Image.new("L", (3, 2), 255)).tolist() == [[1.0] * 3] * 2
    rgb = to_grayscale(Image.new("RGB", (2, 2), (255, 0, 0)))
    assert rgb.shape == (2, 2) and rgb.dtype == np.float32 and rgb[0, 0] == pytest.approx(0.299, abs=1e-3)
    assert to_grayscale(Image.new("I;16", (2, 2), 65535)).max() == pytest.approx(1.0)
    assert to_grayscale(Image.new("1", (2, 2), 0)).max() == 0.0


def test_transparency_is_composited_onto_a_contrasting_background():
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))  # transparent, with black ink in the middle
    img.paste((0, 0, 0, 255), (3, 3, 7, 7))
    g = to_grayscale(img)
    assert g[0, 0] == pytest.approx(1.0) and g[5, 5] == pytest.approx(0.0)
    light = Image.new("LA", (10, 10), (255, 0))
    light.paste((255, 255), (3, 3, 7, 7))  # white ink on transparent goes onto black
    g = to_grayscale(light)
    assert g[0, 0] == pytest.approx(0.0) and g[5, 5] == pytest.approx(1.0)


def test_float_images_with_nan_are_refused():
    with pytest.raises(UserError, match="NaN"):
        to_grayscale(Image.fromarray(np.array([[0.0, np.nan]], np.float32), mode="F"))


def test_array_to_gray_scales_by_the_nominal_range():
    assert array_to_gray(np.array([[0, 255]], np.uint8), "a").tolist() == [[0.0, 1.0]]
    assert array_to_gray(np.array([[0, 128]], np.int64), "a").tolist() == [[0.0, pytest.approx(128 / 255)]]
    assert array_to_gray(np.array([[0.0, 0.5]]), "a").tolist() == [[0.0, 0.5]]
    assert array_to_gray(np.array([[-3.0, 1.0]]), "a").tolist() == [[0.0, 1.0]]  # min-max otherwise
    assert array_to_gray(np.array([[True, False]]), "a").tolist() == [[1.0, 0.0]]


def test_array_to_gray_takes_torch_layout_and_colour():
    t = torch.zeros(1, 3, 4, 5)  # N=1, C, H, W
    assert array_to_gray(t, "t").shape == (4, 5)
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 1] = 255
    assert array_to_gray(rgb, "a")[0, 0] == pytest.approx(0.587, abs=1e-3)


@pytest.mark.parametrize(
    "array, why",
    [
        (np.array([["a"]]), "unsupported array type"),
        (np.zeros((2, 3, 4, 5)), "has shape"),
        (np.zeros((0, 4)), "is empty"),
        (np.array([[np.inf, 0.0]]), "NaN or infinite"),
    ],
)
def test_array_to_gray_refuses_what_is_no_image(array, why):
    with pytest.raises(UserError, match=why):
        array_to_gray(array, "the array")
