"""What a preparation worker process runs: an upload's bytes to its candidate readings, or to the digits read in it
(`read_upload`), each problem an `ApiError`.

Kept free of FastAPI and torch: the worker processes import this module and what it needs (NumPy, Pillow, SciPy);
a worker that reads whole pictures builds its `Reader` (`reader`) on its first one and keeps it."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from mnistlab.errors import NoDigitError, NoInkError, UserError, one_line
from mnistlab.images.decode import ImageTooLarge, open_image
from mnistlab.images.preprocess import Candidate, candidates

NAME = "the uploaded image"  # how error messages name the image


class ApiError(Exception):
    """An answer other than 200: its status, its one-line message, any extra headers, and for /metrics the reason
    an image was refused (empty: the status's usual one, see `metrics.refusal_reason`)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, reason: str = ""):
        super().__init__(message)
        self.status, self.message, self.headers, self.reason = status, message, headers or {}, reason

    def __reduce__(self):  # raised in a worker process, pickled back to the server whole
        return ApiError, (self.status, self.message, self.headers, self.reason)


def opened(data: bytes, max_pixels: int) -> Image.Image:
    """The uploaded image: 413 for one over `max_pixels` (from its header, before decoding), 415 for what is not an
    image (or a damaged one)."""
    try:
        return open_image(data, NAME, max_pixels=max_pixels)
    except ImageTooLarge as e:
        raise ApiError(413, str(e)) from None
    except UserError as e:
        raise ApiError(415, str(e)) from None


def png_data_url(seen: np.ndarray) -> str:
    """A 28x28 image in [0, 1] as a PNG data URL (what the network saw, in an answer)."""
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(seen * 255), 0, 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def prepare_upload(data: bytes, max_pixels: int) -> list[Candidate]:
    """The candidate 28x28 images, as `mnistlab predict` makes them: 413 and 415 as `opened` says, 422 for an image
    without a digit. Runs in one of the preparation pool's worker processes."""
    img = opened(data, max_pixels)
    try:
        return candidates(img, name=NAME)
    except NoDigitError as e:  # (before NoInkError: a NoDigitError is one)
        raise ApiError(422, str(e), reason="no_digit") from None
    except NoInkError as e:
        raise ApiError(422, str(e), reason="no_ink") from None
    except UserError as e:
        raise ApiError(422, str(e), reason="unreadable") from None


def reader(source: str | None):
    """The `Reader` (finder and classifier) a worker process reads whole pictures with: the served weights
    (`source`: a run folder or a weights file; None for the bundled ones) on onnxruntime where they can be (the
    bundled model), else torch. Built once per worker process (`PreparePool.run`'s `using`); 503 if it cannot be."""
    from mnistlab.infer.classifier import load
    from mnistlab.reading.read import Reader

    try:
        return Reader(load(source, device="cpu", engine="auto"))
    except (UserError, ImportError, OSError) as e:
        raise ApiError(503, f"cannot read numbers: {one_line(e)}", reason="no_reader") from None


def read_upload(found_by, data: bytes, max_pixels: int) -> dict:
    """Every digit in the uploaded picture, found and read by `found_by` (a `Reader`): the number, the picture's
    size (the boxes are in its pixels) and per digit `FoundDigit.fields` with every class's probability and the
    28x28 image read (a PNG data URL); 413 and 415 as `opened` says. A picture without digits gives number ""
    and no digits."""
    img = opened(data, max_pixels)
    try:
        reading = found_by.read(img, name=NAME)
    except UserError as e:
        raise ApiError(422, str(e), reason="unreadable") from None
    classes = found_by.classifier.classes
    digits = [
        d.fields(classes) | {"probabilities": [float(p) for p in d.probabilities], "seen": png_data_url(d.seen)}
        for d in reading.digits
    ]
    return {"number": reading.number, "width": img.width, "height": img.height, "digits": digits}
