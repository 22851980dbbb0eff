"""mnistlab.synth.sprites: scenes are drawn from allowed sources only, digits and not-digits apart."""

from __future__ import annotations

import numpy as np

from mnistlab.synth import sprites


def test_only_dejavu_fonts_make_scenes():
    fonts = sprites.dejavu_fonts()
    assert fonts, "DejaVu is installed here (fonts-dejavu-core)"
    for held_out in ("Liberation", "Free", "Script", "Hand", "Math"):  # evaluation fonts are never training data
        assert not any(held_out in f for f in fonts)


def test_sprites_are_cropped_ink_and_distractors_hold_no_digit():
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 5:20, 10:14] = 255
    made = sprites.load_sprites(images, np.array([1, 1, 1]), fonts=sprites.dejavu_fonts()[:1])
    assert [d for _, d in made.printed] == list(range(10))
    for ink, _ in made.printed:
        assert ink.dtype == np.float32 and ink.max() > 0.5
        assert ink[0].max() > 0.1 and ink[-1].max() > 0.1 and ink[:, 0].max() > 0.1 and ink[:, -1].max() > 0.1
    assert not set("0123456789") & set(sprites.DISTRACT + "".join(sprites.WORDS))
    assert len(made.others) >= len(sprites.DISTRACT)  # every character, the words and the drawn shapes


def test_crop_finds_the_ink_or_none():
    a = np.zeros((10, 10), np.float32)
    assert sprites.crop(a) is None
    a[2:5, 3:7] = 1
    assert sprites.crop(a).shape == (3, 4)
