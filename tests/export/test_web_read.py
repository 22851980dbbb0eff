"""The static page (`mnistlab export --web`) reads photos of numbers with no server: the finder (finder.onnx) and the
classifier on onnxruntime-web, the reading path ported to JS (web/find.js) with mnistlab's own constants
(static/constants.js); in chromium, against `Reader(mnistlab.load(engine="onnx")).read` on the same pictures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from conftest import encoded
from drawing import expect_boxes_on_digits, launch, needs_chromium
from photos import written_number
from test_web_export import site, static_url  # noqa: F401 (the fixtures: the exported site on a static server)

from mnistlab.data.download import load_tensors
from mnistlab.export import web_export
from mnistlab.reading.read import bundled_finder_onnx

NUMBER = "305"  # three MNIST training digits the bundled finder and classifier read right (as test_serve_read's)
BOX_PX = 1.0  # the page's boxes against Python's, in picture px (float32 step for step: they agree far closer)
TOLERANCE = 1e-3  # the page's probabilities and 28x28 images against Python's


@pytest.fixture(scope="module")
def pictures(data_dir) -> dict:
    """{name: (PNG bytes, the digits' boxes as pasted)}, all of MNIST training digits: NUMBER dark on white 400x200
    paper (the finder's input shrinks it), 42 light on dark 160x90 (enlarged), and NUMBER black on transparent."""
    images, labels = load_tensors(True, data_dir, limit=300)  # MNIST's training split only
    paper, boxes = written_number(images.numpy(), labels.numpy(), NUMBER)
    small, small_boxes = written_number(images.numpy(), labels.numpy(), "42", size=(160, 90), height=40)
    rgba = np.zeros((*paper.shape, 4), np.uint8)
    rgba[..., 3] = 255 - paper  # black ink, the paper transparent
    tiny, tiny_boxes = written_number(images.numpy(), labels.numpy(), NUMBER, size=(160, 60), height=24)
    page = np.full((700, 1000), 255, np.uint8)  # found in the tiles of frame.views: 8 px tall in the whole view
    page[500:560, 700:860] = tiny
    return {
        "305 on paper": (encoded(paper), boxes),
        "42 in chalk, small": (encoded(255 - small), small_boxes),
        "305 on transparent": (encoded(rgba), boxes),
        "305 small on a large page": (
            encoded(page),
            [(x0 + 700, y0 + 500, x1 + 700, y1 + 500) for x0, y0, x1, y1 in tiny_boxes],
        ),
    }


@pytest.fixture(scope="module")
def page(static_url):  # noqa: F811 (the fixture imported above)
    """The static page in a desktop-sized window of a headless chromium."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright")
    for browser in launch(sync_api):
        pg = browser.new_context(viewport={"width": 800, "height": 900}).new_page()
        pg.goto(static_url)
        sync_api.expect(pg.locator("body")).to_have_attribute("data-ready", "true")
        yield pg


def page_reading(page, png: bytes, tmp_path) -> dict:
    """Upload `png` to "Read a photo"; the page's answer (window.mnistlabReading, 28x28 images as lists)."""
    photo = tmp_path / "photo.png"
    photo.write_bytes(png)
    page.evaluate("window.mnistlabReading = null")
    page.get_by_test_id("photo").set_input_files(str(photo))
    page.wait_for_function("() => window.mnistlabReading", timeout=60_000)
    return page.evaluate(
        "() => ({ ...window.mnistlabReading, digits: window.mnistlabReading.digits.map((d) => ({ ...d, seen: "
        "Array.from(d.seen) })) })"
    )


def test_the_site_carries_the_finder_and_mnistlabs_reading_constants(site):  # noqa: F811
    assert (site / web_export.FINDER).read_bytes() == bundled_finder_onnx().read_bytes()
    text = (site / "static" / web_export.CONSTANTS).read_text()
    written = json.loads(re.search(r"export const READING = (\{.*\});", text, re.S).group(1))
    assert written == web_export.reading_constants() and {"INPUT", "DETECT", "SAME", "NUMBER_GAP"} <= set(written)
    find = (site / "static" / "find.js").read_text()
    assert not re.search(r"\b(256|0\.45|0\.06|0\.8|160)\b", find), "a constant of mnistlab's copied into find.js"


@needs_chromium
def test_the_static_page_reads_a_photo_of_a_number_with_a_box_on_each_digit(page, pictures, tmp_path):
    expect = pytest.importorskip("playwright.sync_api").expect
    png, pasted = pictures["305 on paper"]
    page_reading(page, png, tmp_path)
    expect(page.get_by_test_id("number")).to_have_text(NUMBER)
    expect(page.get_by_test_id("read-message")).to_have_text("")
    expect_boxes_on_digits(page, NUMBER, pasted, 400)
    expect(page.get_by_test_id("prediction")).to_have_text("")  # the drawing pad's answer is left alone


@needs_chromium
def test_the_page_reads_as_mnistlab_reads(page, pictures, tmp_path):
    """Each picture: the same boxes (within BOX_PX), digits in the same order, the same number, the same 28x28
    images and probabilities (within TOLERANCE) as mnistlab's Reader on onnxruntime."""
    import mnistlab
    from mnistlab.reading.read import Reader

    reader = Reader(mnistlab.load(engine="onnx"))
    for name, (png, _) in pictures.items():
        mine, theirs = page_reading(page, png, tmp_path), reader.read(png)
        assert mine["number"] == theirs.number and theirs.digits, (name, mine["number"], theirs.number)
        assert len(mine["digits"]) == len(theirs.digits), name
        box = max(abs(a - b) for m, t in zip(mine["digits"], theirs.digits) for a, b in zip(m["box"], t.box))
        seen = max(
            float(np.abs(np.asarray(m["seen"]) - t.seen.ravel()).max()) for m, t in zip(mine["digits"], theirs.digits)
        )
        probs = max(
            abs(a - b)
            for m, t in zip(mine["digits"], theirs.digits)
            for a, b in zip(m["probabilities"], t.probabilities)
        )
        print(f"{name}: {theirs.number!r}, boxes within {box:.1e} px, images {seen:.1e}, probabilities {probs:.1e}")
        assert box <= BOX_PX and seen <= TOLERANCE and probs <= TOLERANCE, name
        for m, t in zip(mine["digits"], theirs.digits):
            assert m["digit"] == t.digit and abs(m["found"] - t.found) <= TOLERANCE, name
            assert abs(m["digit_score"] - t.score) <= TOLERANCE, name
    assert page.get_by_test_id("number").text_content() == mine["number"]


# ----------------------------------------------------------------------------------------------------------------
# find.js's steps run by node against mnistlab's, on random inputs (the pictures above need not reach every branch)

NODE_RUN = """
import { prepare, decode, distinct, readingOrder, numberOf, digitLike, views, merge } from "./find.js";
import { readFileSync } from "node:fs";
const c = JSON.parse(readFileSync(process.argv[2], "utf8"));
const f = (a) => Float32Array.from(a);
console.log(JSON.stringify({
  prepared: c.greys.map((g) => prepare({ a: f(g.a), h: g.h, w: g.w })).map((p) => [Array.from(p.input), p.scale]),
  decoded: decode(f(c.heat), f(c.size), f(c.offset), c.grid),
  distinct: distinct(c.boxes.map(f)),
  lines: readingOrder(c.page.map(f)),
  number: numberOf(c.page.map(f), c.digits, readingOrder(c.page.map(f))),
  digitLike: c.found.map((v, i) => digitLike(v, c.scores[i])),
  views: c.greys.map((g) => views({ a: f(g.a), h: g.h, w: g.w }).map((v) => [Array.from(v.input), v.scale, v.origin,
    v.inner, Boolean(v.zoomed)])),
  merged: merge(views({ a: f(c.greys[2].a), h: c.greys[2].h, w: c.greys[2].w }),
    c.viewBoxes.map((b, v) => ({ boxes: b.map((x) => Array.from(f(x))), scores: Array.from(f(c.viewScores[v])) }))),
}));
"""


@pytest.mark.skipif(not shutil.which("node"), reason="no node to run the page's reading path outside a browser")
def test_the_pages_reading_steps_are_mnistlabs(site, tmp_path):  # noqa: F811
    from mnistlab.reading import frame
    from mnistlab.reading.read import IS_DIGIT, _number, digit_like, distinct, reading_order

    rng = np.random.default_rng(0)
    for name in ("find.js", "prepare.js", web_export.CONSTANTS):
        shutil.copy(site / "static" / name, tmp_path / name)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "run.js").write_text(NODE_RUN)
    greys = [rng.random((170, 300), np.float32), rng.random((120, 90), np.float32)]  # shrunk, enlarged
    greys.append(np.random.default_rng(1).random((520, frame.LOOK + 7), np.float32))  # tiles too (frame.views)
    grid = frame.INPUT // frame.STRIDE
    heat, size, offset = (rng.normal(0, 2, (1, c, grid, grid)).astype(np.float32) for c in (1, 2, 2))
    size += 3
    corners = rng.uniform(0, 200, (40, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(5, 40, (40, 2)).astype(np.float32)], 1)
    rows = np.repeat([20, 80, 140], 6)[:, None] + rng.uniform(-8, 8, (18, 1))  # three lines, gaps of all widths
    lefts = np.tile(np.cumsum(rng.uniform(25, 70, 6)), 3)[:, None]
    page = np.concatenate([lefts, rows, lefts + 22, rows + 40], 1).astype(np.float32)[rng.permutation(18)]
    digits = rng.integers(0, 10, 18).tolist()
    case = {"greys": [{"a": g.ravel().tolist(), "h": g.shape[0], "w": g.shape[1]} for g in greys], "grid": grid}
    case |= {"heat": heat.ravel().tolist(), "size": size.ravel().tolist(), "offset": offset.ravel().tolist()}
    case |= {"boxes": boxes.tolist(), "page": page.tolist(), "digits": digits}
    found_at, score_of = rng.uniform(0.3, 1, 200).astype(np.float32), rng.uniform(0, 1, 200).astype(np.float32)
    case |= {"found": found_at.tolist(), "scores": score_of.tolist()}
    looked = frame.views(greys[2])  # whole, zoomed, 2 x 2 tiles: boxes of every size, some on a tile's inner edge
    more = np.random.default_rng(2)  # (the draws above stay as they were)
    corners = more.uniform(-10, 250, (len(looked), 20, 2)).astype(np.float32)
    view_boxes = np.concatenate([corners, corners + more.uniform(4, 120, corners.shape).astype(np.float32)], 2)
    for v, f in enumerate(looked[1:], 1):  # heights about the least (zoomed) or most (tiles) kept: either side of it
        near = (frame.LARGE if f.zoomed else frame.SMALL) + more.uniform(-8, 8, 20)
        view_boxes[v, :, 3] = view_boxes[v, :, 1] + near * f.scale / looked[0].scale
    view_scores = more.uniform(0.3, 1, (len(looked), 20)).astype(np.float32)
    case |= {"viewBoxes": view_boxes.tolist(), "viewScores": view_scores.tolist()}
    (tmp_path / "in.json").write_text(json.dumps(case))
    run = subprocess.run(["node", "run.js", "in.json"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    for g, seen in zip(greys, out["views"]):  # frame.views: the same inputs, scales and origins
        want = frame.views(g)
        assert [v[4] for v in seen] == [v.zoomed for v in want] and len(want) == (6 if g is greys[2] else 2)
        for (x, scale, origin, inner, _), v in zip(seen, want):
            assert scale == v.scale and np.allclose(origin, v.origin, rtol=0, atol=1e-9) and inner == list(v.inner)
            assert np.abs(np.asarray(x).reshape(v.input.shape) - v.input).max() < 1e-6
    merged = frame.merge(looked, view_boxes, view_scores)  # the whole view's, the zoomed view's large, tiles' small
    assert np.array_equal(np.asarray(out["merged"]["scores"], np.float32), merged[1])
    assert np.abs(np.asarray(out["merged"]["boxes"]) - merged[0]).max() < 1e-3
    for chosen in ([1], [2, 3, 4, 5]):  # the zoomed view's finds, the tiles': some kept, some left out
        alone = np.where(np.isin(np.arange(len(looked)), chosen)[:, None], view_scores, 0)
        over = int((alone >= frame.DETECT).sum())
        assert 0 < len(frame.merge(looked, view_boxes, alone)[1]) < over, chosen
    assert len(merged[1]) < frame.MAX_FOUND
    for g, (x, scale) in zip(greys, out["prepared"]):
        framed = frame.prepare(g)
        assert scale == framed.scale and np.abs(np.asarray(x).reshape(framed.input.shape) - framed.input).max() < 1e-6
    found, scores = frame.decode(heat, size, offset)
    assert np.abs(np.asarray(out["decoded"]["boxes"]) - found[0]).max() < 1e-3
    assert np.array_equal(np.asarray(out["decoded"]["scores"], np.float32), scores[0])
    assert out["distinct"] == distinct(boxes).tolist() and 5 < sum(out["distinct"]) < 35  # some kept, some dropped
    lines = reading_order(page)
    assert out["lines"] == lines and len(lines) == 3 and out["number"] == _number(page, digits, lines)
    assert " " in out["number"].split(" ", 2)[2], out["number"]  # a gap within a line, not only between lines
    like = digit_like(found_at, score_of)  # the not-a-digit rule: the same values, the same side of IS_DIGIT
    assert np.abs(np.asarray(out["digitLike"], np.float32) - like).max() < 1e-6
    assert [v >= IS_DIGIT for v in out["digitLike"]] == (like >= IS_DIGIT).tolist() and 0 < (
        like >= IS_DIGIT
    ).sum() < 200
