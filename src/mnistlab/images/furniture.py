"""Page furniture in an ink mask: drawn frames, the sheet's edge and ruled paper, which no digit is made of.

`preprocess` drops these parts from every candidate reading. Each test looks at one connected part's pixels:

- a frame is a part whose ink lies along the four sides of a box (turned up to `TURNS` degrees) and covers nearly
  all of each side; a handwritten 0, even a squarish one, touches its box only around the middle of each side;
- the sheet's edge (the table beyond it, a shadow's rim) is a part lying in a band along one side of the image and
  covering much of that side; a digit cropped tight touches the sides too, but most of its ink is away from them;
- ruled paper is two or more long straight lines (`ink._lines`) with nothing else on the page.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FRAME_BAND = 0.15  # a frame's ink lies within this fraction of its box's shorter side from the box's edges ...
FRAME_NEAR = 0.9  # ... this share of it at least ...
FRAME_COVER = 0.85  # ... and it covers this share of each of the box's four sides (in 20 bins along each)
FRAME_MIN = 12  # a box under this many px on a side is a stroke or a speck, not a frame
TURNS = np.arange(-30, 31, 3)  # the turns tried for a frame drawn or photographed askew, in degrees
EDGE_BAND = 0.15  # the sheet's edge lies within this fraction of the image's side from one of its sides ...
EDGE_SHARE = 0.9  # ... this share of its ink at least, ...
EDGE_COVER = 0.4  # ... along this share of that side at least
CROP_SIDE = 64  # an image under this on its shorter side is a crop of a digit, not a page (its border ink is ink)
RULED_REST = 0.05  # a page whose ink is 2+ long lines and under this much else (of their area) is ruled paper
SAMPLE = 4000  # a frame test looks at this many of a part's pixels at most


def is_frame(ys: np.ndarray, xs: np.ndarray) -> bool:
    """Whether a part's pixels (row and column indices) draw a box's four sides."""
    pts = np.stack([ys, xs], axis=1).astype(np.float64)
    if len(pts) > SAMPLE:
        pts = pts[np.linspace(0, len(pts) - 1, SAMPLE).astype(int)]
    pts -= pts.mean(axis=0)
    for deg in TURNS:
        t = np.deg2rad(deg)
        r = pts @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        lo, hi = r.min(axis=0), r.max(axis=0)
        if (hi - lo).min() < FRAME_MIN:
            return False
        band = FRAME_BAND * (hi - lo).min()
        gaps = np.concatenate([r - lo, hi - r], axis=1)  # distance to the top, left, bottom and right sides
        if (gaps.min(axis=1) <= band).mean() < FRAME_NEAR:
            continue
        covered = []
        for side in range(4):
            along = 1 - side % 2  # the top and bottom sides run along the columns, the left and right along rows
            on = r[gaps[:, side] <= band, along]
            hist = np.histogram(on, bins=20, range=(lo[along], hi[along]))[0]
            covered.append((hist > 0).mean())
        if min(covered) >= FRAME_COVER:
            return True
    return False


def is_sheet_edge(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether a part lies along one side of the image, or two that meet at a corner, and covers much of each: the
    table beyond the sheet's edge, a shadow's rim. (A digit cropped tight touches the sides too, but most of its ink
    is away from them.)"""
    h, w = shape
    if min(h, w) < CROP_SIDE:
        return False
    bands = [  # (the part's pixels near the side, where along the side they are, the side's length)
        (ys < EDGE_BAND * h, xs, w), (xs >= w - EDGE_BAND * w, ys, h),  # top, right
        (ys >= h - EDGE_BAND * h, xs, w), (xs < EDGE_BAND * w, ys, h),  # bottom, left
    ]  # fmt: skip
    covers = [len(np.unique(along[near])) >= EDGE_COVER * length for near, along, length in bands]
    for i in range(4):
        for sides in ((i,), (i, (i + 1) % 4)):  # one side, or it and the next (a corner)
            near = np.logical_or.reduce([bands[k][0] for k in sides])
            if all(covers[k] for k in sides) and near.mean() >= EDGE_SHARE:
                return True
    return False


def furniture(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """[is furniture] for each label of `labels` (index 0, the background, is False), tested on the kept parts."""
    out = np.zeros(len(keep), bool)
    boxes = ndimage.find_objects(labels)
    for k in np.flatnonzero(keep[1:]) + 1:
        box = boxes[k - 1]
        if box is None:
            continue
        ys, xs = np.nonzero(labels[box] == k)
        ys, xs = ys + box[0].start, xs + box[1].start
        out[k] = is_sheet_edge(ys, xs, labels.shape) or is_frame(ys, xs)
    return out


def only_ruled_lines(mask: np.ndarray, lines: np.ndarray) -> bool:
    """Whether the ink is two or more long lines (`lines`, a mask) and nothing else (RULED_REST)."""
    n = ndimage.label(mask & lines, structure=np.ones((3, 3), bool))[1]
    rest = np.count_nonzero(mask & ~lines)
    return bool(n >= 2 and rest < RULED_REST * np.count_nonzero(mask & lines))
