"""mnistlab.data.notdigits: the bank of letters, symbols and drawn shapes that outlier exposure trains on."""

from __future__ import annotations

import numpy as np
import torch

from mnistlab.data.notdigits import DRAWN, find_font, mnist_style, render_drawn, render_glyphs


def centred(batch: torch.Tensor) -> bool:
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = batch.sum((1, 2))
    cy, cx = (batch * ys).sum((1, 2)) / mass, (batch * xs).sum((1, 2)) / mass
    return bool(((cy - 14).abs() < 1.5).all() and ((cx - 14).abs() < 1.5).all())


def test_render_drawn_makes_mnist_style_shapes_reproducibly():
    shapes = {k: DRAWN[k] for k in ("X", "triangle")}
    bank = render_drawn(shapes, variants=3, seed=5)
    assert bank.shape == (6, 28, 28) and bank.dtype == torch.float32
    assert bank.min() >= 0 and bank.max() <= 1 and (bank.amax((1, 2)) > 0.5).all()
    assert centred(bank)
    assert torch.equal(bank, render_drawn(shapes, variants=3, seed=5))
    assert not torch.equal(bank, render_drawn(shapes, variants=3, seed=6))


def test_render_glyphs_one_image_per_character_font_and_stroke():
    bank = render_glyphs("xy#", fonts=("DejaVuSans.ttf", "no-such-font.ttf"), strokes=(0, 2))
    assert bank.shape == (6, 28, 28)  # the missing font is skipped (and without DejaVu, Pillow's own stands in)
    assert centred(bank) and (bank.amax((1, 2)) > 0.5).all()
    thin, bold = bank[0], bank[1]  # "x" without, then with a stroke round it
    assert bold.sum() > thin.sum()


def test_mnist_style_of_an_empty_crop_is_black_and_of_a_blob_is_centred():
    a = np.zeros((60, 60), np.float32)
    a[5:25, 30:50] = 1
    out = mnist_style(a)
    assert out.shape == (28, 28) and centred(torch.from_numpy(out)[None])
    assert find_font("no-such-font-at-all.ttf") is None
