"""scripts/make_crops.py: the finder's boxes in a scene labelled by its truth, cropped as reading crops them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from mnistlab.reading import frame
from mnistlab.reading.read import seen_of
from mnistlab.synth import scenes

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import make_crops  # noqa: E402


class Boxes:
    """A stand-in for `Reader`: it finds the boxes it is given."""

    def __init__(self, boxes):
        self.boxes = np.array(boxes, np.float32)

    def find(self, g):
        return self.boxes, np.ones(len(self.boxes), np.float32)


def scene() -> scenes.Scene:
    """Dark ink on light paper: a bar (a "1") and a ring (a "0") as the true digits, a cross as a distractor."""
    g = np.full((120, 200), 0.9, np.float32)
    g[20:60, 28:33] = 0.1
    yy, xx = np.mgrid[:120, :200]
    g[np.abs(np.hypot(yy - 40, xx - 90) - 16) < 3] = 0.1
    g[85:88, 150:180] = g[72:102, 164:167] = 0.1
    image = torch.from_numpy(g).expand(3, -1, -1).clone()
    return scenes.Scene(image, np.array([[28, 20, 33, 60], [71, 21, 110, 60]], np.float32), np.array([1, 0]))


def test_found_boxes_become_labelled_crops_as_reading_makes_them():
    s = scene()
    found = [[27, 19, 34, 61], [150, 72, 180, 102], [90, 21, 130, 60]]  # the "1", the cross, half of the "0"
    seen, labels, skipped = make_crops.crops_of(Boxes(found), s)
    assert labels == [1, -1] and skipped == 1  # the box on half of the ring is neither a digit nor a not-digit
    g = frame.grey(s.image)
    for crop, box in zip(seen, found[:2]):
        expected = seen_of(g, box)
        assert crop.dtype == np.uint8 and crop.shape == (28, 28) and expected is not None
        assert np.array_equal(crop, np.round(expected * 255).astype(np.uint8))
    assert make_crops.crops_of(Boxes(np.zeros((0, 4))), s) == ([], [], 0)
