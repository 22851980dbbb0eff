"""mnistlab.images.photo_frames: a photo's parts, ruled lines and frames (for photo_path)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import draw_seven
from scipy import ndimage

from mnistlab.images import photo_frames
from mnistlab.images.photo_frames import Part, elongation, find_frames, inside, line_pixels, rectangularity


def parts_of(mask: np.ndarray) -> tuple[np.ndarray, list[Part]]:
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    boxes = ndimage.find_objects(labels)
    return labels, [Part(k, int((labels == k).sum()), b) for k, b in enumerate(boxes, start=1)]


def test_elongation_of_a_line_and_a_square():
    line = np.zeros((50, 200), bool)
    line[25:27, 10:190] = True
    ratio, angle = elongation(line)
    assert ratio > 50 and abs(angle) < 1
    ratio, _ = elongation(line.T)
    square = np.ones((20, 20), bool)
    assert elongation(square)[0] == pytest.approx(1.0, abs=0.05)


def test_rectangularity_of_a_box_a_turned_box_and_a_disc():
    assert rectangularity(np.ones((30, 50), bool)) == pytest.approx(1.0)
    turned = ndimage.rotate(np.pad(np.ones((30, 50)), 30), 21, order=0) > 0.5
    assert rectangularity(turned) > 0.9
    ys, xs = np.indices((101, 101))
    assert rectangularity(np.hypot(ys - 50, xs - 50) <= 45) == pytest.approx(np.pi / 4, abs=0.05)


def test_inside():
    outer = (slice(0, 100), slice(0, 100))
    assert inside((slice(10, 20), slice(10, 20)), outer, room=5)
    assert not inside((slice(2, 20), slice(10, 20)), outer, room=5)


def test_a_box_around_a_digit_is_a_frame_and_the_digit_is_not():
    mask = np.zeros((200, 200), bool)
    mask[20:180, 20:180] = True
    mask[24:176, 24:176] = False
    mask |= np.asarray(draw_seven(canvas=(200, 200), box=(70, 60, 130, 140), width=8)) < 128
    labels, parts = parts_of(mask)
    assert len(parts) == 2
    assert find_frames(parts, labels, speck=4) == []  # nothing peeled: the seven does not touch the box
    kinds = {labels[20, 100]: "frame", labels[60, 100]: ""}
    assert {p.label: p.kind for p in parts} == kinds


def test_line_pixels_keep_the_strokes_crossing_a_ruled_line():
    ink = np.zeros((100, 300), bool)
    ink[50:52, :] = True  # a ruled line, 2 px thick
    ink[20:90, 140:150] = True  # a pen stroke across it, 10 px wide
    lines = line_pixels(ink, width=3)
    assert lines[50, 10] and lines[51, 290] and not lines[50, 145] and not lines[30, 145]


def test_peeled_pieces_are_cut_to_the_largest_max_parts_in_their_order(monkeypatch):
    monkeypatch.setattr(photo_frames, "MAX_PARTS", 3)
    box = (slice(0, 1), slice(0, 1))
    parts = [Part(k, area, box) for k, area in enumerate([4, 9, 1, 9, 7], start=1)]
    assert [p.label for p in photo_frames._largest(parts)] == [2, 4, 5]
    assert photo_frames._largest(parts[:3]) == parts[:3]


def test_rectangularity_of_a_filled_shape_from_its_outline():
    square = np.ones((10, 10), bool)
    assert rectangularity(square) == pytest.approx(1.0)
    yy, xx = np.indices((61, 61))
    disc = (yy - 30) ** 2 + (xx - 30) ** 2 <= 30**2
    assert rectangularity(disc) == pytest.approx(np.pi / 4, abs=0.02)
