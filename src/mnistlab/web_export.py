"""`mnistlab export --web DIR`: the drawing page as a static site that runs the ONNX model in the browser."""

from __future__ import annotations

import hashlib
import shutil
from importlib import resources
from pathlib import Path

from mnistlab.errors import UserError

# The site: the served page's index.html, marked class="static" (style.css then hides what needs the server), and
# under static/ the served page's pad and style, this page's own scripts (mnistlab/web), onnxruntime-web's wasm
# backend (mnistlab/web/ort, vendored from npm by scripts/vendor_ort_web.sh, listed in its SHA256SUMS); and the
# model, written as ONNX next to index.html.
PAGE = ("app.js", "prepare.js", "model.js")
SHARED = ("pad.js", "style.css")
STATIC, RUNTIME, MODEL = "static", "ort", "model.onnx"
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


def check_target(directory: str | Path, force: bool = False) -> Path:
    """The folder to write the site to: new, empty, or (with `force`) one whose files may be overwritten."""
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target} exists and is not a folder; name a new or empty folder for the site")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UserError(f"{target} is not empty; name a new or empty folder, or pass --force to write over its files")
    return target


def _copy(source, dest: Path) -> None:
    with resources.as_file(source) as path:
        shutil.copyfile(path, dest)


def write_runtime(dest: Path) -> None:
    """Copy the vendored onnxruntime-web files to `dest`, each checked against SHA256SUMS."""
    dest.mkdir(exist_ok=True)
    for name, digest in runtime_sums().items():
        source = _package().joinpath("web", RUNTIME, name)
        if hashlib.sha256(source.read_bytes()).hexdigest() != digest:
            raise UserError(f"mnistlab's copy of onnxruntime-web is damaged ({name}); reinstall mnistlab")
        _copy(source, dest / name)


def export_site(classifier, directory: str | Path, force: bool = False) -> Path:
    """Write the static drawing page for `classifier` to `directory` (see `check_target`); returns the folder."""
    from mnistlab.onnx_export import export_onnx

    target = check_target(directory, force)
    web, served = _package().joinpath("web"), _package().joinpath("serve", "static")
    (target / STATIC).mkdir(parents=True, exist_ok=True)
    export_onnx(classifier, target / MODEL)  # first: without the onnx extra, it says so before the rest is written
    page = served.joinpath("index.html").read_text(encoding="utf-8")
    assert page.count(MARK) == 1, "the served page's <html> tag is not the one marked here"
    (target / "index.html").write_text(page.replace(MARK, '<html lang="en" class="static">'), encoding="utf-8")
    for name in PAGE:
        _copy(web.joinpath(name), target / STATIC / name)
    for name in SHARED:
        _copy(served.joinpath(name), target / STATIC / name)
    write_runtime(target / STATIC / RUNTIME)
    return target
