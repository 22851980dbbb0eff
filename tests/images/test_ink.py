"""mnistlab.images.ink: the working copy, the ink's polarity, the ink found against the paper, and its groups."""

from __future__ import annotations

from collections import Counter

import hostile
import numpy as np
import pytest
from conftest import draw_seven
from scipy import ndimage

from mnistlab.errors import NoInkError, UserError
from mnistlab.images import furniture, ink, photo_frames, photo_path
from mnistlab.images.field import MAX_PARTS
from mnistlab.images.ink import find_ink, groups, polarities, work_copy
from mnistlab.images.preprocess import candidates


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


# --------------------------------------------------------------------------------------------------------------
# Issue 28, row 1: a picture of thousands of equal ink parts (a 1.1 KB PNG of dots) took 50 s, `_inside_frame`
# comparing every part with every other. The work is counted, not timed: each step that examines parts one by one
# or compares them in pairs is wrapped, and every picture stays within a bound set by MAX_PARTS alone.


def _counting(monkeypatch) -> Counter:
    """Wrap the steps that examine parts: calls per step, and the most parts one call was handed ("... parts")."""
    counts: Counter = Counter()

    def wrap(module, name: str, parts=None) -> None:
        f = getattr(module, name)

        def counted(*args, **kwargs):
            counts[name] += 1
            if parts is not None:
                counts[f"{name} parts"] = max(counts[f"{name} parts"], parts(*args))
            return f(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)

    for name in ("is_frame", "is_sheet_edge"):
        wrap(furniture, name)
    wrap(photo_frames, "elongation")
    wrap(photo_frames, "inside")  # one pair of parts compared
    wrap(photo_frames, "find_frames", lambda parts, *_: len(parts))
    wrap(photo_path, "_choose", lambda parts, *_: len(parts))
    for name in ("_inside_frame", "_main_group"):
        wrap(ink, name, lambda labels, keep: int(np.count_nonzero(keep)))
    return counts


@pytest.mark.parametrize("name", list(hostile.PICTURES))
def test_a_picture_of_many_equal_parts_is_read_within_a_bound_on_counted_work(name, monkeypatch):
    picture = hostile.PICTURES[name]()
    parts = max(ndimage.label(side, structure=np.ones((3, 3), bool))[1] for side in (picture < 128, picture >= 128))
    if "dots" in name or "salt" in name:
        assert parts > 10 * MAX_PARTS  # (what made the reading quadratic: the bound below is exercised)
    counts = _counting(monkeypatch)
    try:
        candidates(hostile.png(picture), name=name)  # read from the PNG's bytes, as `predict` reads a file
    except UserError:
        pass  # refused in one line: a bound on the work is all this test asks
    each = ("_inside_frame parts", "_main_group parts", "find_frames parts", "_choose parts")
    assert all(counts[k] <= MAX_PARTS for k in each[:3]) and counts["_choose parts"] <= 2 * MAX_PARTS, counts
    assert counts["is_frame"] <= 2 * MAX_PARTS and counts["is_sheet_edge"] <= 2 * MAX_PARTS, counts  # 2 polarities
    assert counts["elongation"] <= 2 * MAX_PARTS, counts  # (`photo_path._parts` runs twice where a line is cut)
    assert counts["inside"] <= 2 * MAX_PARTS**2, counts  # pairs compared by `find_frames`
