"""Any image or array as one grayscale plane of floats in [0, 1]: colour reduced, transparency composited, ranges
scaled."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mnistlab.errors import UserError, one_line
from mnistlab.images.decode import MAX_PIXELS
from mnistlab.pixels import is_tensor

ALPHA_VARIATION = 0.1  # an alpha channel spanning less than this is treated as uniform and ignored


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of an HxWx3 array (same weights as Pillow's RGB -> L)."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _composite(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten gray + alpha onto a background that contrasts with the visible ink (in place: both are overwritten).

    Visible pixels mostly dark (black ink on transparent) go onto white, mostly light ones onto black. An alpha
    channel without real variation (fully opaque, uniformly translucent) is ignored.
    """
    if float(alpha.max()) - float(alpha.min()) <= ALPHA_VARIATION:
        return gray
    weight = float(alpha.sum())
    ink = float((gray * alpha).sum()) / weight if weight > 0 else float(gray.mean())
    background = 1.0 if ink < 0.5 else 0.0
    gray *= alpha  # gray * alpha + background * (1 - alpha), without full-size temporaries
    np.subtract(1.0, alpha, out=alpha)
    alpha *= background
    gray += alpha
    return gray


def _band(img: Image.Image, band: str, top: float = 255.0) -> np.ndarray:
    """One band of a Pillow image as a float32 array in [0, 1] (a 1-byte-a-pixel copy, then 4 bytes a pixel)."""
    out = np.asarray(img.getchannel(band) if len(img.getbands()) > 1 else img).astype(np.float32)
    out /= np.float32(top)
    return out


def _pil_luma(img: Image.Image) -> np.ndarray:
    """The luma of an RGB or RGBA Pillow image as float32 in [0, 1], one band at a time (never an HxWx3 float)."""
    gray = _band(img, "R")
    gray *= 0.299
    for band, weight in (("G", 0.587), ("B", 0.114)):
        c = _band(img, band)
        c *= weight
        gray += c
        del c  # before the next band is made, not after
    return gray


def to_grayscale(img: Image.Image) -> np.ndarray:
    """A 2-D float32 array in [0, 1] (0 black, 1 white) of any Pillow image.

    Handles modes 1, L, LA, P (with or without transparency), RGB, RGBA, I, I;16, F, CMYK and whatever Pillow
    converts to RGB. Transparency is composited onto white when the visible pixels are mostly dark and onto
    black when they are mostly light, so black-on-transparent and white-on-transparent both stay legible.
    Colour is reduced to gray before any float array is made, so a W x H image costs about 3 float32 planes.
    """
    if img.width < 1 or img.height < 1:
        raise UserError(f"the image has no pixels ({img.width}x{img.height})")
    mode = img.mode
    if mode in ("1", "L"):
        return _band(img.convert("L") if mode == "1" else img, "L")
    if mode in ("LA", "La"):
        la = img.convert("LA")
        return _composite(_band(la, "L"), _band(la, "A"))
    if mode.startswith("I;16"):
        return _band(img.convert("I"), "I", 65535.0)
    if mode in ("I", "F"):
        a = np.asarray(img)
        if mode == "F" and not np.isfinite(a).all():  # (a float TIFF may hold them)
            raise UserError("the image holds NaN or infinite pixels")
        return _scale_unit(a, integer=mode == "I")
    alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info)
    try:  # CMYK, YCbCr, LAB, HSV, ...: via RGB
        rgb = img if mode == ("RGBA" if alpha else "RGB") else img.convert("RGBA" if alpha else "RGB")
    except (ValueError, OSError) as e:
        raise UserError(f"cannot convert an image in mode {mode} to grayscale ({one_line(e)})") from None
    gray = _pil_luma(rgb)
    if rgb.mode == "RGBA":
        gray = _composite(gray, _band(rgb, "A"))
    return gray


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


def array_to_gray(image, name: str) -> np.ndarray:
    """A user array (HxW, HxWxC or CxHxW with C in 1..4; uint8, other ints, bool or float) -> HxW float32."""
    a = _as_image_array(image, name)
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


def _as_image_array(image, name: str) -> np.ndarray:
    """The user's array as HxW or HxWxC (C in 1..4) of integers or floats, within the pixel limit."""
    if is_tensor(image):
        image = image.detach().cpu().numpy()
    try:
        a = np.asarray(image)
    except Exception as e:  # whatever the object is, it is not an image
        raise UserError(f"{name} is not an image array ({one_line(e)})") from None
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
    return a
