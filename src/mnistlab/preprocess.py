"""Turn an arbitrary user image (file, PIL image or array) into the model's 1x28x28 input, the way MNIST was made.

MNIST's digits were size-normalised to fit a 20x20 box (keeping the aspect ratio, with anti-aliasing) and then
placed in a 28x28 field so that their centre of mass sits at the centre. `preprocess` repeats that on any image:

1. grayscale (transparency composited onto a background that contrasts with the ink);
2. auto-invert to white ink on black, deciding the background from the image border;
3. stretch the contrast so the background is 0 and the ink 1, and drop faint noise a little above the background;
4. thicken strokes that would come out much thinner than MNIST's (a thin pen on a large photo);
5. crop to the ink's bounding box and scale its longer side to 20 px, anti-aliased;
6. paste into 28x28 with the ink's centre of mass at (14, 14);
7. normalise with MNIST's mean and std.

Blank or near-uniform images raise `NoInkError` instead of producing a confident guess; every other unusable
input raises `UserError`. `open_image` refuses oversized images before decoding their pixels.
"""

from __future__ import annotations

import math
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from mnistlab.errors import UserError

MAX_PIXELS = 50_000_000
"""Largest image (width x height) `open_image` decodes; bigger ones are refused from their header alone."""

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
FIELD = 28  # output side
BOX = 20  # the longer side of the ink's bounding box after scaling
CENTRE = 14.0  # where the centre of mass goes (index coordinates; MNIST's test set averages 14.0, 14.0)
MIN_CONTRAST = 0.1  # ink must differ from the background by at least this (on a 0..1 scale) ...
NOISE_FACTOR = 4.0  # ... and by this many robust standard deviations of the border's noise
MIN_THRESHOLD = 0.2  # after stretching, values below this fraction of the ink level are noise
MAX_THRESHOLD = 0.5
ALPHA_VARIATION = 0.1  # an alpha channel spanning less than this is treated as uniform and ignored
MIN_STROKE = 1.6  # strokes estimated thinner than this (output px) are thickened ...
TARGET_STROKE = 2.4  # ... to about this (MNIST's median is about 2.6 by the same estimate)

_DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
    MemoryError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


class NoInkError(UserError):
    """The image is blank, uniform or has too little contrast to hold a digit."""


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def _too_large(path: Path, pixels: int, size: tuple[int, int] | None = None) -> UserError:
    dims = f"{size[0]}x{size[1]} = " if size else ""
    return UserError(f"{path} is too large ({dims}{pixels:,} pixels); the limit is {MAX_PIXELS:,} pixels")


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file (PNG, JPEG, BMP, GIF, WebP, TIFF, ... anything Pillow reads) and decode it.

    The size is checked from the header before any pixel is decoded: images over `MAX_PIXELS` are refused.
    Animated or multi-page files give their first frame; EXIF orientation is applied. Every problem
    (missing, a folder, empty, not an image, truncated, too large) is a one-line `UserError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image file")
    if not path.is_file():
        raise UserError(f"{path} is not a regular file")
    try:
        if path.stat().st_size == 0:
            raise UserError(f"{path} is empty (0 bytes), not an image")
    except OSError as e:
        raise UserError(f"cannot read {path}: {_one_line(e)}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with open(path, "rb") as f, Image.open(f) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise _too_large(path, width * height, (width, height))
                if width < 1 or height < 1:
                    raise UserError(f"{path} has no pixels ({width}x{height})")
                if getattr(im, "n_frames", 1) > 1:
                    im.seek(0)
                im.load()
                img = im.copy()
        except UserError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            m = re.search(r"\((\d+) pixels\)", str(e))
            raise _too_large(path, int(m.group(1)) if m else MAX_PIXELS + 1) from None
        except UnidentifiedImageError:
            raise UserError(f"cannot read {path}: not an image file, or a format Pillow does not know") from None
        except _DECODE_ERRORS as e:
            raise UserError(f"cannot read {path}: the image is damaged or truncated ({_one_line(e)})") from None
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception:  # a broken EXIF block must not make a readable image unusable
        pass
    return img


# --------------------------------------------------------------------------------------------------------------
# Grayscale


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an HxWx3 array (same weights as Pillow's RGB -> L)."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _composite(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten gray + alpha onto a background that contrasts with the visible ink.

    Visible pixels mostly dark (black ink on transparent) go onto white, mostly light ones onto black. An alpha
    channel without real variation (fully opaque, uniformly translucent) is ignored.
    """
    if float(alpha.max()) - float(alpha.min()) <= ALPHA_VARIATION:
        return gray
    weight = float(alpha.sum())
    ink = float((gray * alpha).sum()) / weight if weight > 0 else float(gray.mean())
    background = 1.0 if ink < 0.5 else 0.0
    return gray * alpha + background * (1.0 - alpha)


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """A float32 array in [0, 1]: HxW (gray), HxWx2 (gray + alpha), HxWx3 (RGB) or HxWx4 (RGBA)."""
    mode = img.mode
    if mode == "1":
        return np.asarray(img.convert("L"), dtype=np.float32) / np.float32(255)
    if mode == "L":
        return np.asarray(img, dtype=np.float32) / np.float32(255)
    if mode in ("LA", "La"):
        return np.asarray(img.convert("LA"), dtype=np.float32) / np.float32(255)
    if mode in ("RGB", "RGBX"):
        return np.asarray(img.convert("RGB"), dtype=np.float32) / np.float32(255)
    if mode in ("RGBA", "RGBa"):
        return np.asarray(img.convert("RGBA"), dtype=np.float32) / np.float32(255)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        return np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / np.float32(255)
    if mode.startswith("I;16"):
        return np.asarray(img.convert("I"), dtype=np.float32) / np.float32(65535)
    if mode in ("I", "F"):
        a = np.asarray(img)
        if mode == "I":
            return _scale_unit(a, integer=True)
        return _scale_unit(a, integer=False)
    try:  # CMYK, YCbCr, LAB, HSV, ...
        return np.asarray(img.convert("RGB"), dtype=np.float32) / np.float32(255)
    except (ValueError, OSError) as e:
        raise UserError(f"cannot convert an image in mode {mode} to grayscale ({_one_line(e)})") from None


def to_grayscale(img: Image.Image) -> np.ndarray:
    """A 2-D float32 array in [0, 1] (0 black, 1 white) of any Pillow image.

    Handles modes 1, L, LA, P (with or without transparency), RGB, RGBA, I, I;16, F, CMYK and whatever Pillow
    converts to RGB. Transparency is composited onto white when the visible pixels are mostly dark and onto
    black when they are mostly light, so black-on-transparent and white-on-transparent both stay legible.
    """
    if img.width < 1 or img.height < 1:
        raise UserError(f"the image has no pixels ({img.width}x{img.height})")
    return _channels_to_gray(_pil_to_array(img)).astype(np.float32)


def _channels_to_gray(a: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx2, HxWx3 or HxWx4 float array in [0, 1] -> HxW float array."""
    if a.ndim == 2:
        return a
    c = a.shape[-1]
    if c == 1:
        return a[..., 0]
    if c == 2:
        return _composite(a[..., 0], a[..., 1])
    if c == 3:
        return _luminance(a)
    return _composite(_luminance(a[..., :3]), a[..., 3])


# --------------------------------------------------------------------------------------------------------------
# Arrays


def _scale_unit(a: np.ndarray, *, integer: bool) -> np.ndarray:
    """Map finite values to [0, 1]: uint8 by 255; other integers in 0..1, 0..255 or 0..65535 and floats in 0..1
    or 0..255 by that nominal range; anything else by min-max. Returns float32."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / np.float32(255)
    lo, hi = float(a.min()), float(a.max())
    if lo >= 0:
        if hi <= 1:
            return a.astype(np.float32)
        if hi <= 255:
            return a.astype(np.float32) / np.float32(255)
        if integer and hi <= 65535:
            return a.astype(np.float32) / np.float32(65535)
    if hi == lo:
        return np.zeros(a.shape, dtype=np.float32)
    scale = max(abs(lo), abs(hi))  # scale first so that hi - lo cannot overflow
    a = a.astype(np.float64) / scale
    lo, hi = lo / scale, hi / scale
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _array_to_gray(image, name: str) -> np.ndarray:
    """A user array (HxW, HxWxC or CxHxW with C in 1..4; uint8, other ints, bool or float) -> HxW float32."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    try:
        a = np.asarray(image)
    except Exception as e:  # whatever the object is, it is not an image
        raise UserError(f"{name} is not an image array ({_one_line(e)})") from None
    if a.dtype.kind == "b":
        a = a.astype(np.float32)  # False = 0, True = 1
    if a.dtype.kind not in "uif":
        raise UserError(f"{name} has unsupported array type {a.dtype}; expected integers or floats")
    while a.ndim > 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[-1] not in (1, 2, 3, 4) and a.shape[0] in (1, 2, 3, 4):
        a = np.moveaxis(a, 0, -1)  # CxHxW (torch layout)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 2, 3, 4)):
        raise UserError(f"{name} has shape {a.shape}; expected HxW grayscale or HxWx3 / HxWx4 colour")
    if a.size == 0:
        raise UserError(f"{name} is empty (shape {a.shape})")
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise UserError(f"{name} is too large ({a.shape[0] * a.shape[1]:,} pixels); the limit is {MAX_PIXELS:,}")
    integer = a.dtype.kind in "ui"
    if not integer:
        if not np.isfinite(a).all():
            raise UserError(f"{name} contains NaN or infinite values")
        big = np.abs(a).max()  # in the array's own precision (long doubles go beyond float64)
        if a.dtype.itemsize >= 8 and big > 1e300:  # keep min-max scaling from overflowing
            a = a / big
    if a.ndim == 3 and a.shape[-1] in (2, 4):  # colour and alpha are scaled separately
        colour = _scale_unit(a[..., :-1], integer=integer)
        alpha = _scale_unit(a[..., -1:], integer=integer)
        a = np.concatenate([colour, alpha], axis=-1)
    else:
        a = _scale_unit(a, integer=integer)
    return _channels_to_gray(a)


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
    interior = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    boundary = int((mask & ~interior).sum())
    return 2.0 * int(mask.sum()) / max(boundary, 1)


def _bbox(ink: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _resize(a: np.ndarray, width: int, height: int) -> np.ndarray:
    if a.shape == (height, width):
        return a
    img = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32))
    return np.clip(np.asarray(img.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32), 0.0, 1.0)


def _no_ink(name: str) -> NoInkError:
    return NoInkError(f"no ink found in {name}: the image is blank or has too little contrast")


def mnistify(gray: np.ndarray, name: str = "the image") -> np.ndarray:
    """A 2-D float array in [0, 1] (any polarity) -> a 28x28 float32 MNIST-style digit in [0, 1], white on black.

    Raises `NoInkError` when nothing stands out from the background.
    """
    g = np.asarray(gray, dtype=np.float32)
    h, w = g.shape
    if h >= 3 and w >= 3:
        border = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
    else:
        border = g.ravel()
    background = float(np.median(border))
    darker = float(np.clip(background - g, 0, None).sum())
    lighter = float(np.clip(g - background, 0, None).sum())
    ink = np.clip(background - g if darker > lighter else g - background, 0.0, None)
    noise = 1.4826 * float(np.median(np.abs(border - background)))
    peak = float(ink.max())
    if peak < max(MIN_CONTRAST, NOISE_FACTOR * noise):
        raise _no_ink(name)
    level = float(np.median(ink[ink >= 0.5 * peak]))  # the typical ink value, robust to a few hot pixels
    threshold = min(MAX_THRESHOLD, max(MIN_THRESHOLD, 3.0 * noise / level))
    ink = np.clip((ink / level - threshold) / (1.0 - threshold), 0.0, 1.0)
    if not (ink > 0).any():
        raise _no_ink(name)
    r0, r1, c0, c1 = _bbox(ink)
    crop = ink[r0:r1, c0:c1]
    scale = BOX / max(crop.shape)
    stroke = _stroke_width(crop)
    if stroke * scale < MIN_STROKE:
        radius = math.ceil((TARGET_STROKE / scale - stroke) / 2)
        crop = np.pad(crop, radius)
        crop = _max_filter_1d(_max_filter_1d(crop, radius, 0), radius, 1)
        r0, r1, c0, c1 = _bbox(crop)
        crop = crop[r0:r1, c0:c1]
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
    image: Image.Image | np.ndarray | torch.Tensor | str | os.PathLike,
    *,
    mean: float = MNIST_MEAN,
    std: float = MNIST_STD,
    name: str | None = None,
) -> torch.Tensor:
    """The model's input for one user image: a float32 tensor [1, 28, 28], MNIST-normalised.

    `image` is a PIL image, a path (opened with `open_image`), or an array: HxW grayscale, HxWx3 / HxWx4 colour
    (or CxHxW), uint8 / other integers / bool, or floats in [0, 1] or [0, 255] (other ranges are min-max scaled).
    Dark-on-light and light-on-dark both work. `name` is used in error messages.

    Raises `NoInkError` for blank or near-uniform images and `UserError` for unusable ones (empty, NaN/inf,
    unsupported shape or type); never a prediction-worthy tensor made from nothing.
    """
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise UserError(f"normalisation needs a finite mean and a positive std, not mean={mean}, std={std}")
    if isinstance(image, (str, os.PathLike)):
        name = name or str(image)
        image = open_image(image)
    name = name or "the image"
    if isinstance(image, Image.Image):
        gray = to_grayscale(image)
    else:
        gray = _array_to_gray(image, name)
    digit = mnistify(gray, name)
    x = (digit - np.float32(mean)) / np.float32(std)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(0)
