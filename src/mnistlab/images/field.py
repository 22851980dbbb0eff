"""The MNIST-style 28x28 field: cropped ink scaled so its longer side is 20 px, its centre of mass at (14, 14).

MNIST's digits were size-normalised to fit a 20x20 box (keeping the aspect ratio, with anti-aliasing) and centred
by their centre of mass in a 28x28 field. Every reading of a user image (`preprocess`, `photo_path`) and every
rendered not-digit of the training bank (`robust`) goes through `to_field`, so they all look alike to the network.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage

from mnistlab.errors import NoDigitError

FIELD = 28  # output side
BOX = 20  # the longer side of the ink's bounding box after scaling
CENTRE = 14.0  # where the centre of mass goes (index coordinates; MNIST's test set averages 14.0, 14.0)
MIN_STROKE = 1.6  # strokes estimated thinner than this (output px) are thickened ...
TARGET_STROKE = 2.4  # ... to about this (MNIST's median is about 2.6 by the same estimate)
MIN_SIDE = 3  # an image thinner than this (a 1xN or 2xN strip) cannot hold a digit
# A handwritten digit's ink box is at most about 8:1 at MNIST's stroke width (a "1"); drawn with a thin pen it is
# as narrow as the pen: a 3-px brush on a 200-px canvas gives 50:1. Twice that is allowed; beyond it the ink is
# a ruled line, a border or a strip. Ratios do not change when an image is resized, so neither does the verdict.
MAX_ELONGATION = 100
WORK = 16 * BOX  # thickening works on a copy max-pooled to at most this many px (16 per output px: 1/16 px error)
# Every reading examines at most this many ink parts (connected components) of a picture, the largest first; the
# rest count as specks. A digit is 1 to 3 parts, a photo of one adds a frame, ruled lines, the sheet's edge and a
# few other marks: benchmarks/robustness.py's pictures have at most 9, and 72 where ruled lines taken out leave
# the rest in pieces. What compares parts pairwise then costs a fixed bound of work, where a picture of thousands
# of equal dots cost it in the square of their number (issue 28: 50 s for a 1.1 KB PNG).
MAX_PARTS = 128


def check_shape(ink: tuple[int, int], image: tuple[int, int], name: str, *, min_ink: float) -> None:
    """Refuse ink (its box's height and width) that no digit makes in an image of shape `image`: a strip of an
    image, a speck (a box under `min_ink` px on its longer side), or a line far longer than it is wide."""
    (ih, iw), (h, w) = ink, image
    why = ""
    if min(h, w) < MIN_SIDE:
        why = f"a {w}x{h} image is a strip, too thin to hold a digit"
    elif max(ih, iw) < min_ink:
        why = f"the only ink is a {iw}x{ih} speck in a {w}x{h} image"
    elif max(ih, iw) > MAX_ELONGATION * min(ih, iw):
        why = f"the ink is a {iw}x{ih} line, far thinner for its length than any digit"
    if why:
        raise NoDigitError(f"no digit found in {name}: {why}")


def largest(areas: np.ndarray, keep: np.ndarray, limit: int = MAX_PARTS) -> np.ndarray:
    """`keep` ([kept] per label) left with its `limit` largest parts by `areas` (of equal ones, the lower labels)."""
    kept = np.flatnonzero(keep)
    if len(kept) <= limit:
        return keep
    out = np.zeros_like(keep)
    out[kept[np.argsort(-areas[kept], kind="stable")[:limit]]] = True
    return out


def stroke_width(ink: np.ndarray) -> float:
    """Rough stroke width in pixels: twice the ink area over its boundary length (exact for long strokes)."""
    mask = ink > 0.5
    if not mask.any():
        mask = ink > 0
    p = np.pad(mask, 1)
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1]  # ink whose 4 neighbours are ink too, made in place (3 bool planes)
    for neighbour in (p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]):
        interior &= neighbour
    area = np.count_nonzero(mask)
    boundary = int(area - np.count_nonzero(interior))
    return 2.0 * area / max(boundary, 1)


def bbox(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), end-exclusive, of the non-zero pixels (there must be some)."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def resize(a: np.ndarray, width: int, height: int) -> np.ndarray:
    """Floats in [0, 1] resized with Lanczos (anti-aliased, as MNIST was), clipped back to [0, 1]."""
    if a.shape == (height, width):
        return a
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
    return np.clip(np.asarray(img.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32), 0.0, 1.0)


def thicken(crop: np.ndarray, stroke: float) -> np.ndarray:
    """Dilate strokes of about `stroke` px to about TARGET_STROKE px once the crop's longer side is scaled to BOX.

    A crop longer than WORK is max-pooled to at most WORK first: the dilation's radius grows with the crop's
    longer side, so at full size a long thin line would cost memory in the square of its length.
    """
    f = math.ceil(max(crop.shape) / WORK)
    if f > 1:  # maximum over f x f blocks (the last ones may be smaller): keeps every stroke
        crop = np.maximum.reduceat(crop, np.arange(0, crop.shape[0], f), axis=0)
        crop = np.maximum.reduceat(crop, np.arange(0, crop.shape[1], f), axis=1)
        stroke = stroke_width(crop)
    radius = math.ceil((TARGET_STROKE * max(crop.shape) / BOX - stroke) / 2)
    if radius <= 0:
        return crop
    crop = np.pad(crop, radius)
    for axis in (0, 1):  # a square grey dilation, as two running maxima
        crop = ndimage.maximum_filter1d(crop, 2 * radius + 1, axis=axis, mode="constant", cval=0.0)
    r0, r1, c0, c1 = bbox(crop)
    return crop[r0:r1, c0:c1]


def to_field(crop: np.ndarray, *, thick: bool = True) -> np.ndarray | None:
    """Cropped ink (floats in [0, 1], white on black) -> the 28x28 float32 field; None when no ink lands in it.
    With `thick`, strokes that would come out far thinner than MNIST's (a thin pen on a large image) are
    thickened first."""
    scale = BOX / max(crop.shape)
    if thick:
        stroke = stroke_width(crop)
        if stroke * scale < MIN_STROKE:
            crop = thicken(crop, stroke)
            scale = BOX / max(crop.shape)
    ch, cw = crop.shape
    digit = resize(crop, max(1, round(cw * scale)), max(1, round(ch * scale)))
    mass = float(digit.sum())
    if not mass > 0:
        return None
    dh, dw = digit.shape
    cy = float((digit.sum(axis=1) * np.arange(dh)).sum()) / mass
    cx = float((digit.sum(axis=0) * np.arange(dw)).sum()) / mass
    top, left = math.floor(CENTRE - cy + 0.5), math.floor(CENTRE - cx + 0.5)
    out = np.zeros((FIELD, FIELD), dtype=np.float32)
    y0, y1 = max(top, 0), min(top + dh, FIELD)
    x0, x1 = max(left, 0), min(left + dw, FIELD)
    if y1 <= y0 or x1 <= x0:
        return None
    out[y0:y1, x0:x1] = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    return out
