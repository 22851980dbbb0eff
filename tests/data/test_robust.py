"""The robust recipe's pieces: the on-device augmentation, its not-digit bank and loss (robust.py), and the page
furniture that the preparation drops (furniture.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnistlab.data import notdigits, robust
from mnistlab.data.download import load_tensors
from mnistlab.images import furniture
from mnistlab.pixels import MEAN, STD


@pytest.fixture(scope="module")
def batch(data_dir):
    x, y = load_tensors(True, data_dir, limit=64)
    return ((x.float() / 255 - MEAN) / STD).unsqueeze(1), y.long()


@pytest.fixture(scope="module")
def bank():
    return notdigits.not_digit_bank()


def test_outliers_replace_the_last_rows_and_are_labelled_minus_one(batch, bank):
    x, y = batch
    aug = robust.RobustAugment(MEAN, STD, glyphs=bank)
    out, labels = aug(x, y, torch.Generator().manual_seed(0))
    k = round(0.125 * len(y))
    assert out.shape == x.shape and out.dtype == x.dtype and labels.shape == y.shape
    assert (labels[-k:] == -1).all() and torch.equal(labels[:-k], y[:-k])
    again, _ = aug(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # the generator's draws alone decide it
    other, _ = aug(x, y, torch.Generator().manual_seed(1))
    assert not torch.equal(out, other)
    v = out * STD + MEAN
    assert v.min() >= -1e-5 and v.max() <= 1 + 1e-5


def test_without_corruptions_only_the_affine_moves_the_digits(batch, bank):
    """augment="outliers" (the bundled model's last phase): with no rotation, scale or shift the digits come out as
    they went in, and the not-digits are still there."""
    x, y = batch
    aug = robust.RobustAugment(MEAN, STD, 0.0, 0.0, 0.0, corrupt=False, glyphs=bank)
    out, labels = aug(x, y, torch.Generator().manual_seed(0))
    k = int((labels == -1).sum())
    assert k == round(0.125 * len(y))
    assert torch.allclose(out[:-k], x[:-k], atol=1e-5)
    noisy, _ = robust.RobustAugment(MEAN, STD, 0.0, 0.0, 0.0, glyphs=bank)(x, y, torch.Generator().manual_seed(0))
    assert not torch.allclose(noisy[:-k], x[:-k], atol=1e-3)  # the corruptions do change them


def test_the_bank_is_mnist_style_fonts_and_pen_drawn_shapes(bank):
    drawn = notdigits.render_drawn(variants=2)
    assert len(drawn) == 2 * len(notdigits.DRAWN) and len(bank) > len(drawn)
    for img in drawn.numpy():
        rows, cols = np.flatnonzero(img.max(1) > 0.05), np.flatnonzero(img.max(0) > 0.05)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21  # the longer side scaled to 20 px
        cy = (img.sum(1) * np.arange(28)).sum() / img.sum()
        cx = (img.sum(0) * np.arange(28)).sum() / img.sum()
        assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1


def test_the_criterion_gives_not_digits_a_uniform_target():
    logits = torch.randn(6, 10)
    y = torch.tensor([3, 1, -1, 0, -1, 9])
    out = logits.log_softmax(1)
    got = robust.criterion(out, y, smoothing=0.0, weight=0.5)
    digit = -out[[0, 1, 3, 5], [3, 1, 0, 9]]
    uniform = -out[[2, 4]].mean(1) * 0.5
    assert got == pytest.approx(float(torch.cat([digit, uniform]).sum() / 6), rel=1e-6)
    flat = torch.full((1, 10), -math.log(10))
    assert float(robust.criterion(flat, torch.tensor([-1]), weight=1.0)) == pytest.approx(math.log(10))


def _pixels(draw_on) -> tuple[np.ndarray, np.ndarray]:
    img = Image.new("L", (200, 160), 0)
    draw_on(ImageDraw.Draw(img))
    return np.nonzero(np.asarray(img) > 0)


def test_a_drawn_box_is_a_frame_and_a_zero_is_not():
    box = _pixels(lambda d: d.rectangle((40, 30, 150, 130), outline=255, width=5))
    turned = _pixels(lambda d: d.polygon([(60, 20), (170, 40), (150, 140), (40, 120)], outline=255, width=5))
    zero = _pixels(lambda d: d.ellipse((60, 20, 140, 140), outline=255, width=10))
    # a 0 drawn as a rounded square: its corners' radius half its side (at a third, it would count as a frame)
    squarish = _pixels(lambda d: d.rounded_rectangle((50, 20, 150, 140), radius=50, outline=255, width=10))
    assert furniture.is_frame(*box) and furniture.is_frame(*turned)
    assert not furniture.is_frame(*zero) and not furniture.is_frame(*squarish)


def test_the_sheets_edge_is_furniture_and_a_tight_crop_is_not():
    band = _pixels(lambda d: d.rectangle((0, 0, 199, 18), fill=255))  # the table above the sheet
    corner = _pixels(lambda d: (d.rectangle((0, 0, 199, 12), fill=255), d.rectangle((186, 0, 199, 159), fill=255)))
    seven = _pixels(lambda d: d.line([(0, 8), (195, 8), (90, 159)], fill=255, width=16))  # cropped to its box
    one = _pixels(lambda d: d.line([(100, 0), (100, 159)], fill=255, width=18))
    assert furniture.is_sheet_edge(*band, (160, 200)) and furniture.is_sheet_edge(*corner, (160, 200))
    assert not furniture.is_sheet_edge(*seven, (160, 200)) and not furniture.is_sheet_edge(*one, (160, 200))
