"""What a preparation worker process runs: an upload's bytes to its candidate readings, each problem an `ApiError`.

Kept free of FastAPI and torch: the worker processes import this module and what it needs (NumPy, Pillow, SciPy)."""

from __future__ import annotations

from mnistlab.errors import NoDigitError, NoInkError, UserError
from mnistlab.images import ImageTooLarge, open_image
from mnistlab.preprocess import Candidate, candidates

NAME = "the uploaded image"  # how error messages name the image


class ApiError(Exception):
    """An answer other than 200: its status, its one-line message, any extra headers, and for /metrics the reason
    an image was refused (empty: the status's usual one, see `metrics.refusal_reason`)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, reason: str = ""):
        super().__init__(message)
        self.status, self.message, self.headers, self.reason = status, message, headers or {}, reason

    def __reduce__(self):  # raised in a worker process, pickled back to the server whole
        return ApiError, (self.status, self.message, self.headers, self.reason)


def prepare_upload(data: bytes, max_pixels: int) -> list[Candidate]:
    """The candidate 28x28 images, as `mnistlab predict` makes them: 413 for an image over `max_pixels` (from its
    header, before decoding), 415 for what is not an image (or a damaged one), 422 for an image without a digit.
    Runs in one of the preparation pool's worker processes."""
    try:
        img = open_image(data, NAME, max_pixels=max_pixels)
    except ImageTooLarge as e:
        raise ApiError(413, str(e)) from None
    except UserError as e:
        raise ApiError(415, str(e)) from None
    try:
        return candidates(img, name=NAME)
    except NoDigitError as e:  # (before NoInkError: a NoDigitError is one)
        raise ApiError(422, str(e), reason="no_digit") from None
    except NoInkError as e:
        raise ApiError(422, str(e), reason="no_ink") from None
    except UserError as e:
        raise ApiError(422, str(e), reason="unreadable") from None
