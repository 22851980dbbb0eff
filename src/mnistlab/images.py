"""Reading user images safely: files or bytes with a pixel limit checked before decoding, and any image or array
turned into a grayscale array in [0, 1]."""

from __future__ import annotations

import functools
import io
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageMode, ImageOps, UnidentifiedImageError

from mnistlab.errors import UserError, one_line

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")  # what folders are read for
# The formats Pillow may decode for mnistlab, whatever a file's name says. EPS, PS and PDF are left out: Pillow hands
# them to Ghostscript, an external program that a hostile file can keep busy for ever (issue 19).
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM", "ICO")
MAX_PIXELS = 50_000_000
"""Largest image (width x height) `open_image` decodes; bigger ones are refused from their header alone."""

MAX_DECODED_BYTES = 4 * MAX_PIXELS
"""Most memory the decoded pixels of one image may take (Pillow's widest modes, RGBA, I and F, use 4 bytes a
pixel). Preparing an allowed image peaks at about 12 bytes a pixel in all (measured: 600 MB at 49 megapixels)."""

MAX_SCANS = 256
"""Most scans a JPEG may hold. A progressive JPEG has about 10; libjpeg decodes the whole image once per scan, so
a file of tens of thousands of empty scans keeps the decoder busy for minutes (issue 19)."""

ALPHA_VARIATION = 0.1  # an alpha channel spanning less than this is treated as uniform and ignored

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
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


class ImageTooLarge(UserError):
    """An image over the pixel limit, or whose pixels would take too much memory (the server's 413)."""


def _too_large(path, pixels: int, limit: int, size: tuple[int, int] | None = None) -> ImageTooLarge:
    dims = f"{size[0]}x{size[1]} = " if size else ""
    return ImageTooLarge(f"{path} is too large ({dims}{pixels:,} pixels); the limit is {limit:,} pixels")


def decoded_bytes(size: tuple[int, int], mode: str) -> int:
    """Bytes Pillow allocates for the pixels of an image of this size and mode, known from the header alone."""
    try:
        bands = len(ImageMode.getmode(mode).bands)
        itemsize = int(ImageMode.getmode(mode).typestr[-1])
    except (KeyError, ValueError):
        bands, itemsize = 4, 4
    return size[0] * size[1] * (itemsize if bands == 1 else 4)  # Pillow keeps every multi-band mode in 4 bytes


def open_image(
    source: str | os.PathLike | bytes, name: str | None = None, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Open an image file, or the encoded bytes of one: PNG, JPEG, GIF, BMP, TIFF, WebP, PPM/PGM or ICO (`FORMATS`).

    The size is checked from the header before any pixel is decoded (the one place it is checked): images over
    `max_pixels` (at most `MAX_PIXELS`), or whose pixels would take over `MAX_DECODED_BYTES`, are refused with
    `ImageTooLarge`; running out of memory while decoding is a `UserError` too.
    Animated or multi-page files give their first frame; EXIF orientation is applied. Every problem
    (missing, a folder, empty, not an image, truncated, too large) is a one-line `UserError` naming the file
    (or `name`, for bytes).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        path = name or "the image bytes"
        if len(source) == 0:
            raise UserError(f"{path} is empty (0 bytes), not an image")
        opener = functools.partial(io.BytesIO, bytes(source))
    else:
        path = Path(source)
        _check_file(path)
        opener = functools.partial(open, path, "rb")
    width = height = need = 0
    failed = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's remarks on odd files (an ICO's sizes): its errors are what count
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with opener() as f, Image.open(f, formats=FORMATS) as im:
                width, height = im.size
                if width * height > min(max_pixels, MAX_PIXELS):
                    raise _too_large(path, width * height, min(max_pixels, MAX_PIXELS), (width, height))
                if width < 1 or height < 1:
                    raise UserError(f"{path} has no pixels ({width}x{height})")
                need = decoded_bytes(im.size, im.mode)
                if need > MAX_DECODED_BYTES:
                    raise ImageTooLarge(f"{path} is too large to decode ({width}x{height} {im.mode} pixels, {_mb(need)})")
                _check_decoder_work(im, f, path)
                im.load()  # frame 0 (n_frames is never asked: it walks a TIFF's whole chain of pages)
                img = im.copy()
        except UserError:
            raise
        except MemoryError:
            size = f" {width}x{height} pixels ({_mb(need)})" if need else " it"
            failed = f"cannot read {path}: not enough memory to decode{size}"
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            m = re.search(r"\((\d+) pixels\)", str(e))
            limit = min(max_pixels, MAX_PIXELS)
            raise _too_large(path, int(m.group(1)) if m else limit + 1, limit) from None
        except UnidentifiedImageError:
            raise UserError(
                f"cannot read {path}: not an image in a format mnistlab reads ({', '.join(FORMATS)})"
            ) from None
        except _DECODE_ERRORS as e:
            raise UserError(f"cannot read {path}: the image is damaged or truncated ({one_line(e)})") from None
    if failed:  # raised here, not in the handler, so that the half-decoded image is freed with the MemoryError
        raise UserError(failed)
    try:
        return ImageOps.exif_transpose(img) or img
    except MemoryError:
        failed = f"cannot read {path}: not enough memory to rotate it as its EXIF orientation says"
    except Exception:  # a broken EXIF block must not make a readable image unusable
        return img
    del img
    raise UserError(failed)


def _check_decoder_work(im: Image.Image, f, path) -> None:
    """Refuse a file whose header promises far more decoding work than its pixels need: a JPEG of over `MAX_SCANS`
    scans, or a TIFF whose tiles are far larger than the image (libtiff allocates a whole tile before decoding)."""
    if im.format == "JPEG":
        f.seek(0)
        scans, tail = 0, b""
        while chunk := f.read(1 << 20):  # a scan starts with the marker FF DA; entropy-coded data never holds it
            scans += (tail + chunk).count(b"\xff\xda")
            tail = chunk[-1:]
            if scans > MAX_SCANS:
                raise UserError(f"{path} is a JPEG of over {MAX_SCANS} scans, which no camera or editor writes")
    elif im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        tile = int(tags.get(322, 0) or 0) * int(tags.get(323, 0) or 0)  # TileWidth x TileLength
        allowed = min(MAX_PIXELS, max(4 * im.width * im.height, 1 << 20))
        if tile > allowed:
            raise UserError(f"{path} is a {im.width}x{im.height} TIFF in tiles of {tile:,} pixels each, too large")


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB"


def _check_file(path: Path) -> None:
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
        raise UserError(f"cannot read {path}: {one_line(e)}") from None


# --------------------------------------------------------------------------------------------------------------
# Grayscale


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
    if isinstance(image, torch.Tensor):
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
