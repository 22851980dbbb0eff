"""mnistlab.ink: the working copy, the ink's polarity, the ink found against the paper, and its groups."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import draw_seven

from mnistlab.errors import NoInkError
from mnistlab.ink import find_ink, groups, polarities, work_copy


def seven(**kw) -> np.ndarray:
    return np.asarray(draw_seven(**kw), np.float32) / 255


def test_work_copy_shrinks_large_images_only():
    small = np.random.default_rng(0).random((100, 80)).astype(np.float32)
    assert work_copy(small) is small
    big = np.ones((2048, 1024), np.float32)
    out = work_copy(big)
    assert out.shape == (512, 256) and np.allclose(out, 1.0)


def test_polarities_dark_ink_light_ink_and_undecided():
    page = seven()  # black ink on white
    assert polarities(page) == [False]
    assert polarities(1 - page) == [True]
    half = np.zeros((10, 10), np.float32)
    half[:, 5:] = 1  # as much light as dark: both are tried
    assert sorted(polarities(half)) == [False, True]


def test_find_ink_finds_the_strokes_and_refuses_a_blank_page():
    v = 1 - seven()  # ink bright
    soft, mask = find_ink(v, "x.png")
    drawn = v > 0.5
    assert (mask & drawn).sum() > 0.95 * drawn.sum() and (mask & ~drawn).sum() < 0.1 * drawn.sum()
    assert soft.dtype == np.float32 and soft.max() == 1.0 and soft[~mask].max() < 1.0
    with pytest.raises(NoInkError, match="blank"):
        find_ink(np.full((100, 100), 0.5, np.float32), "blank.png")


def test_groups_drop_a_frame_and_keep_the_digit():
    v = 1 - seven(canvas=(200, 200), box=(70, 60, 130, 140), width=8)
    v[30:170, 30:34] = v[30:170, 166:170] = v[30:34, 30:170] = v[166:170, 30:170] = 1  # a box around it
    _, mask = find_ink(v, "framed.png")
    inks, furnished = groups(mask)
    assert furnished and inks
    for m in inks.values():
        assert not m[31, 100] and m[60, 100]  # the frame's top side is in no group; the seven's bar is
