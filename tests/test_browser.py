"""The drawing page in a real browser: Playwright drives Debian's chromium against `mnistlab serve` on a free
localhost port, draws digits stroke by stroke with the mouse, and reads the page's answers.

$MNISTLAB_SCREENSHOT names where to save the screenshot (the README's is made so); otherwise it goes to tmp_path."""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the test extra)")

from conftest import REPO  # noqa: E402

CHROMIUM = os.environ.get("MNISTLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="no chromium to drive (apt-get install chromium, as .ci/run does, or set $MNISTLAB_CHROMIUM)",
)


def ellipse(cx, cy, rx, ry, n=28):
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]


# Each digit: strokes, each a list of points in fractions of the pad's side.
DIGITS = {
    "1": [[(0.45, 0.22), (0.55, 0.12), (0.55, 0.88)]],
    "7": [[(0.25, 0.18), (0.75, 0.18), (0.62, 0.45), (0.45, 0.86)]],
    "0": [ellipse(0.5, 0.5, 0.2, 0.33)],
}


@pytest.fixture(scope="module")
def page(served):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            pg = browser.new_page(viewport={"width": 800, "height": 900})
            pg.goto(served)
            yield pg
        finally:
            browser.close()


def draw(page, strokes) -> None:
    box = page.get_by_test_id("pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(x, y, steps=6)
        page.mouse.up()


def test_drawn_digits_are_read_and_clear_clears(page, tmp_path):
    expect = sync_api.expect
    prediction, seen = page.get_by_test_id("prediction"), page.get_by_test_id("seen")
    for digit, strokes in DIGITS.items():
        page.get_by_test_id("clear").click()
        expect(prediction).to_have_text("")
        draw(page, strokes)
        expect(prediction).to_have_text(digit, timeout=15_000)
        expect(seen).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
        bars = page.get_by_test_id("probabilities").locator("[role=listitem]")
        expect(bars).to_have_count(10)
        expect(page.get_by_test_id("probabilities").locator(".best")).to_have_attribute("data-digit", digit)
    page.locator("#explain summary").click()
    page.get_by_test_id("layer").select_option("conv3")
    expect(page.get_by_test_id("heatmap")).to_have_attribute("data-digit", "0", timeout=15_000)  # /v1/explain's
    units = page.get_by_test_id("units").bounding_box()
    page.mouse.move(units["x"] + units["width"] * 0.45, units["y"] + units["height"] * 0.25)
    expect(page.get_by_test_id("rf")).to_contain_text("receptive field 10×10")
    shot = Path(os.environ.get("MNISTLAB_SCREENSHOT") or tmp_path / "serve.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0
    page.get_by_test_id("clear").click()
    expect(prediction).to_have_text("")
    assert seen.get_attribute("src") is None
    page.get_by_test_id("upload").set_input_files(str(REPO / "examples" / "digits" / "seven_pen.png"))
    expect(prediction).to_have_text("7", timeout=15_000)
