"""`mnistlab export --web DIR`: the drawing page as a static site that runs the ONNX model in the browser."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib import resources
from pathlib import Path

from mnistlab.errors import UserError
from mnistlab.store.atomic_write import check_space, real_folder, write_bytes

# The site: the served page's index.html, marked class="static" (style.css then hides what needs the server), and
# under static/ the served page's pad, photo reading and style, this page's own scripts (mnistlab/web), the reading
# path's constants (CONSTANTS, written from mnistlab.reading's: `reading_constants`), onnxruntime-web's wasm
# backend (mnistlab/web/ort, vendored from npm by scripts/vendor_ort_web.sh, listed in its SHA256SUMS); and the
# model, written as ONNX next to index.html, beside the bundled digit finder's ONNX copy.
PAGE = ("app.js", "prepare.js", "model.js", "find.js")
SHARED = ("pad.js", "read.js", "style.css")
STATIC, RUNTIME, MODEL, FINDER = "static", "ort", "model.onnx", "finder.onnx"
CONSTANTS = "constants.js"
MARK = '<html lang="en">'


def _package():
    return resources.files("mnistlab")


def runtime_sums() -> dict[str, str]:
    """{file name: SHA-256} of the vendored runtime, from its SHA256SUMS."""
    text = _package().joinpath("web", RUNTIME, "SHA256SUMS").read_text()
    return {name.strip(): digest for digest, name in (line.split(None, 1) for line in text.splitlines() if line)}


def ort_version() -> str:
    """The version of onnxruntime-web the site ships (pinned in scripts/vendor_ort_web.sh)."""
    return _package().joinpath("web", RUNTIME, "VERSION").read_text().strip()


def site_files() -> list[str]:
    """The files of the site, as paths relative to its folder."""
    ort = [f"{STATIC}/{RUNTIME}/{name}" for name in runtime_sums()]
    return ["index.html", MODEL, FINDER, *(f"{STATIC}/{name}" for name in (*PAGE, *SHARED, CONSTANTS)), *ort]


def check_target(directory: str | Path, force: bool = False) -> Path:
    """The folder to write the site to: new, empty, or (with `force`) one whose files may be overwritten; where a
    file of the site is due, a folder is refused (and a file where a folder is due) before anything is written."""
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} exists and is not a folder; name a new or empty folder for the site")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UserError(f"{target} is not empty; name a new or empty folder, or pass --force to write over its files")
    _check_layout(target)
    writable = next(p for p in (target, *target.absolute().parents) if p.exists())
    if not os.access(writable, os.W_OK | os.X_OK):
        raise UserError(f"cannot write into {writable} (permission denied); name a folder you may write to")
    return target


def _check_layout(target: Path) -> None:
    """A folder where the site writes a file, or a file where it needs a folder: refused (a link is replaced)."""
    folders, linked = (target / STATIC, target / STATIC / RUNTIME), None
    for folder in folders:
        if folder.is_symlink():
            linked = folder  # replaced by a folder of the site's own, whose files are all new
            break
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{folder} is a file where the site needs a folder; move it away or name another")
    for path in (target / name for name in site_files()):
        if (linked is None or linked not in path.parents) and not path.is_symlink() and path.is_dir():
            raise UserError(f"{path} is a folder where the site writes a file; move it away or name another folder")


def runtime_files() -> dict[str, bytes]:
    """The vendored onnxruntime-web files, each checked against SHA256SUMS."""
    files = {}
    for name, digest in runtime_sums().items():
        data = _package().joinpath("web", RUNTIME, name).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise UserError(f"mnistlab's copy of onnxruntime-web is damaged ({name}); reinstall mnistlab")
        files[name] = data
    return files


def reading_constants() -> dict:
    """The reading path's constants that the page's port of it (web/find.js) works with, from where mnistlab
    defines them: the finder's input and outputs (reading.frame, reading.finder_onnx), how boxes are kept,
    cropped and read as numbers (reading.read), and how a picture is made grey (gray) and how large it may be."""
    from mnistlab.images import decode, gray
    from mnistlab.reading import finder_onnx, frame, read

    return {
        "INPUT": frame.INPUT, "STRIDE": frame.STRIDE, "MAX_FOUND": frame.MAX_FOUND, "DETECT": frame.DETECT,
        "LOOK": frame.LOOK, "TILE": frame.TILE, "SMALL": frame.SMALL, "ZOOM": frame.ZOOM, "LARGE": frame.LARGE,
        "GREY": list(frame.GREY), "INPUT_NAME": finder_onnx.INPUT_NAME, "OUTPUTS": list(finder_onnx.OUTPUTS),
        "SAME": read.SAME, "MARGIN": read.MARGIN, "NUMBER_GAP": read.NUMBER_GAP, "CROP_SIDE": read.CROP_SIDE,
        "INK_FLOOR": read.INK_FLOOR, "SCORE_POWER": read.SCORE_POWER, "IS_DIGIT": read.IS_DIGIT,
        "ALPHA_VARIATION": gray.ALPHA_VARIATION, "MAX_PIXELS": decode.MAX_PIXELS,
    }  # fmt: skip


def constants_module() -> bytes:
    """static/constants.js: `reading_constants` as the ES module the page imports."""
    head = "// Written by mnistlab export --web from mnistlab.reading's constants (web_export.reading_constants).\n"
    return (head + f"export const READING = {json.dumps(reading_constants(), indent=1)};\n").encode("utf-8")


def site_contents(model: bytes) -> dict[str, bytes]:
    """Every file of the site for the ONNX `model` ({path in the site: bytes}), read before anything is written."""
    from mnistlab.reading.read import bundled_finder_onnx

    web, served = _package().joinpath("web"), _package().joinpath("serve", "static")
    page = served.joinpath("index.html").read_text(encoding="utf-8")
    assert page.count(MARK) == 1, "the served page's <html> tag is not the one marked here"
    files = {"index.html": page.replace(MARK, '<html lang="en" class="static">').encode("utf-8"), MODEL: model}
    files[FINDER] = bundled_finder_onnx().read_bytes()
    files[f"{STATIC}/{CONSTANTS}"] = constants_module()
    files |= {f"{STATIC}/{name}": web.joinpath(name).read_bytes() for name in PAGE}
    files |= {f"{STATIC}/{name}": served.joinpath(name).read_bytes() for name in SHARED}
    return files | {f"{STATIC}/{RUNTIME}/{name}": data for name, data in runtime_files().items()}


def write_site(target: Path, files: dict[str, bytes]) -> Path:
    """Write `files` (`site_contents`) into `target`, each whole or not at all, into the folder itself: a link in
    it where the site puts a file or a folder is replaced, and what it pointed to is not touched. If a write fails,
    a folder this made is removed again."""
    made = not os.path.lexists(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        for name, data in files.items():
            for folder in reversed(Path(name).parents[:-1]):  # static, then static/ort: each a real folder
                real_folder(target / folder)
            write_bytes(target / name, data)
    except BaseException:
        if made:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def export_site(classifier, directory: str | Path, force: bool = False) -> Path:
    """Write the static drawing page for `classifier` to `directory` (see `check_target`); returns the folder."""
    from mnistlab.export.onnx_export import onnx_bytes

    target = check_target(directory, force)
    files = site_contents(onnx_bytes(classifier))
    check_space({target / name: len(data) for name, data in files.items()})
    return write_site(target, files)
