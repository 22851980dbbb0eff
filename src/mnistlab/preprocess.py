"""Turn an arbitrary user image (file, bytes, PIL image or array) into the model's 1x28x28 input, as MNIST was made.

MNIST's digits were size-normalised to fit a 20x20 box (keeping the aspect ratio, with anti-aliasing) and then
placed in a 28x28 field so that their centre of mass sits at the centre. `preprocess` repeats that on any image:

1. grayscale (transparency composited onto a background that contrasts with the ink);
2. auto-invert to white ink on black, deciding the background from the image border;
3. stretch the contrast so the background is 0 and the ink 1, and drop faint noise a little above the background;
4. crop to the ink's bounding box; refuse ink that cannot be a digit (a strip, a speck, a long thin line);
5. thicken strokes that would come out much thinner than MNIST's (a thin pen on a large photo), on a copy
   max-pooled to at most `WORK` px, so the cost never grows with the square of the image's longer side;
6. scale the crop's longer side to 20 px, anti-aliased;
7. paste into 28x28 with the ink's centre of mass at (14, 14);
8. normalise with MNIST's mean and std.

A 28x28 image that is already white on black (an MNIST digit) skips steps 3-7: it is used as it is.
Blank or near-uniform images raise `NoInkError`, and ink not shaped like a digit `NoDigitError`, instead of
producing a confident guess; every other unusable input raises `UserError`, running out of memory included.
`open_image` refuses oversized images before decoding their pixels, and every step after it works in memory
proportional to the image's pixels (a few float32 copies at most).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from PIL import Image

from mnistlab.data import MEAN, STD
from mnistlab.errors import UserError
from mnistlab.images import MAX_PIXELS, array_to_gray, open_image, to_grayscale

__all__ = ["MAX_PIXELS", "NoDigitError", "NoInkError", "mnistify", "open_image", "preprocess", "to_grayscale"]

FIELD = 28  # output side
BOX = 20  # the longer side of the ink's bounding box after scaling
CENTRE = 14.0  # where the centre of mass goes (index coordinates; MNIST's test set averages 14.0, 14.0)
MNIST_BACKGROUND = 0.1  # a 28x28 image whose border is at most this dark is taken as an MNIST digit as it is
MIN_CONTRAST = 0.1  # ink must differ from the background by at least this (on a 0..1 scale) ...
NOISE_FACTOR = 4.0  # ... and by this many robust standard deviations of the border's noise
MIN_THRESHOLD = 0.2  # after stretching, values below this fraction of the ink level are noise
MAX_THRESHOLD = 0.5
MIN_STROKE = 1.6  # strokes estimated thinner than this (output px) are thickened ...
TARGET_STROKE = 2.4  # ... to about this (MNIST's median is about 2.6 by the same estimate)
WORK = 16 * BOX  # thickening works on a copy max-pooled to at most this many px (16 per output px: 1/16 px error)
MIN_SIDE = 3  # an image thinner than this (a 1xN or 2xN strip) cannot hold a digit
MIN_INK = 4  # ink whose bounding box is under this many px on its longer side is a speck, not a digit ...
SPECK_FRACTION = 0.005  # ... and so is ink spanning under this fraction of the image's shorter side (15 px of 3000)
# A handwritten digit's ink box is at most about 8:1 at MNIST's stroke width (a "1"); drawn with a thin pen it is
# as narrow as the pen: a 3-px brush on a 200-px canvas gives 50:1. Twice that is allowed; beyond it the ink is
# a ruled line, a border or a strip, and thickening it to a "1" would be a guess. Ratios do not change when an
# image is resized, so neither does the verdict.
MAX_ELONGATION = 100


class NoInkError(UserError):
    """The image is blank, uniform or has too little contrast to hold a digit."""


class NoDigitError(NoInkError):
    """The image has ink, but nothing shaped like a digit: a strip, a speck or a long thin line."""


# --------------------------------------------------------------------------------------------------------------
# The MNIST recipe


def _max_filter_1d(a: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Running maximum over a window of 2*radius+1 along `axis` (zero padding), in O(log radius) passes."""
    if radius <= 0:
        return a
    a = np.moveaxis(a, axis, 0)
    n, size = a.shape[0], 2 * radius + 1
    pad = np.zeros((radius, *a.shape[1:]), dtype=a.dtype)
    cur = np.concatenate([pad, a, pad])  # cur[i] = max of the padded array over [i, i + span)
    span = 1
    while 2 * span <= size:
        cur = np.maximum(cur[:-span], cur[span:])
        span *= 2
    out = np.maximum(cur[:n], cur[size - span : size - span + n])
    return np.moveaxis(out, 0, axis)


def _stroke_width(ink: np.ndarray) -> float:
    """Rough stroke width in pixels: twice the ink area over its boundary length (exact for long strokes)."""
    mask = ink > 0.5
    if not mask.any():
        mask = ink > 0
    p = np.pad(mask, 1)
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1]  # ink whose 4 neighbours are ink too, made in place (3 bool planes)
    for neighbour in (p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]):
        interior &= neighbour
    area = np.count_nonzero(mask)
    boundary = area - np.count_nonzero(interior)
    return 2.0 * area / max(boundary, 1)


def _bbox(ink: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _resize(a: np.ndarray, width: int, height: int) -> np.ndarray:
    if a.shape == (height, width):
        return a
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
    return np.clip(np.asarray(img.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32), 0.0, 1.0)


def _max_pool(a: np.ndarray, f: int) -> np.ndarray:
    """Maximum over f x f blocks (the last row and column of blocks may be smaller): keeps every stroke."""
    a = np.maximum.reduceat(a, np.arange(0, a.shape[0], f), axis=0)
    return np.maximum.reduceat(a, np.arange(0, a.shape[1], f), axis=1)


def _thicken(crop: np.ndarray, stroke: float) -> np.ndarray:
    """Dilate strokes of about `stroke` px to about TARGET_STROKE px once the crop's longer side is scaled to BOX.

    A crop longer than WORK is max-pooled to at most WORK first: the dilation's radius grows with the crop's
    longer side, so at full size a long thin line would cost memory in the square of its length.
    """
    f = math.ceil(max(crop.shape) / WORK)
    if f > 1:
        crop = _max_pool(crop, f)
        stroke = _stroke_width(crop)
    scale = BOX / max(crop.shape)
    radius = math.ceil((TARGET_STROKE / scale - stroke) / 2)
    if radius <= 0:
        return crop
    crop = np.pad(crop, radius)
    crop = _max_filter_1d(_max_filter_1d(crop, radius, 0), radius, 1)
    r0, r1, c0, c1 = _bbox(crop)
    return crop[r0:r1, c0:c1]


def _no_ink(name: str) -> NoInkError:
    return NoInkError(f"no ink found in {name}: the image is blank or has too little contrast")


def _check_shape(ink: tuple[int, int], image: tuple[int, int], name: str) -> None:
    """Refuse ink that no digit makes: a strip of an image, a speck, or a line far longer than it is wide."""
    (ih, iw), (h, w) = ink, image
    why = ""
    if min(h, w) < MIN_SIDE:
        why = f"a {w}x{h} image is a strip, too thin to hold a digit"
    elif max(ih, iw) < max(MIN_INK, SPECK_FRACTION * min(h, w)):
        why = f"the only ink is a {iw}x{ih} speck in a {w}x{h} image"
    elif max(ih, iw) > MAX_ELONGATION * min(ih, iw):
        why = f"the ink is a {iw}x{ih} line, far thinner for its length than any digit"
    if why:
        raise NoDigitError(f"no digit found in {name}: {why}")


def mnistify(gray: np.ndarray, name: str = "the image") -> np.ndarray:
    """A 2-D float array in [0, 1] (any polarity) -> a 28x28 float32 MNIST-style digit in [0, 1], white on black.

    Raises `NoInkError` when nothing stands out from the background, and `NoDigitError` (a `NoInkError`) when what
    does is not shaped like a digit (see `_check_shape`).
    """
    g = np.asarray(gray, dtype=np.float32)
    h, w = g.shape
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
    r0, r1, c0, c1 = _bbox(ink)
    crop = np.ascontiguousarray(ink[r0:r1, c0:c1])  # contiguous, so that resizing it copies it only once
    del ink
    _check_shape(crop.shape, (h, w), name)
    scale = BOX / max(crop.shape)
    stroke = _stroke_width(crop)
    if stroke * scale < MIN_STROKE:
        crop = _thicken(crop, stroke)
        scale = BOX / max(crop.shape)
    ch, cw = crop.shape
    digit = _resize(crop, max(1, round(cw * scale)), max(1, round(ch * scale)))
    mass = float(digit.sum())
    if not mass > 0:
        raise _no_ink(name)
    dh, dw = digit.shape
    cy = float((digit.sum(axis=1) * np.arange(dh)).sum()) / mass
    cx = float((digit.sum(axis=0) * np.arange(dw)).sum()) / mass
    top, left = math.floor(CENTRE - cy + 0.5), math.floor(CENTRE - cx + 0.5)
    out = np.zeros((FIELD, FIELD), dtype=np.float32)
    y0, y1 = max(top, 0), min(top + dh, FIELD)
    x0, x1 = max(left, 0), min(left + dw, FIELD)
    if y1 <= y0 or x1 <= x0:
        raise _no_ink(name)
    out[y0:y1, x0:x1] = digit[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def preprocess(
    image: Image.Image | np.ndarray | torch.Tensor | str | os.PathLike | bytes,
    *,
    mean: float = MEAN,
    std: float = STD,
    name: str | None = None,
) -> torch.Tensor:
    """The model's input for one user image: a float32 tensor [1, 28, 28], MNIST-normalised.

    `image` is a PIL image, a path or encoded bytes (opened with `open_image`), or an array: HxW grayscale,
    HxWx3 / HxWx4 colour (or CxHxW), uint8 / other integers / bool, or floats in [0, 1] or [0, 255] (other ranges
    are min-max scaled).
    Dark-on-light and light-on-dark both work. A 28x28 image that is already white on black (an MNIST digit) is
    used as it is, without cropping or re-centring. `name` is used in error messages.

    Raises `NoInkError` for blank or near-uniform images, `NoDigitError` (a `NoInkError`) for ink no digit makes
    (a strip, a speck, a long thin line), and `UserError` for unusable ones (empty, NaN/inf, unsupported shape or
    type, too large, or more than the memory there is); never a prediction-worthy tensor made from nothing.
    """
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise UserError(f"normalisation needs a finite mean and a positive std, not mean={mean}, std={std}")
    label = name or (str(image) if isinstance(image, (str, os.PathLike)) else "the image")
    try:
        return _prepare(image, mean, std, name)
    except MemoryError:
        error = UserError(f"not enough memory to prepare {label}; no digit was read from it")
    except UserError as e:
        error = e
    # Raised without the frames it came through: they hold the image's arrays, and a caller that keeps the error
    # (Classifier.predict_each keeps one per unusable image) would keep those too.
    error.__traceback__ = error.__context__ = None
    raise error


def _prepare(image, mean: float, std: float, name: str | None) -> torch.Tensor:
    """`preprocess` itself, whose errors `preprocess` passes on without this function's frames."""
    if isinstance(image, (str, os.PathLike)):
        name = name or str(image)
        image = open_image(image)
    elif isinstance(image, (bytes, bytearray, memoryview)):
        image = open_image(image, name)
    name = name or "the image"
    gray = to_grayscale(image) if isinstance(image, Image.Image) else array_to_gray(image, name)
    image = None  # an image opened here is not needed any more
    digit = mnistify(gray, name)
    x = (digit - np.float32(mean)) / np.float32(std)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(0)
