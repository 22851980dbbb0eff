"""mnistlab.serve.uploads: the body within its limits, the image out of multipart, JSON or raw bytes, its readings."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')

from conftest import draw_seven, encoded, png_claiming  # noqa: E402
from PIL import Image  # noqa: E402
from starlette.requests import Request  # noqa: E402

from mnistlab.serve.uploads import ApiError, image_bytes, prepare_upload, read_body  # noqa: E402

SEVEN = encoded(draw_seven())


def request(body: bytes, content_type: str = "application/octet-stream", chunks: int = 1, length: int | None = None):
    headers = [(b"content-type", content_type.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    step = max(1, -(-len(body) // chunks))
    parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)


def status_of(coro) -> tuple[int, str]:
    with pytest.raises(ApiError) as e:
        asyncio.run(coro)
    return e.value.status, e.value.message


def test_read_body_gathers_chunks_and_refuses_bodies_over_the_cap():
    assert asyncio.run(read_body(request(b"abcdef", chunks=3), cap=6)) == b"abcdef"
    assert status_of(read_body(request(b"x", length=100), cap=10)) == (413, "the body is 100 bytes; the limit is 10")
    assert status_of(read_body(request(b"x" * 20, chunks=4), cap=10))[0] == 413  # no length given: counted


def test_a_body_slower_than_its_timeout_is_a_408():
    async def never():
        await asyncio.sleep(60)

    slow = Request({"type": "http", "method": "POST", "path": "/", "headers": []}, never)
    status, message = status_of(read_body(slow, cap=10, timeout_s=0.05))
    assert status == 408 and "within 0.05 s" in message


def test_image_bytes_from_raw_json_and_multipart():
    assert asyncio.run(image_bytes(request(SEVEN, "image/png"), cap=2**20)) == SEVEN
    b64 = base64.b64encode(SEVEN).decode()
    for image in (b64, "data:image/png;base64," + b64, "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))):
        body = json.dumps({"image": image}).encode()
        assert asyncio.run(image_bytes(request(body, "application/json"), cap=2**20)) == SEVEN
    form = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="7.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + SEVEN + b"\r\n--B--\r\n"
    )
    assert asyncio.run(image_bytes(request(form, "multipart/form-data; boundary=B"), cap=2**20)) == SEVEN


@pytest.mark.parametrize(
    "body, kind, why",
    [
        (b"{not json", "application/json", "malformed JSON"),
        (b'["image"]', "application/json", "must be an object"),
        (b'{"image": "***"}', "application/json", "not valid base64"),
        (b'{"image": "data:image/png,abc"}', "application/json", "must be base64-encoded"),
        (b"--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--B--\r\n", "multipart/form-data; boundary=B",
         "no file field named 'file'"),
        (b"", "image/png", "the body (or its file) is empty"),
    ],
)  # fmt: skip
def test_malformed_bodies_are_400s(body, kind, why):
    status, message = status_of(image_bytes(request(body, kind), cap=2**20))
    assert status == 400 and why in message


def test_prepare_upload_statuses():
    found = prepare_upload(SEVEN, max_pixels=10**6)
    assert found and found[0].seen.shape == (28, 28)
    with pytest.raises(ApiError) as e:
        prepare_upload(png_claiming(2000, 2000), max_pixels=10**6)
    assert e.value.status == 413
    with pytest.raises(ApiError) as e:
        prepare_upload(b"not an image", max_pixels=10**6)
    assert e.value.status == 415 and "the uploaded image" in e.value.message
    with pytest.raises(ApiError) as e:
        prepare_upload(encoded(Image.new("L", (64, 64), 255)), max_pixels=10**6)
    assert e.value.status == 422 and "no ink" in e.value.message


def test_the_bodies_being_read_hold_at_most_their_budget_and_give_it_back():
    """Issue 28 row 3: bodies are read before a request takes a place, within `Reading`'s bytes (only bytes that
    arrived count); past it a 503, and what a body held is given back however its reading ends."""
    from mnistlab.serve.uploads import Reading

    reading = Reading(max_bytes=10)
    assert asyncio.run(read_body(request(b"x" * 8, chunks=4), cap=100, reading=reading)) == b"x" * 8
    assert (reading.bytes, reading.bodies) == (0, 0)
    status, message = status_of(read_body(request(b"x" * 12, chunks=3), cap=100, reading=reading))
    assert status == 503 and "busy" in message and (reading.bytes, reading.bodies) == (0, 0)
    reading.take(6)  # another body holds 6 bytes: a 5-byte one no longer fits, a 4-byte one does
    assert status_of(read_body(request(b"x" * 5), cap=100, reading=reading))[0] == 503
    assert asyncio.run(read_body(request(b"x" * 4, length=4), cap=100, reading=reading)) == b"x" * 4
    assert reading.bytes == 6
