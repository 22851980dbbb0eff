"""Finding the ink in a working copy of a user image: its polarity, a local threshold against the paper, and its
parts grouped into the inks of `preprocess`'s candidates (page furniture dropped: `furniture.py`)."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from skimage.filters import apply_hysteresis_threshold

from mnistlab.errors import NoInkError
from mnistlab.images import furniture
from mnistlab.images.field import largest

WORK_SIDE = 512  # the working copy's longer side at most (a digit 5% of a photo's side is still 25 px there)
SMOOTH_SIDE = 64  # reduced working copies at least this large are smoothed (Gaussian, sigma 1 px)
POLARITY = 1.5  # one side must stand out this many times more than the other to decide the polarity alone
PAPER = 1 / 3  # the paper's window: strokes thinner than this fraction of the shorter side are ink, wider is paper
MIN_CONTRAST = 0.08  # the typical ink must stand out from the paper by this much (0..1 scale) ...
NOISE = 5.0  # ... and by this many robust standard deviations of the noise
LOW, HIGH = 0.25, 0.5  # hysteresis: ink is above LOW x the typical ink, connected to pixels above HIGH x
SPECK = 0.02  # parts under this fraction of the largest part's area are specks
LINE = 0.6  # a straight run of ink this fraction of the image's side long is a line (ruled, squared, margin, frame)
SPAN = 0.85  # ... when the runs, joined, cross this fraction of it (ruled paper does; a stroke drawn on a pad not)
NEAR = 0.3  # parts within this fraction of the main part's longer side belong with it (a 5's bar, a broken stroke)
# The grey-level reading of a small crop (`grey_ink`): the paper is the level this share of the pixels reach ...
GREY_PAPER = 0.9
GREY_DARK = 0.01  # ... the ink's the level this share of them reach; between the two, the depth runs from 0 to 1 ...
GREY_LOW, GREY_HIGH = 0.15, 0.6  # ... and depths under GREY_LOW are paper (noise, a blur's skirt), over GREY_HIGH ink


def work_copy(g: np.ndarray) -> np.ndarray:
    """A copy block-averaged to at most WORK_SIDE px on its longer side, smoothed when it is large."""
    f = math.ceil(max(g.shape) / WORK_SIDE)
    if f > 1:
        rows, cols = np.arange(0, g.shape[0], f), np.arange(0, g.shape[1], f)
        s = np.add.reduceat(np.add.reduceat(g, rows, axis=0), cols, axis=1)
        g = (s / np.outer(np.diff(rows, append=g.shape[0]), np.diff(cols, append=g.shape[1]))).astype(np.float32)
    if f > 1 and min(g.shape) >= SMOOTH_SIDE:  # a large photo: its grain and JPEG blocks
        g = ndimage.gaussian_filter(g, 1.0, mode="nearest")
    return g


def polarities(s: np.ndarray) -> list[bool]:
    """[light ink?] for the side that stands out from the median; both sides when neither clearly does."""
    m = float(np.median(s))
    up, down = float(np.maximum(s - m, 0).mean()), float(np.maximum(m - s, 0).mean())
    if up > POLARITY * down:
        return [True]
    if down > POLARITY * up:
        return [False]
    return [up >= down, up < down]


def find_ink(v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(soft ink in [0, 1], its mask) of an ink-bright image: the paper's brightness removed, then a threshold
    relative to the typical ink and the noise, with hysteresis. Raises NoInkError when nothing stands out."""
    h, w = v.shape
    window = max(3, round(PAPER * min(h, w)))
    paper = ndimage.grey_opening(v, size=(window, window), mode="nearest")
    paper = ndimage.uniform_filter(paper, max(1, window // 4), mode="nearest")  # smooth the opening's flat blocks
    flat = np.maximum(v - paper, 0)
    # the noise, from differences of neighbouring pixels (robust to the ink, whose edges are few of them)
    noise = 1.4826 / math.sqrt(2) * float(np.median(np.abs(np.diff(v, axis=1)))) if w > 1 else 0.0
    peak = float(np.percentile(flat, 99.9)) if flat.size >= 1000 else float(flat.max())
    level = float(np.median(flat[flat >= 0.5 * peak])) if peak > 0 else 0.0
    if level < max(MIN_CONTRAST, NOISE * noise):
        raise NoInkError(f"no ink found in {name}: the image is blank or has too little contrast")
    low = max(LOW * level, 3 * noise)
    mask = apply_hysteresis_threshold(flat, low, max(low, HIGH * level))
    soft = np.clip((flat - low) / max(level - low, 1e-6), 0, 1).astype(np.float32)
    return soft, mask


def grey_ink(s: np.ndarray, light: bool) -> np.ndarray | None:
    """The ink of a small crop (a soft, low-resolution scan) read from its grey levels alone, in [0, 1]; None when
    there is too little contrast. No paper window, no hysteresis: on such scans `find_ink`'s soft ink comes out
    broken into dots (its paper window, a third of a narrow image's side, is about as wide as a blurred stroke)."""
    v = s if light else 1.0 - s
    paper, ink = np.quantile(v, [1 - GREY_PAPER, 1 - GREY_DARK])
    if ink - paper < MIN_CONTRAST:
        return None
    depth = (v - paper) / (ink - paper)
    soft = np.clip((depth - GREY_LOW) / (GREY_HIGH - GREY_LOW), 0, 1).astype(np.float32)
    # Only the parts that reach the ink's level somewhere (a hysteresis): a faint part that never does is a blur's
    # skirt or noise (a JPEG's ringing around a small digit), and kept it would widen the digit's box
    labels, n = ndimage.label(soft > 0, structure=np.ones((3, 3), bool))
    inked = np.zeros(n + 1, bool)
    inked[np.unique(labels[soft >= 1.0])] = True
    inked[0] = False
    return np.where(inked[labels], soft, 0.0).astype(np.float32)


def _lines(mask: np.ndarray) -> np.ndarray:
    """The pixels of long straight horizontal or vertical runs (LINE of the image's side) that, joined, cross the
    image (SPAN of its side): ruled and squared paper, a margin line. A digit's own bar is shorter, unless the image
    is cropped tight to the digit; the most inclusive candidate keeps it then, and the model chooses. Strokes drawn
    on a pad (a hash sign, a triangle) stop short of its edges, so they are not lines."""
    h, w = mask.shape
    tol = max(1, round(0.01 * max(mask.shape)))  # a hand-drawn or slightly tilted line wobbles by a few px
    m = ndimage.binary_dilation(mask, iterations=tol).view(np.uint8)
    out = np.zeros(mask.shape, bool)
    for axis, side in ((1, w), (0, h)):
        length = max(3, round(LINE * side))
        # an opening by a 1-px line: running minimum, then running maximum (O(1) per pixel whatever the length)
        runs = ndimage.maximum_filter1d(ndimage.minimum_filter1d(m, length, axis=axis), length, axis=axis) > 0
        labels, n = ndimage.label(runs, structure=np.ones((3, 3), bool))
        for k, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is not None and box[axis].stop - box[axis].start >= SPAN * side:
                out[box] |= labels[box] == k
    return ndimage.binary_dilation(out, iterations=tol)


def groups(mask: np.ndarray) -> tuple[dict[str, np.ndarray], bool]:
    """The candidate masks (by kind) of one polarity's ink mask: all, inside the border, without lines, inside a
    frame, main group; a mask equal to one before it is left out. And whether page furniture was found (a frame,
    the sheet's edge, ruled paper: `furniture.py`), which settles the polarity."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return {}, False
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    areas[0] = 0
    keep = areas >= SPECK * areas.max()
    keep[0] = False
    keep = largest(areas, keep)  # (MAX_PARTS: the rest are specks; every step below examines only these)
    # in a crop (under CROP_SIDE) a stroke crossing the image is the digit's own, not ruled paper
    lines = _lines(mask) if min(mask.shape) >= furniture.CROP_SIDE else np.zeros_like(mask)
    if lines.any() and furniture.only_ruled_lines(mask, lines):
        return {}, True
    found = furniture.furniture(labels, keep)
    keep &= ~found  # frames and the sheet's edge are in no candidate
    if not keep.any():
        return {}, True
    border = np.zeros(n + 1, bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        border[edge] = True
    out = {"all ink": keep[labels]}
    inside = keep & ~border
    if inside.any() and border[keep].any():
        out["inside the border"] = inside[labels]
    if lines.any():
        out["without lines"] = _without_lines(keep[labels] & ~lines)
    framed = _inside_frame(labels, keep)
    if framed is not None:
        out["inside a frame"] = framed
    out["main group"] = _main_group(labels, inside if inside.any() else keep)  # border parts only for a tight crop
    unique: dict[str, np.ndarray] = {}
    for kind, m in out.items():
        if m.any() and not any(np.array_equal(m, u) for u in unique.values()):
            unique[kind] = m
    return unique, bool(found.any())


def _without_lines(rest: np.ndarray) -> np.ndarray:
    """The main group of the ink left once the lines are taken out (`rest`, a mask), its specks dropped and at most
    MAX_PARTS of its parts examined."""
    labels, n = ndimage.label(rest, structure=np.ones((3, 3), bool))
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    areas[0] = 0
    keep = areas >= SPECK * areas.max() if n else np.zeros(n + 1, bool)
    keep[0] = False
    return _main_group(labels, largest(areas, keep))


def _inside_frame(labels: np.ndarray, keep: np.ndarray) -> np.ndarray | None:
    """The main group of the parts lying wholly inside the box of the largest part that encloses others (a frame
    drawn around the digit, a box on a form), without that part; None when no part encloses another. Compares the
    kept parts' boxes pairwise: `keep` holds at most MAX_PARTS (`groups`)."""
    boxes = ndimage.find_objects(labels)
    areas = np.bincount(labels.ravel(), minlength=len(boxes) + 1)
    kept = np.flatnonzero(keep)
    b = np.array([[s.start for s in boxes[k - 1]] + [s.stop for s in boxes[k - 1]] for k in kept]).reshape(-1, 4)
    for i in np.argsort(-areas[kept], kind="stable"):  # (y0, x0, y1, x1) of each: those strictly inside part i's
        held = (b[:, :2] > b[i, :2]).all(axis=1) & (b[:, 2:] < b[i, 2:]).all(axis=1)
        if held.any():
            inner = np.zeros_like(keep)
            inner[kept[held]] = True
            return _main_group(labels, inner)
    return None


def _main_group(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The largest kept part and the kept parts near it (gaps up to NEAR of the group's longer side), grown."""
    boxes = ndimage.find_objects(labels)
    areas = np.bincount(labels.ravel(), minlength=len(boxes) + 1)
    ranked = np.argsort(-areas)
    order = [int(k) for k in ranked[keep[ranked] & (ranked > 0)]]  # (at most MAX_PARTS: the loop below is quadratic)
    if not order:
        return np.zeros(labels.shape, bool)
    chosen = {order[0]}
    (y0, y1), (x0, x1) = ((s.start, s.stop) for s in boxes[order[0] - 1])
    grew = True
    while grew:
        grew = False
        reach = NEAR * max(y1 - y0, x1 - x0)
        for k in order:
            if k in chosen:
                continue
            (py0, py1), (px0, px1) = ((s.start, s.stop) for s in boxes[k - 1])
            if max(py0 - y1, y0 - py1, px0 - x1, x0 - px1, 0) <= reach:
                chosen.add(k)
                y0, y1, x0, x1 = min(y0, py0), max(y1, py1), min(x0, px0), max(x1, px1)
                grew = True
    mine = np.zeros(len(keep), bool)
    mine[list(chosen)] = True
    return mine[labels]
