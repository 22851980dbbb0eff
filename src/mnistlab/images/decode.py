"""Reading user images safely: files or bytes in the formats mnistlab decodes, with the pixel limit and the
decoder's work checked from the header before decoding."""

from __future__ import annotations

import functools
import io
import os
import re
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

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
    source: str | os.PathLike | bytes | bytearray | memoryview, name: str | None = None, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Open an image file, or the encoded bytes of one: PNG, JPEG, GIF, BMP, TIFF, WebP, PPM/PGM or ICO (`FORMATS`).

    The size is checked from the header before any pixel is decoded (the one place it is checked): images over
    `max_pixels` (at most `MAX_PIXELS`), or whose pixels would take over `MAX_DECODED_BYTES`, are refused with
    `ImageTooLarge`; running out of memory while decoding is a `UserError` too.
    Animated or multi-page files give their first frame; EXIF orientation is applied. Every problem
    (missing, a folder, empty, not an image, truncated, too large) is a one-line `UserError` naming the file
    (or `name`, for bytes).
    """
    path: str | Path
    opener: Callable[[], IO[bytes]]
    if isinstance(source, (bytes, bytearray, memoryview)):
        path = name or "the image bytes"
        if len(source) == 0:
            raise UserError(f"{path} is empty (0 bytes), not an image")
        opener = functools.partial(io.BytesIO, bytes(source))
    else:
        path = file = Path(source)
        _check_file(file)
        opener = functools.partial(_open_binary, file)
    return _upright(_decode(opener, path, min(max_pixels, MAX_PIXELS)), path)


def _decode(opener: Callable[[], IO[bytes]], path, limit: int) -> Image.Image:
    """Frame 0 of the image, decoded once its header passed the checks."""
    width = height = need = 0
    failed = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's remarks on odd files (an ICO's sizes): its errors are what count
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with opener() as f, Image.open(f, formats=FORMATS) as im:
                width, height = im.size
                need = _check_header(im, path, limit)
                _check_decoder_work(im, f, path)
                im.load()  # frame 0 (n_frames is never asked: it walks a TIFF's whole chain of pages)
                return im.copy()
        except UserError:
            raise
        except MemoryError:
            size = f" {width}x{height} pixels ({_mb(need)})" if need else " it"
            failed = f"cannot read {path}: not enough memory to decode{size}"
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            m = re.search(r"\((\d+) pixels\)", str(e))
            raise _too_large(path, int(m.group(1)) if m else limit + 1, limit) from None
        except UnidentifiedImageError:
            raise UserError(
                f"cannot read {path}: not an image in a format mnistlab reads ({', '.join(FORMATS)})"
            ) from None
        except _DECODE_ERRORS as e:
            raise UserError(f"cannot read {path}: the image is damaged or truncated ({one_line(e)})") from None
    raise UserError(failed)  # here, not in the handler, so that the half-decoded image is freed with the MemoryError


def _check_header(im: Image.Image, path, limit: int) -> int:
    """The bytes the decoded pixels will take; `ImageTooLarge` past `limit` pixels or `MAX_DECODED_BYTES`."""
    width, height = im.size
    if width * height > limit:
        raise _too_large(path, width * height, limit, (width, height))
    if width < 1 or height < 1:
        raise UserError(f"{path} has no pixels ({width}x{height})")
    need = decoded_bytes(im.size, im.mode)
    if need > MAX_DECODED_BYTES:
        raise ImageTooLarge(f"{path} is too large to decode ({width}x{height} {im.mode} pixels, {_mb(need)})")
    return need


def _upright(img: Image.Image, path) -> Image.Image:
    """`img` turned as its EXIF orientation says (as it is when the EXIF block is broken)."""
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


def _open_binary(path: Path) -> IO[bytes]:
    return open(path, "rb")


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
