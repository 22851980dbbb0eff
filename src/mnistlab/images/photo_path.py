"""The rule-based reading of photos and scans (mnistlab 0.2's preparation): one candidate of `preprocess.candidates`.

It reads photos of a digit on a page well and refuses much it was not tuned for (tight crops, soft scans), which
`preprocess`'s other candidates read. A clean page holding nothing but the digit, and any image under
`PHOTO_MIN_SIDE` px, goes the scan path (invert, stretch, crop). A photo is read on a copy of at most `WORK_SIDE`
px: the ink's polarity; the paper's local brightness (a grey closing) and the ink darker than it, with hysteresis;
connected components (`photo_frames`), dropping the sheet's edge, ruled lines, frames and specks; the digit is the
largest part left and the parts near it, refused when a second mark as large lies apart; then `field.to_field`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from mnistlab.errors import NoDigitError, NoInkError
from mnistlab.images import photo_frames as frames
from mnistlab.images.field import FIELD, bbox, check_shape, largest, to_field
from mnistlab.images.photo_frames import Part

__all__ = ["NoDigitError", "NoInkError", "mnistify"]

MNIST_BACKGROUND = 0.1  # a 28x28 image whose border is at most this dark is taken as an MNIST digit as it is
MIN_CONTRAST = 0.1  # ink must differ from the background by at least this (on a 0..1 scale) ...
NOISE_FACTOR = 4.0  # ... and by this many robust standard deviations of the border's noise
MIN_THRESHOLD = 0.2  # after stretching, values below this fraction of the ink level are noise
MAX_THRESHOLD = 0.5
MIN_INK = 4  # ink whose bounding box is under this many px on its longer side is a speck, not a digit ...
SPECK_FRACTION = 0.005  # ... and so is ink spanning under this fraction of the image's shorter side (15 px of 3000)

# The photo path (steps 2 and 3p-5p)
WORK_SIDE = 1024  # the photo path works on a copy block-averaged to at most this many px on its longer side ...
PHOTO_MIN_SIDE = 64  # ... and only on one at least this many px on its shorter side: an image smaller (MNIST-sized,
# an icon-sized scan such as the UCI digits' 8x8 shown 4x) or thinner (a strip) is no photo, and takes the scan path
DENOISE = 3  # ... smoothed by a 3x3 mean first: sensor noise down 3x, pen strokes (several px wide) intact
POLARITY_SIDE = 64  # the ink's polarity is decided on a copy block-averaged to at most this many px, ...
POLARITY_NOISE = 3.0  # ... by which side stands out more, in all, beyond this many times the noise
RING_FLAT = 0.1  # paper whose brightness along the border spans (2nd to 98th percentile) at most this fraction of
# its median is evenly lit; a gradient, a shadow or the sheet's edge spread it more ...
EDGE_CONTACT = 0.25  # ... and so does a part touching the border along this fraction of the shorter side: the sheet's
# edge, filled in (a digit that runs off a clean page touches the border with a few stroke ends)
CLEAN_BORDER = 0.04  # a border spanning (1st to 99th percentile) at most this fraction of its median is clean: a
# scan's or a drawing's, not a photo's paper with its grain and noise (about 3/255 of noise makes it a photo's)
PAPER_WINDOW = 0.25  # the paper's brightness: a grey closing over this fraction of the shorter side fills in every
# mark thinner than that (strokes, lines, frames) and keeps what is wider (gradients, shadows, a table) ...
PAPER_SMOOTH = 4  # ... then a mean over 1/4 of that window smooths the closing's flat-topped blocks
PAPER_FLOOR = 0.5  # ink depth is relative to the paper's brightness (so ink in a shadow is as deep as in the light),
# but never to less than this fraction of the brightest paper: a dark table's grain is not ink
MIN_DEPTH = 0.2  # the typical ink must be at least this much darker than the paper around it (relative) ...
LOW_FRACTION = 0.3  # ... a pixel is ink when darker than the paper by this fraction of the typical ink's depth ...
HIGH_FRACTION = 0.55  # ... and connected to pixels darker by this fraction (a faint mark alone is not ink), by
SEED_NOISE = 7.0  # MIN_DEPTH and by this many times the noise (paper grain, blotches) at least
PART_SPECK = 0.01  # a part spanning under this fraction of the shorter side is a speck (2 px of 240)
NEAR = 0.3  # parts within this fraction of the digit's longer side (gap between boxes) belong to the digit ...
NEAR_AREA = 0.01  # ... unless they are under this fraction of its largest part's area (a speck of dust)
RIVAL_AREA = 0.5  # another mark at least this fraction of the digit's largest part, farther away: which is the digit?
GROW = 2  # the digit's mask is grown by this many px to take in its soft edges


# --------------------------------------------------------------------------------------------------------------
# The MNIST recipe


def _no_ink(name: str) -> NoInkError:
    return NoInkError(f"no ink found in {name}: the image is blank or has too little contrast")


def _check_shape(ink: tuple[int, int], image: tuple[int, int], name: str) -> None:
    check_shape(ink, image, name, min_ink=max(MIN_INK, SPECK_FRACTION * min(image)))


# --------------------------------------------------------------------------------------------------------------
# The photo path: find the digit among the sheet's edge, shadows, ruled lines, frames and specks


def _block_mean(g: np.ndarray, f: int) -> np.ndarray:
    """Means over f x f blocks (the last row and column of blocks may be smaller)."""
    if f <= 1:
        return g
    rows, cols = np.arange(0, g.shape[0], f), np.arange(0, g.shape[1], f)
    a = np.add.reduceat(np.add.reduceat(g, rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(rows, append=g.shape[0]), np.diff(cols, append=g.shape[1]))
    return (a / counts).astype(np.float32)


def _ring(a: np.ndarray) -> np.ndarray:
    """The image's outermost pixels, in order around it."""
    return np.concatenate([a[0], a[1:, -1], a[-1, -2::-1], a[-2:0:-1, 0]])


def _dark_ink(s: np.ndarray) -> bool:
    """Whether the ink is darker than the paper: on a small copy, what stands out from the local median (the paper
    around it, whatever the light) stands out more on the dark side. Loops, frames' insides and a table's edge
    stand out both ways or not at all; strokes one way."""
    t = _block_mean(s, math.ceil(max(s.shape) / POLARITY_SIDE))
    size = max(3, round(PAPER_WINDOW * min(t.shape)))
    d = t - ndimage.median_filter(t, size=size, mode="nearest")
    margin = POLARITY_NOISE * 1.4826 * float(np.median(np.abs(d)))
    return bool(np.maximum(-d - margin, 0).sum() >= np.maximum(d - margin, 0).sum())


def _evenly_lit(paper: np.ndarray) -> bool:
    """Whether the paper's brightness is even along the image's border: no gradient, shadow or wide dark table."""
    ring = ndimage.uniform_filter1d(_ring(paper), 5, mode="wrap")
    lo, mid, hi = np.percentile(ring, [2, 50, 98])
    return bool(hi - lo <= RING_FLAT * max(mid, 1e-6))


def _clean_border(v: np.ndarray) -> bool:
    """Whether the image's border is clean: even and nearly noiseless (a scan or a drawing, not a photo)."""
    ring = ndimage.uniform_filter1d(_ring(v), 3, mode="wrap")
    lo, mid, hi = np.percentile(ring, [1, 50, 99])
    return bool(hi - lo <= CLEAN_BORDER * max(mid, 1e-6))


def _photo_ink(g: np.ndarray, name: str) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The digit's ink in a photo, stretched to [0, 1] and cropped, and the shape of the (working) image it was found
    in; None for a clean page (see `_clean_border`) holding nothing but the digit, which the scan path reads as it
    always has. Raises `NoInkError` or `NoDigitError` for a photo without a digit that can be told apart."""
    s = _block_mean(g, math.ceil(max(g.shape) / WORK_SIDE))
    s = ndimage.uniform_filter(s, DENOISE, mode="nearest")
    h, w = s.shape
    v = s if _dark_ink(s) else 1.0 - s
    window = max(3, round(PAPER_WINDOW * min(h, w)))
    paper = ndimage.grey_closing(v, size=(window, window), mode="nearest")
    paper = ndimage.uniform_filter(paper, max(1, window // PAPER_SMOOTH), mode="nearest")
    lit = _evenly_lit(paper)
    clean = lit and _clean_border(v)  # a scan's or a drawing's page: the scan path has the last word on it
    depth = paper - v
    depth /= np.maximum(paper, max(PAPER_FLOOR * float(np.percentile(paper, 99)), 1e-3))  # 1e-3: a black image
    base = float(np.median(depth))
    depth -= base
    noise = 1.4826 * float(np.median(np.abs(depth)))
    peak = float(depth.max())
    level = float(np.median(depth[depth >= 0.5 * peak])) if peak > 0 else 0.0
    if level < max(MIN_DEPTH, SEED_NOISE * noise):
        if clean:
            return None
        raise _no_ink(name)
    low = max(NOISE_FACTOR * noise, LOW_FRACTION * level)
    high = max(low, HIGH_FRACTION * level, MIN_DEPTH, SEED_NOISE * noise)
    weak, seeds = depth > low, depth > high
    speck = max(MIN_INK, PART_SPECK * min(h, w))
    labels, parts, contact, width = _parts(weak, seeds, speck)
    # A ruled line crossing the digit joins it to the border: such a part loses the pixels of long, level lines as
    # thin as the ruled lines standing alone (the sheet's edge touches the border far longer: it is no ruled line).
    joined = [p.label for p in parts if p.kind == "border"]
    if width and joined:
        cut = frames.line_pixels(np.isin(labels, joined), frames.LINE_CUT * width)
        if cut.any():
            weak &= ~cut
            labels, parts, contact, _ = _parts(weak, seeds & weak, speck)
    edge = any(contact[p.label] >= EDGE_CONTACT * min(h, w) for p in parts)  # a narrow table strip, filled in
    parts += frames.find_frames([p for p in parts if not p.kind], labels, speck)
    plain = lit and not edge and not any(p.kind in ("line", "frame") for p in parts)
    if plain and all(p.kind for p in parts):  # an evenly lit page with nothing on it but marks touching its border:
        for p in parts:  # a digit cropped tightly, running off the page
            p.kind = ""
    if plain and clean:
        try:
            chosen = _choose(parts, name)
        except NoDigitError:
            return None
        if len(chosen) == sum(not p.kind for p in parts):
            return None  # a clean page holding the digit and nothing else: the scan path, as always
    chosen = _choose(parts, name)
    return _digit_crop(depth, labels, chosen, level, noise), (h, w)


def _parts(weak: np.ndarray, seeds: np.ndarray, speck: float) -> tuple[np.ndarray, list[Part], np.ndarray, float]:
    """(labels, parts, pixels on the border per label, ruled lines' width) of the connected pieces of `weak`: those
    holding a seed and at least `speck` px across are parts (ruled lines and parts touching the border marked as
    such); the width is the thickest of the long, level, thin pieces, seeded or not (0 when there is none)."""
    labels, n = ndimage.label(weak, structure=np.ones((3, 3), bool))
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    contact = np.bincount(_ring(labels), minlength=n + 1)
    seeded = np.zeros(n + 1, bool)
    seeded[labels[seeds]] = True
    seeded[0] = False
    boxes = ndimage.find_objects(labels)
    wide = np.array([0] + [b[1].stop - b[1].start for b in boxes]) >= frames.LINE_RUN * weak.shape[1]
    width, parts = 0.0, []
    for k in np.flatnonzero(largest(areas, (seeded | wide) & (np.arange(n + 1) > 0))):  # MAX_PARTS, largest first
        box = boxes[k - 1]
        long = box[1].stop - box[1].start
        ratio, angle = frames.elongation(labels[box] == k)
        line = ratio >= frames.LINE_ELONGATION and abs(angle) <= frames.LINE_ANGLE
        if line and long >= frames.LINE_RUN * weak.shape[1] and contact[k] < EDGE_CONTACT * min(weak.shape):
            width = max(width, areas[k] / long)
        if seeded[k] and max(sl.stop - sl.start for sl in box) >= speck:
            parts.append(
                Part(int(k), int(areas[k]), (box[0], box[1]), "line" if line else "border" if contact[k] else "")
            )
    labels[~seeded[labels]] = 0
    return labels, parts, contact, width


def _choose(parts: list[Part], name: str) -> list[Part]:
    """The digit's parts: the largest candidate and those near it; refused when there is none, or a rival."""
    left = sorted((p for p in parts if not p.kind), key=lambda p: p.area, reverse=True)
    if not left:
        kinds = {"border": "marks along the image's border", "line": "ruled lines", "frame": "a frame"}
        found = " and ".join(dict.fromkeys(kinds[p.kind] for p in parts)) or "specks"
        raise NoDigitError(f"no digit found in {name}: the only ink is {found}")
    main = left[0]
    chosen, rest = [main], left[1:]
    (y0, y1), (x0, x1) = ((s.start, s.stop) for s in main.box)
    grew = True
    while grew:
        grew = False
        reach = NEAR * max(y1 - y0, x1 - x0)
        for p in list(rest):
            (py0, py1), (px0, px1) = ((s.start, s.stop) for s in p.box)
            gap = max(py0 - y1, y0 - py1, px0 - x1, x0 - px1, 0)
            if p.area >= NEAR_AREA * main.area and gap <= reach:
                chosen.append(p)
                rest.remove(p)
                y0, y1, x0, x1 = min(y0, py0), max(y1, py1), min(x0, px0), max(x1, px1)
                grew = True
    rivals = [p for p in rest if p.area >= RIVAL_AREA * main.area]
    if rivals:
        raise NoDigitError(
            f"no digit found in {name}: {len(rivals) + 1} marks of a digit's size lie apart; crop it to one digit"
        )
    return chosen


def _digit_crop(depth: np.ndarray, labels: np.ndarray, chosen: list[Part], level: float, noise: float) -> np.ndarray:
    """The chosen parts' ink (with GROW px of soft edge, none of the other parts' ink), stretched as in the scan
    path and cropped to its bounding box."""
    h, w = depth.shape
    y0 = max(min(p.box[0].start for p in chosen) - GROW, 0)
    y1 = min(max(p.box[0].stop for p in chosen) + GROW, h)
    x0 = max(min(p.box[1].start for p in chosen) - GROW, 0)
    x1 = min(max(p.box[1].stop for p in chosen) + GROW, w)
    sub = labels[y0:y1, x0:x1]
    mine = np.isin(sub, [p.label for p in chosen])
    zone = ndimage.binary_dilation(mine, iterations=GROW) & ((sub == 0) | mine)
    threshold = min(MAX_THRESHOLD, max(MIN_THRESHOLD, 3.0 * noise / level))
    ink = (depth[y0:y1, x0:x1] / level - threshold) / (1.0 - threshold)
    ink = np.where(zone, np.clip(ink, 0.0, 1.0), 0.0).astype(np.float32)
    r0, r1, c0, c1 = bbox(ink > 0)
    return np.ascontiguousarray(ink[r0:r1, c0:c1])


def _mnist_field(crop: np.ndarray, image: tuple[int, int], name: str) -> np.ndarray:
    """Steps 6-9 on the cropped, stretched ink (values in [0, 1]) of an image of shape `image`."""
    _check_shape(crop.shape, image, name)
    out = to_field(crop)
    if out is None:
        raise _no_ink(name)
    return out


def mnistify(gray: np.ndarray, name: str = "the image") -> np.ndarray:
    """A 2-D float array in [0, 1] (any polarity) -> a 28x28 float32 MNIST-style digit in [0, 1], white on black.

    Raises `NoInkError` when nothing stands out from the background, and `NoDigitError` (a `NoInkError`) when what
    does is not shaped like a digit (see `_check_shape`) or no one mark in a photo is the digit (see `_photo_ink`).
    """
    g = np.asarray(gray, dtype=np.float32)
    h, w = g.shape
    if (h, w) != (FIELD, FIELD) and min(h, w) // math.ceil(max(h, w) / WORK_SIDE) >= PHOTO_MIN_SIDE:
        found = _photo_ink(g, name)
        if found is not None:
            return _mnist_field(*found, name)
    # The scan path: a clean page, or an image too small to be a photo.
    if h >= 3 and w >= 3:
        border = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    else:
        border = g.ravel()
    background = float(np.median(border))
    ink = g - background  # made in place from here on: one image-sized float32 array besides `g`, no temporaries
    light_ink = float(ink.sum()) >= 0  # i.e. what is lighter than the background outweighs what is darker
    if not light_ink:
        np.negative(ink, out=ink)
    np.maximum(ink, 0.0, out=ink)
    noise = 1.4826 * float(np.median(np.abs(border - background)))
    peak = float(ink.max())
    if peak < max(MIN_CONTRAST, NOISE_FACTOR * noise):
        raise _no_ink(name)
    if g.shape == (FIELD, FIELD) and background <= MNIST_BACKGROUND and light_ink:
        return np.clip(g, 0.0, 1.0)  # already an MNIST digit (28x28, white on black): used as given, not re-centred
    level = float(np.median(ink[ink >= 0.5 * peak], overwrite_input=True))  # typical ink, robust to hot pixels
    threshold = min(MAX_THRESHOLD, max(MIN_THRESHOLD, 3.0 * noise / level))
    ink /= level  # (ink / level - threshold) / (1 - threshold), clipped to [0, 1]
    ink -= threshold
    ink /= 1.0 - threshold
    np.clip(ink, 0.0, 1.0, out=ink)
    if not (ink > 0).any():
        raise _no_ink(name)
    r0, r1, c0, c1 = bbox(ink)
    crop = np.ascontiguousarray(ink[r0:r1, c0:c1])  # contiguous, so that resizing it copies it only once
    del ink
    return _mnist_field(crop, (h, w), name)
