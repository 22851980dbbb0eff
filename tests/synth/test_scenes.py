"""mnistlab.synth.scenes: synthetic scenes whose labels are exact, made from allowed sources only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnistlab.synth import scenes


@pytest.fixture(scope="module")
def sprites(data_dir):
    from mnistlab.data.download import load_tensors

    images, labels = load_tensors(True, data_dir, limit=600)  # MNIST's training split only
    return scenes.load_sprites(images, labels)


def test_every_box_is_tight_around_its_digits_ink(sprites):
    rng = np.random.default_rng(11)
    boxes_seen = 0
    for _ in range(30):
        canvas, boxes, labels = scenes.layout(sprites, rng)
        assert len(boxes) == len(labels) <= scenes.MAX_NUMBERS * scenes.MAX_DIGITS
        assert ((labels >= 0) & (labels <= 9)).all()
        for x0, y0, x1, y1 in boxes.astype(int):
            assert 0 <= x0 < x1 <= scenes.SIZE and 0 <= y0 < y1 <= scenes.SIZE
            ink = canvas[y0:y1, x0:x1] > 0.1
            # tight: ink on each of the box's four sides (the digit's own, as pasted)
            assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
            boxes_seen += 1
    assert boxes_seen > 30


def test_a_digit_alone_is_inside_its_box_and_nothing_is_outside(sprites):
    """Without distractors (no marks), all the ink of a one-number scene lies in the union of its boxes."""
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(20):
        canvas = np.zeros((scenes.SIZE, scenes.SIZE), np.float32)
        boxes, labels, numbers = scenes._numbers(sprites, rng, canvas, scenes.TRAIN)
        covered = np.zeros_like(canvas, bool)
        for x0, y0, x1, y1 in boxes:
            covered[y0:y1, x0:x1] = True
        stray = (canvas > 0.1) & ~covered  # affixes (a "$" or "km") are ink outside any digit's box
        if len(boxes) and not stray.any():
            checked += 1
        assert len(boxes) == len(labels)
    assert checked >= 5


def test_scenes_are_pictures_with_boxes_inside_them(sprites):
    made = scenes.make_scenes(sprites, 8, np.random.default_rng(2))
    again = scenes.make_scenes(sprites, 8, np.random.default_rng(2))
    assert len(made) == 8
    for s, t in zip(made, again):
        assert s.image.shape == (3, scenes.SIZE, scenes.SIZE) and s.image.dtype == torch.float32
        assert 0 <= float(s.image.min()) and float(s.image.max()) <= 1
        assert s.boxes.shape == (len(s.labels), 4)
        assert (s.boxes >= 0).all() and (s.boxes <= scenes.SIZE).all()
        assert torch.equal(s.image, t.image) and np.array_equal(s.boxes, t.boxes)  # one rng, the same scenes
    assert sum(len(s.labels) for s in made) > 0
