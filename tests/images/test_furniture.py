"""mnistlab.images.furniture: frames, the sheet's edge and ruled paper told from a digit's ink."""

from __future__ import annotations

import numpy as np
from conftest import draw_seven
from scipy import ndimage

from mnistlab.images.furniture import furniture, is_frame, is_sheet_edge, only_ruled_lines


def seven_mask(size=200) -> np.ndarray:
    return np.asarray(draw_seven(canvas=(size, size))) < 128


def box_mask(size=200, lo=30, hi=170, width=4) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[lo:hi, lo:hi] = True
    m[lo + width : hi - width, lo + width : hi - width] = False
    return m


def test_a_drawn_box_is_a_frame_and_a_seven_or_a_ring_is_not():
    assert is_frame(*np.nonzero(box_mask()))
    assert not is_frame(*np.nonzero(seven_mask()))
    ys, xs = np.indices((200, 200))
    ring = np.abs(np.hypot(ys - 100, xs - 100) - 60) < 3  # a round 0
    assert not is_frame(*np.nonzero(ring))


def test_a_turned_box_is_still_a_frame():
    turned = ndimage.rotate(box_mask().astype(float), 20, reshape=False, order=0) > 0.5
    assert is_frame(*np.nonzero(turned))


def test_the_sheets_edge_lies_along_a_side_and_a_digit_does_not():
    edge = np.zeros((200, 200), bool)
    edge[:, :15] = True  # the table beyond the left edge
    assert is_sheet_edge(*np.nonzero(edge), edge.shape)
    assert not is_sheet_edge(*np.nonzero(seven_mask()), (200, 200))
    assert not is_sheet_edge(*np.nonzero(edge[:40, :15]), (40, 40))  # a crop is no page


def test_furniture_marks_the_frame_part_only():
    mask = box_mask() | (np.asarray(draw_seven(canvas=(200, 200), box=(70, 60, 130, 140), width=8)) < 128)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    assert n == 2
    found = furniture(labels, np.array([False, True, True]))
    frame = labels[30, 100]
    assert found[frame] and found.sum() == 1 and not found[0]


def test_only_ruled_lines():
    page = np.zeros((200, 200), bool)
    for y in (50, 100, 150):
        page[y : y + 2, :] = True
    assert only_ruled_lines(page, page)
    assert not only_ruled_lines(page | seven_mask(), page)
    assert not only_ruled_lines(page[:52], page[:52])  # one line is not ruled paper
