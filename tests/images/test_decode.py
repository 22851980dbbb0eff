"""mnistlab.images.decode: opening user images safely: sizes checked from the header, every problem one UserError."""

from __future__ import annotations

import pytest
from conftest import encoded, png_claiming
from PIL import Image

from mnistlab.errors import UserError
from mnistlab.images.decode import MAX_SCANS, ImageTooLarge, decoded_bytes, open_image


def test_open_image_reads_files_and_bytes(tmp_path):
    data = encoded(Image.new("L", (30, 20), 128))
    (tmp_path / "a.png").write_bytes(data)
    for source in (tmp_path / "a.png", str(tmp_path / "a.png"), data, bytearray(data), memoryview(data)):
        img = open_image(source)
        assert img.size == (30, 20) and img.mode == "L"


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    img = open_image(encoded(Image.new("RGB", (40, 10)), "JPEG", exif=exif))
    assert img.size == (10, 40)


def test_pixel_bombs_are_refused_from_the_header():
    with pytest.raises(ImageTooLarge, match="too large"):
        open_image(png_claiming(100_000, 100_000), "bomb.png")
    with pytest.raises(ImageTooLarge, match="the limit is 100 pixels"):
        open_image(encoded(Image.new("L", (20, 20))), max_pixels=100)


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda p: p, "does not exist"),
        (lambda p: (p.mkdir(), p)[1], "is a folder"),
        (lambda p: (p.write_bytes(b""), p)[1], "is empty"),
        (lambda p: (p.write_bytes(b"not an image at all"), p)[1], "not an image in a format"),
        (lambda p: (p.write_bytes(encoded(Image.new("L", (50, 50)))[:60]), p)[1], "damaged or truncated"),
    ],
)
def test_every_problem_is_one_user_error_naming_the_file(tmp_path, make, why):
    path = make(tmp_path / "x.png")
    with pytest.raises(UserError, match=why) as e:
        open_image(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_formats_handed_to_other_programs_are_not_decoded():
    with pytest.raises(UserError, match="not an image in a format"):
        open_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "x.eps")


def test_a_jpeg_of_too_many_scans_is_refused():
    jpeg = encoded(Image.new("L", (8, 8)), "JPEG")
    body = jpeg[:-2] + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" * (MAX_SCANS + 1) + jpeg[-2:]
    with pytest.raises(UserError, match="scans"):
        open_image(body, "scans.jpg")


def test_decoded_bytes():
    assert decoded_bytes((10, 10), "L") == 100
    assert decoded_bytes((10, 10), "RGB") == 400  # multi-band modes take 4 bytes a pixel
    assert decoded_bytes((10, 10), "I;16") == 200
