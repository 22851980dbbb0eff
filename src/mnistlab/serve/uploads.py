"""Reading an upload: the body within its size and time limits, the image out of multipart, JSON or raw bytes (its
candidate readings are made by `reading.prepare_upload`, in a worker process), each problem an `ApiError`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json

from fastapi import Request
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from mnistlab.errors import one_line
from mnistlab.serve.limits import Limits
from mnistlab.serve.reading import NAME, ApiError, prepare_upload

RETRY_AFTER = "1"  # seconds, sent with every 503

__all__ = [
    "NAME",
    "ApiError",
    "Reading",
    "image_bytes",
    "prepare_upload",
    "read_body",
]  # the first and last: from `reading`


class Reading:
    """The request bodies being read, before any admission place is taken (issue 28: a trickling body had held
    one): how many (`bodies`, for /metrics) and their bytes received so far, all together at most `max_bytes`; a
    body whose next bytes would pass that is refused with 503. Only bytes that arrived count, so slow clients
    announcing large bodies hold next to nothing; one event loop changes it, so it needs no lock."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.bytes, self.bodies = max_bytes, 0, 0

    def take(self, n: int) -> None:
        if self.bytes + n > self.max_bytes:
            message = f"busy: {self.bodies} request bodies being read hold {self.bytes:,} bytes"
            raise ApiError(503, message, {"Retry-After": RETRY_AFTER, "Connection": "close"})
        self.bytes += n


async def read_body(
    request: Request, cap: int, timeout_s: float = Limits.body_timeout_s, reading: Reading | None = None
) -> bytes:
    """The request's body, refused with 413 as soon as it is known to be over `cap` bytes, with 408 when it has
    not arrived in full within `timeout_s`, and with 503 when the bodies being read (`reading`) hold too much."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise ApiError(413, f"the body is {int(length):,} bytes; the limit is {cap:,}")
    reading = reading or Reading(cap)
    chunks, size = [], 0
    reading.bodies += 1
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                if size + len(chunk) > cap:
                    raise ApiError(413, f"the body is over the limit of {cap:,} bytes")
                reading.take(len(chunk))
                size += len(chunk)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, f"the body did not arrive within {timeout_s:g} s", {"Connection": "close"}) from None
    except ClientDisconnect:  # nobody is there to read the answer; it keeps the log free of a traceback
        raise ApiError(400, "the client went away before sending its whole body", reason="client_gone") from None
    finally:
        reading.bodies -= 1
        reading.bytes -= size
    return b"".join(chunks)


def _decode_base64(text: str) -> bytes:
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if ";base64" not in head:
            raise ApiError(400, "a data URL must be base64-encoded (data:image/png;base64,...)")
    text = "".join(text.split())  # MIME base64 breaks its lines every 76 characters
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "image is not valid base64") from None


async def image_bytes(
    request: Request, cap: int, timeout_s: float = Limits.body_timeout_s, reading: Reading | None = None
) -> bytes:
    """The image's encoded bytes from a multipart form (field `file`), a JSON object {"image": base64 or data URL}
    or the raw body (read as `read_body` reads it). Malformed multipart or JSON, or no image at all, is a 400."""
    body = await read_body(request, cap, timeout_s, reading)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":

        async def stream():
            yield body

        try:
            parser = MultiPartParser(request.headers, stream(), max_files=4, max_fields=16, max_part_size=cap)
            form = await parser.parse()
        except (MultiPartException, ValueError, KeyError) as e:
            raise ApiError(400, f"malformed multipart body: {one_line(e)}") from None
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "the multipart body holds no file field named 'file'")
        data = await upload.read()
        await form.close()
    elif kind == "application/json":
        try:
            obj = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"malformed JSON: {one_line(e)}") from None
        except RecursionError:  # JSON nested deeper than the parser's stack (issue 19)
            raise ApiError(400, "malformed JSON: nested too deep") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
            raise ApiError(400, 'a JSON body must be an object {"image": "<base64 or data URL>"}')
        data = _decode_base64(obj["image"])
    else:
        data = body
    if not data:
        raise ApiError(400, "no image: the body (or its file) is empty")
    return data
