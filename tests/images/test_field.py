"""mnistlab.images.field: the 28x28 MNIST field (20 px box, centre of mass at 14, 14) and the shapes no digit has."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import centre_of_mass

from mnistlab.errors import NoDigitError
from mnistlab.images.field import BOX, FIELD, bbox, check_shape, largest, stroke_width, to_field


def test_to_field_scales_the_longer_side_to_the_box_and_centres_the_mass():
    crop = np.zeros((100, 50), np.float32)
    crop[:, 20:30] = 1.0  # a thick upright bar, twice as tall as its crop is wide
    out = to_field(crop)
    assert out.shape == (FIELD, FIELD) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    r0, r1, _, _ = bbox(out > 0.05)
    assert abs((r1 - r0) - BOX) <= 1
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) < 0.6 and abs(cx - 14) < 0.6


def test_to_field_thickens_thin_strokes_only_when_asked():
    crop = np.zeros((400, 400), np.float32)
    crop[:, 199:201] = 1.0  # a 2-px line on a 400-px crop: 0.1 px once scaled
    crop[0:2, :] = 1.0
    assert (to_field(crop) > 0.5).sum() > 2 * (to_field(crop, thick=False) > 0.5).sum()


def test_bbox_and_stroke_width():
    a = np.zeros((10, 12))
    a[2:5, 3:11] = 1
    assert bbox(a) == (2, 5, 3, 11)
    bar = np.zeros((200, 200), np.float32)
    bar[:, 100:104] = 1
    assert stroke_width(bar) == pytest.approx(4.0, rel=0.1)


@pytest.mark.parametrize(
    "ink, image, why",
    [((2, 2), (2, 100), "strip"), ((2, 2), (200, 200), "speck"), ((2, 400), (500, 500), "line")],
)
def test_check_shape_refuses_what_no_digit_makes(ink, image, why):
    with pytest.raises(NoDigitError, match=why):
        check_shape(ink, image, "x.png", min_ink=3)
    check_shape((20, 12), (200, 200), "x.png", min_ink=3)  # a digit's box passes


def test_largest_keeps_the_largest_parts_and_of_equal_ones_the_first():
    areas = np.array([0, 5, 9, 5, 1, 9, 5])
    keep = np.array([False, True, True, True, True, True, False])
    assert largest(areas, keep, limit=3).tolist() == [False, True, True, False, False, True, False]
    assert largest(areas, keep, limit=5) is keep  # no more than the limit: as it was
