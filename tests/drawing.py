"""Drawing on the pages in a real browser, shared by the browser tests: Debian's chromium driven by Playwright,
digits as strokes, and the mouse drawing them stroke by stroke on the pad."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MNISTLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
NO_CHROMIUM = "no chromium to drive (apt-get install chromium, as .ci/run does, or set $MNISTLAB_CHROMIUM)"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=NO_CHROMIUM)


def ellipse(cx, cy, rx, ry, n=28):
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]


# Each digit: strokes, each a list of points in fractions of the pad's side.
DIGITS = {
    "1": [[(0.45, 0.22), (0.55, 0.12), (0.55, 0.88)]],
    "7": [[(0.25, 0.18), (0.75, 0.18), (0.62, 0.45), (0.45, 0.86)]],
    "0": [ellipse(0.5, 0.5, 0.2, 0.33)],
}
# Not a digit: a hash sign (the training's not-digits include pen-drawn ones, notdigits.DRAWN)
HASH = [[(0.4, 0.15), (0.35, 0.85)], [(0.65, 0.15), (0.6, 0.85)], [(0.2, 0.38), (0.8, 0.38)], [(0.2, 0.62), (0.8, 0.6)]]


def launch(sync_api):
    """One headless chromium, as a context manager's generator: `yield from launch(sync_api)` in a fixture."""
    # a page's answers take well under a second, but a loaded machine (CI beside other work) can make it many: the
    # checks wait up to a minute, which only a broken page ever reaches (Playwright's own default is 5 s)
    sync_api.expect.set_options(timeout=60_000)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def pad_points(page, stroke) -> list[tuple[float, float]]:
    """A stroke's points (fractions of the pad's side) in the page's CSS pixels."""
    box = page.get_by_test_id("pad").bounding_box()
    return [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in stroke]


def path(points, steps=6):
    """The points with `steps` evenly spaced points on each segment, as a finger or pen reports them."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        out += [(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps) for i in range(1, steps + 1)]
    return out


def draw(page, strokes) -> None:
    """Draw `strokes` on the page's pad with the mouse, one press, moves and release per stroke."""
    for stroke in strokes:
        points = pad_points(page, stroke)
        page.mouse.move(*points[0])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(x, y, steps=6)
        page.mouse.up()


def expect_boxes_on_digits(page, number: str, pasted, width: int) -> None:
    """The page's photo view shows one box per digit of `number`, left to right, each labelled with its digit and
    centred on the digit as pasted (`pasted`: x0, y0, x1, y1 in the picture's px; the picture `width` px wide)."""
    from playwright.sync_api import expect

    boxes = page.get_by_test_id("photo-view").locator(".box")
    expect(boxes).to_have_count(len(number))
    picture = page.locator("#photo-img").bounding_box()
    scale = picture["width"] / width
    for i, (digit, (x0, y0, x1, y1)) in enumerate(zip(number, pasted)):
        expect(boxes.nth(i)).to_have_attribute("data-digit", digit)
        expect(boxes.nth(i)).to_have_text(digit)
        shown = boxes.nth(i).bounding_box()  # the box's centre lies on the digit as pasted, in page pixels
        cx, cy = shown["x"] + shown["width"] / 2, shown["y"] + shown["height"] / 2
        assert picture["x"] + x0 * scale < cx < picture["x"] + x1 * scale, (digit, shown, picture)
        assert picture["y"] + y0 * scale < cy < picture["y"] + y1 * scale, (digit, shown, picture)
