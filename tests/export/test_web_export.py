"""`mnistlab export --web DIR`: the static site and its vendored onnxruntime-web, and the page in chromium on a plain
static server (no mnistlab process), at a sub-path, reading drawn digits as the served page reads them.

$MNISTLAB_STATIC_SCREENSHOT names where to save the static page's screenshot (docs/img/static-page.png is made so);
otherwise it goes to tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, one_line_error, run_main
from drawing import DIGITS, HASH, draw, launch, needs_chromium

from mnistlab.export import web_export

ORT = REPO / "src" / "mnistlab" / "web" / "ort"
TOLERANCE = 1e-3  # the static page's probabilities against the served page's, for the same drawing


def test_the_vendored_runtime_is_the_one_the_script_pins():
    sums = web_export.runtime_sums()
    assert set(sums) == {"ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm", "VERSION"}
    assert {p.name for p in ORT.iterdir()} == set(sums) | {"SHA256SUMS"}  # nothing else ships
    for name, digest in sums.items():
        assert hashlib.sha256((ORT / name).read_bytes()).hexdigest() == digest, name
    script = (REPO / "scripts" / "vendor_ort_web.sh").read_text()
    assert re.search(r"^VERSION=(\S+)$", script, re.M).group(1) == web_export.ort_version()
    assert f"v{web_export.ort_version()}" in (ORT / "ort.wasm.bundle.min.mjs").read_text()[:200]


def test_the_static_page_refuses_the_pictures_mnistlab_predict_refuses():
    """The page's pixel limit is images.decode.MAX_PIXELS, written into its constants.js (the one limit of
    `mnistlab predict`); its scripts hold no limit of their own, and the served page leaves the limit to the server."""
    from mnistlab.images.decode import MAX_PIXELS

    assert web_export.reading_constants()["MAX_PIXELS"] == MAX_PIXELS
    assert f'"MAX_PIXELS": {MAX_PIXELS}' in web_export.constants_module().decode()
    scripts = {p: p.read_text() for d in ("web", "serve/static") for p in (REPO / "src/mnistlab" / d).glob("*.js")}
    assert [p.name for p, text in scripts.items() if "MAX_PIXELS" in text] == ["find.js"]
    assert not [p.name for p, text in scripts.items() if re.search(r"\d[\d_]{5,}|\de[67]\b", text)]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The bundled model's site (`mnistlab export --web`), at a sub-path (a/b/site) of the folder a server serves."""
    target = tmp_path_factory.mktemp("www") / "a" / "b" / "site"
    r = run_main("export", "--web", target)
    assert r.returncode == 0 and r.stderr.startswith(f"wrote {target}/"), r.stderr
    return target


def test_the_site_holds_the_page_the_runtime_and_the_model_with_relative_urls_only(site):
    names = {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()}
    ort = {f"ort/{n}" for n in web_export.runtime_sums()}
    static = {*web_export.PAGE, *web_export.SHARED, web_export.CONSTANTS, *ort}
    assert names == {"index.html", "model.onnx", "finder.onnx"} | {f"static/{n}" for n in static}
    assert '<html lang="en" class="static">' in (site / "index.html").read_text()
    for name in ("index.html", *(f"static/{n}" for n in (*web_export.PAGE, *web_export.SHARED, web_export.CONSTANTS))):
        text = (site / name).read_text()
        assert "http://" not in text and "https://" not in text, name  # no CDN: the runtime ships in the site
        assert not re.search(r"""(src|href)="/|from "/|fetch\("/""", text), name  # any sub-path: relative URLs
    assert (site / "static" / "ort" / "ort-wasm-simd-threaded.wasm").stat().st_size > 1_000_000


def test_user_errors_are_one_line(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert "--force" in one_line_error(run_main("export", "--web", full))
    assert (full / "notes.txt").read_text() == "mine" and len(list(full.iterdir())) == 1
    assert "not a folder" in one_line_error(run_main("export", "--web", full / "notes.txt"))
    one_line_error(run_main("export", "--web", tmp_path / "new", "--model", tmp_path / "missing.safetensors"))
    assert not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------------------------------------------
# The page's preparation (prepare.js) run by node against mnistlab's, on drawings made here

NODE_RUN = """
import { prepare } from "./prepare.mjs";
import { readFileSync } from "node:fs";
const out = {};
for (const [name, c] of Object.entries(JSON.parse(readFileSync(process.argv[2], "utf8")))) {
  const r = prepare({ a: Float32Array.from(c.a), h: c.h, w: c.w });
  out[name] = r.error ? null : Array.from(r.seen);
}
console.log(JSON.stringify(out));
"""


def pad_drawing(lines, width, ink=255, paper=0, blur=0.0):
    """A 280 x 280 drawing of polylines, as a gray plane in [0, 1] (gray.to_grayscale, as the server makes it)."""
    from PIL import Image, ImageDraw, ImageFilter

    from mnistlab.images.gray import to_grayscale

    img = Image.new("RGB", (280, 280), (paper,) * 3)
    for points in lines:
        ImageDraw.Draw(img).line(points, fill=(ink,) * 3, width=width, joint="curve")
    return to_grayscale(img.filter(ImageFilter.GaussianBlur(blur)) if blur else img)


@pytest.mark.skipif(not shutil.which("node"), reason="no node to run the page's preparation outside a browser")
def test_the_pages_preparation_is_mnistlabs(tmp_path):
    """Thin strokes (thickened), a symmetric stroke (its centre of mass on a half pixel), dark ink on white, soft
    edges, a small drawing, and a speck (no digit): the same 28x28 image as `preprocess.candidates`' first."""
    import numpy as np

    from mnistlab.errors import NoInkError
    from mnistlab.images.preprocess import candidates

    drawings = {
        "thin 7": pad_drawing([[(70, 50), (210, 50), (120, 240)]], 3),
        "straight 1": pad_drawing([[(140, 30), (150, 250)]], 22),
        "dark 4": pad_drawing([[(180, 40), (60, 170), (220, 170)], [(180, 40), (180, 250)]], 12, ink=0, paper=255),
        "soft 3": pad_drawing([[(80, 60), (190, 70), (120, 140), (200, 200), (90, 240)]], 14, blur=3),
        "small 2": pad_drawing([[(100, 120), (160, 110), (110, 160), (170, 160)]], 5),
        "speck": pad_drawing([[(140, 140), (141, 141)]], 2),
    }
    (tmp_path / "prepare.mjs").write_text((REPO / "src" / "mnistlab" / "web" / "prepare.js").read_text())
    (tmp_path / "run.mjs").write_text(NODE_RUN)
    (tmp_path / "in.json").write_text(
        json.dumps({k: {"a": g.ravel().tolist(), "h": g.shape[0], "w": g.shape[1]} for k, g in drawings.items()})
    )
    run = subprocess.run(["node", "run.mjs", "in.json"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    for name, gray in drawings.items():
        try:
            first = candidates(gray)[0]
        except NoInkError:  # (NoDigitError is one)
            assert out[name] is None, name
            continue
        assert first.kind == "photo path" and out[name] is not None, name
        assert np.abs(np.asarray(out[name]).reshape(28, 28) - first.seen).max() <= 1e-6, name


# ----------------------------------------------------------------------------------------------------------------
# In chromium, beside the served page


@pytest.fixture(scope="module")
def static_url(site):
    """`python -m http.server` on a free port serving the folder above the site; yields the site's URL."""
    root = site.parents[2]
    p = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        port = re.search(r"port (\d+)", p.stdout.readline()).group(1)
        yield f"http://127.0.0.1:{port}/{site.relative_to(root).as_posix()}/"
    finally:
        p.terminate()
        p.wait(10)
        p.stdout.close()


def pad_pixels(page) -> str:
    """A digest of the pad's pixels: the two pages were drawn alike when theirs agree."""
    return page.evaluate("""() => {
        const pad = document.getElementById("pad");
        const d = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
        let h = 0;
        for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) >>> 0;
        return String(h);
    }""")


# The served page's answers, each with the drawing it was asked about (the PNG the page posted)
RECORD_ANSWERS = """
    window.answers = [];
    const real = window.fetch;
    window.fetch = async (url, options) => {
        const r = await real(url, options);
        if (String(url).endsWith("/v1/predict")) {
            window.answers.push({ body: options.body, out: await r.clone().json() });
        }
        return r;
    };
"""
# The answer to the pad as it is now, or null while the page has not had it
ANSWER_TO_THE_PAD = """async () => {
    const pad = document.getElementById("pad"), w = pad.width, h = pad.height;
    const want = pad.getContext("2d").getImageData(0, 0, w, h).data;
    for (const a of [...window.answers].reverse()) {
        const c = new OffscreenCanvas(w, h), g = c.getContext("2d");
        g.drawImage(await createImageBitmap(a.body), 0, 0);
        const got = g.getImageData(0, 0, w, h).data;
        if (got.every((v, i) => v === want[i])) return a.out;
    }
    return null;
}"""


def served_answer(page, strokes) -> dict:
    """Draw on the served page; its answer to the finished drawing (POST /v1/predict's JSON)."""
    page.bring_to_front()  # a page behind another encodes its pad (toBlob) when chromium gets round to it
    page.evaluate("window.answers = []")
    draw(page, strokes)
    for _ in range(1200):  # (only ends a broken run: a loaded machine answers in seconds, not this)
        if (answer := page.evaluate(ANSWER_TO_THE_PAD)) is not None:
            return answer
        page.wait_for_timeout(100)
    raise AssertionError("the served page did not answer for the finished drawing in 120 s")


def static_answer(page, strokes) -> dict:
    """Draw on the static page; its answer to the finished drawing (window.mnistlabAnswer)."""
    page.bring_to_front()
    draw(page, strokes)
    page.wait_for_function("() => document.body.dataset.pending === '0' && window.mnistlabAnswer", timeout=60_000)
    return page.evaluate("window.mnistlabAnswer")


@pytest.fixture(scope="module")
def browser():
    """One headless chromium, for both pages."""
    pytest.importorskip("fastapi", reason='the served page needs the serve extra: pip install "mnistlab[serve]"')
    yield from launch(pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright"))


def same_digits(static, live, expect) -> float:
    """Draw each of DIGITS on both pages: the static page reads it, as the served page does; the largest difference
    between their probabilities."""
    worst = 0.0
    for digit, strokes in DIGITS.items():
        for page in (static, live):
            page.get_by_test_id("clear").click()
        expect(static.get_by_test_id("prediction")).to_have_text("")
        mine, theirs = static_answer(static, strokes), served_answer(live, strokes)
        expect(static.get_by_test_id("prediction")).to_have_text(digit)
        expect(static.get_by_test_id("seen")).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
        expect(static.get_by_test_id("probabilities").locator(".best")).to_have_attribute("data-digit", digit)
        assert pad_pixels(static) == pad_pixels(live), "the two pads were drawn differently"
        # the server reads more than one reading of an image; for a drawing it keeps the first, the page's one
        assert (mine["candidate"], theirs["candidate"]) == ("photo path", "photo path"), theirs["candidate"]
        diff = max(abs(a - b) for a, b in zip(mine["probabilities"], theirs["probabilities"], strict=True))
        print(f"{digit}: largest probability difference {diff:.2e}, digit score {mine['digit_score']:.4f}")
        assert diff <= TOLERANCE, (digit, mine["probabilities"], theirs["probabilities"])
        worst = max(worst, diff)
    return worst


@needs_chromium
def test_the_static_page_reads_digits_as_the_served_page_does(browser, static_url, served, tmp_path):
    expect = pytest.importorskip("playwright.sync_api").expect
    static, live = (browser.new_context(viewport={"width": 800, "height": 900}).new_page() for _ in "ab")
    static.goto(static_url)
    live.add_init_script(RECORD_ANSWERS)
    live.goto(served)
    expect(static.locator("body")).to_have_attribute("data-ready", "true", timeout=60_000)
    expect(static.get_by_test_id("upload")).to_be_hidden()  # what needs the server is not on the static page
    expect(static.locator("#explain")).to_be_hidden()
    expect(static.locator("[data-static]")).to_be_visible()
    expect(live.locator("[data-static]")).to_be_hidden()

    worst = same_digits(static, live, expect)
    print(f"largest probability difference over {len(DIGITS)} digits: {worst:.2e}")
    shot = Path(os.environ.get("MNISTLAB_STATIC_SCREENSHOT") or tmp_path / "static.png")
    static.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    prediction = static.get_by_test_id("prediction")
    for page in (static, live):
        page.get_by_test_id("clear").click()
    expect(prediction).to_have_text("")
    assert static.get_by_test_id("seen").get_attribute("src") is None
    mine, theirs = static_answer(static, HASH), served_answer(live, HASH)  # the same "not a digit", the same score
    assert mine["is_digit"] is theirs["is_digit"] is False
    assert abs(mine["digit_score"] - theirs["digit_score"]) <= TOLERANCE, (mine["digit_score"], theirs["digit_score"])
    assert max(abs(a - b) for a, b in zip(mine["probabilities"], theirs["probabilities"])) <= TOLERANCE
    expect(prediction).to_have_text("not a digit")
    expect(prediction).to_have_class(re.compile(r"\bnot-digit\b"))
    expect(static.get_by_test_id("message")).to_contain_text("digit score")


def test_force_replaces_links_in_the_folder_and_never_writes_through_them(tmp_path):
    """Issue 28: `export --web DIR --force` with links in DIR to files and a folder elsewhere replaced those."""
    outside, site = tmp_path / "outside", tmp_path / "site"
    (outside / "dir").mkdir(parents=True)
    (outside / "victim.txt").write_text("my notes")
    (outside / "dir" / "app.js").write_text("keep")
    site.mkdir()
    (site / "index.html").symlink_to(outside / "victim.txt")
    (site / "model.onnx").symlink_to(outside / "victim.txt")
    (site / "static").symlink_to(outside / "dir", target_is_directory=True)
    r = run_main("export", "--web", site, "--force")
    assert r.returncode == 0, r.stderr
    assert (outside / "victim.txt").read_text() == "my notes" and (outside / "dir" / "app.js").read_text() == "keep"
    assert sorted(p.name for p in (outside / "dir").iterdir()) == ["app.js"]
    files = {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()}
    assert files == set(web_export.site_files()) and not [p for p in site.rglob("*") if p.is_symlink()]


def test_a_site_rewrite_that_fails_midway_keeps_each_file_whole(site, tmp_path):
    """A full disk under `--web DIR --force` (a file-size limit here: the 2.4 MB model and the 14 MB runtime fail):
    every file is the old one or the new one, never a truncated one, and no temporary file is left."""
    from conftest import file_size_limit

    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    with file_size_limit(1_000_000):
        line = one_line_error(run_main("export", "--web", copy, "--force"))
    assert "cannot write" in line and "model.onnx" in line, line
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_a_folder_where_the_site_writes_a_file_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "site"
    (target / "index.html").mkdir(parents=True)
    line = one_line_error(run_main("export", "--web", target, "--force"))
    assert "is a folder where the site writes a file" in line
    assert [str(p.relative_to(target)) for p in target.rglob("*")] == ["index.html"]
