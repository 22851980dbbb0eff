"""What the command line writes for people and programs: escaped text lines, JSON Lines, CSV, evaluation and
dataset tables, and the 28x28 images the network saw."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from pathlib import Path

from mnistlab.errors import UserError
from mnistlab.store import atomic_write


def escaped(text: str) -> str:
    """`text` with its control characters (a newline, an ANSI escape in a file name) written as backslash escapes:
    what a terminal line or a CSV cell shows of a name, so that no name breaks a line or drives a terminal."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)


def printable(text: str) -> str:
    """`text` safe for one terminal line: control characters escaped (`escaped`), and bytes that are not valid in
    the terminal's encoding shown as backslash escapes instead of crashing the print."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return escaped(text).encode(encoding, "backslashreplace").decode(encoding, "replace")


def result_row(file: str, result, classes: list[str] | None = None) -> dict:
    """One image's result as plain JSON-ready data: the prediction (class index as "digit", its name as "label"),
    or the error."""
    if isinstance(result, UserError):
        return {"file": file, "error": str(result)}
    if not all(math.isfinite(p) for p in result.probabilities):  # JSON has no NaN: report it, never print it
        return {"file": file, "error": f"{file}: the model's output is not finite (NaN or infinite); no prediction"}
    names = classes or [str(i) for i in range(len(result.probabilities))]
    top = [{"digit": d, "label": names[d], "probability": p} for d, p in result.top_k]
    row = {"file": file, "digit": result.digit, "label": names[result.digit]}
    verdict = {"digit_score": result.digit_score, "is_digit": result.is_digit, "candidate": result.candidate}
    return row | {"probabilities": result.probabilities, "top_k": top} | verdict


def reading_fields(reading, classes: list[str]) -> dict:
    """A picture's `Reading` (mnistlab.reading.read) as JSON-ready fields: the number ("2026"; "" for none) and
    each digit in reading order (`FoundDigit.fields`: box in the picture's pixels, class, probability, scores)."""
    return {"number": reading.number, "digits": [d.fields(classes) for d in reading.digits]}


def given_fields(row: dict, size: tuple[int, int]) -> dict:
    """The reading of a picture used exactly as given (a 28x28 MNIST digit): its one digit, the whole picture."""
    one = {"box": [0.0, 0.0, float(size[0]), float(size[1])], "digit": row["digit"], "label": row["label"]}
    one |= {"probability": row["top_k"][0]["probability"], "digit_score": row["digit_score"], "found": 1.0}
    return {"number": row["label"], "digits": [one]}


SEEN_MARK = "mnistlab predict --show"  # the PNG text (Software) of a seen image: the only files --show replaces
BOXED = ".boxes"  # --show's picture with its digits boxed: DIR/<image name>.boxes.png beside DIR/<image name>.png
BOXED_SIDE = 1024  # the boxed picture is scaled down to this longer side (a 16 MP photo is not copied whole)


def seen_paths(folder: Path, files) -> list[Path]:
    """Where each input's seen image goes: folder/<image name>.png, then <name>-2.png, ... for a name met again (its
    boxed picture goes to the same name with BOXED before .png, which no other input's seen image takes)."""
    used: set[str] = set()
    out = []
    for file in files:
        stem, n = Path(file).stem, 1
        name = f"{stem}.png"
        while name in used or boxed_path(Path(name)).name in used:  # the same name in two input folders
            n += 1
            name = f"{stem}-{n}.png"
        used.update((name, boxed_path(Path(name)).name))
        out.append(folder / name)
    return out


def boxed_path(seen: Path) -> Path:
    return seen.with_name(f"{seen.stem}{BOXED}.png")


def check_show(folder: Path, files) -> list[Path]:
    """The seen images' paths (`seen_paths`), once it is sure that writing them destroys nothing a user had:
    refused (in one line, before any work) when `folder` is an input's own folder, is no folder, or holds, at a
    name to be written, anything but a seen image an earlier run wrote (a photo, a link, a folder)."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--show {folder}: exists and is not a folder")
    if folder.is_dir():
        here = folder.resolve()
        for file in files:
            if Path(file).resolve().parent == here:
                raise UserError(
                    f"--show {folder} is the folder of {file}: the 28x28 images would go among your images; "
                    "name a folder of their own"
                )
    paths = seen_paths(folder, files)
    for path in [p for seen in paths for p in (seen, boxed_path(seen))]:
        if os.path.lexists(path) and not _seen_image(path):
            what = "a link" if path.is_symlink() else "a folder" if path.is_dir() else "a file --show did not write"
            raise UserError(f"--show would replace {path}, {what}; name another folder, or move it away")
    return paths


def _seen_image(path: Path) -> bool:
    """Whether `path` is a regular file (not a link) that --show wrote: a PNG carrying SEEN_MARK."""
    from PIL import Image

    if path.is_symlink() or not path.is_file():
        return False
    try:
        with Image.open(path, formats=["PNG"]) as im:
            return im.info.get("Software") == SEEN_MARK
    except (OSError, ValueError, SyntaxError):  # not a PNG, or a damaged one
        return False


def save_seen(folder: Path, files, results, rows: list[dict], paths: list[Path] | None = None) -> None:
    """Each prepared image as folder/<image name>.png (28x28, white on black; `paths`, from `check_show`, say
    where), its path added to its row; and, for a picture with digits found in it, the picture with each digit
    boxed and named, as folder/<image name>.boxes.png (row["boxed"]). Each is written by
    `atomic_write.write_bytes`: a link there is replaced, never followed, and a failed write leaves what was there."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for file, path, result, row in zip(files, paths or seen_paths(folder, files), results, rows):
        if "error" in row or result.seen is None:
            continue
        img = Image.fromarray(np.rint(np.clip(result.seen, 0, 1) * 255).astype(np.uint8), mode="L")
        _write_png(path, img)
        row["seen"] = str(path)
        if row.get("digits"):
            _write_png(boxed_path(path), boxed(file, row["digits"]))
            row["boxed"] = str(boxed_path(path))


def _write_png(path: Path, img) -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", SEEN_MARK)
    png = io.BytesIO()
    img.save(png, format="PNG", pnginfo=info)
    atomic_write.write_bytes(path, png.getvalue())


def boxed(file, digits: list[dict]):
    """The picture `file` (scaled to at most BOXED_SIDE px) with each of `digits` (`reading_fields`) boxed in red
    and its label written above the box."""
    from PIL import ImageDraw, ImageFont

    from mnistlab.images.decode import open_image

    img = open_image(file).convert("RGB")
    scale = min(1.0, BOXED_SIDE / max(img.size))
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), reducing_gap=2.0)
    draw = ImageDraw.Draw(img)
    line = max(2, round(max(img.size) / 250))
    for d in digits:
        x0, y0, x1, y1 = (v * scale for v in d["box"])
        draw.rectangle((x0, y0, x1, y1), outline=(230, 20, 20), width=line)
        font = ImageFont.load_default(size=max(12, round(0.35 * (y1 - y0))))
        draw.text((x0, y0 - line), escaped(d["label"]), fill=(230, 20, 20), font=font, anchor="lb")
    return img


def write_results(path: Path, rows: list[dict]) -> None:
    """Every row to `path`: JSON Lines for .jsonl, else CSV with columns file, digit, label, digit_score, is_digit,
    number, p0..p9 (one per class), error."""
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(row) + "\n" for row in rows)
    else:
        k = max((len(row["probabilities"]) for row in rows if "probabilities" in row), default=10)
        buf = io.StringIO()
        writer = csv.writer(buf)
        header = ["file", "digit", "label", "digit_score", "is_digit", "number", *(f"p{d}" for d in range(k)), "error"]
        writer.writerow(header)
        for row in rows:
            probs = row.get("probabilities", [""] * k)
            verdict = [row.get("digit_score", ""), row.get("is_digit", ""), row.get("number", "")]
            cells = [row["file"], row.get("digit", ""), row.get("label", ""), *verdict, *probs, row.get("error", "")]
            writer.writerow([escaped(c) if isinstance(c, str) else c for c in cells])
        text = buf.getvalue()
    path.write_text(text, encoding="utf-8", errors="backslashreplace")


def print_evaluation(report: dict, cm, written: list) -> None:
    """`mnistlab evaluate`'s tables: overall and per-class accuracy, the confusion matrix, the files written."""
    k = cm.shape[0]
    names = report.get("classes") or [str(i) for i in range(k)]
    print(f"Test accuracy: {report['correct']}/{report['test_images']} ({100 * report['test_acc']:.2f}%)")
    print("\nPer-class accuracy:")
    print("| class | images | correct | accuracy |\n|---|---|---|---|")
    for d, acc in enumerate(report["per_class_acc"]):
        print(f"| {printable(names[d])} | {int(cm[d].sum())} | {int(cm[d, d])} | {100 * acc:.2f}% |")
    print("\nConfusion matrix (rows true, columns predicted, by class index):")
    print("      " + " ".join(f"{p:>5}" for p in range(k)))
    for t in range(k):
        print(f"{t:>5} " + " ".join(f"{int(v):>5}" for v in cm[t]))
    print(f"\nWrote {printable(', '.join(map(str, written)))}")


def print_results(rows: list[dict], as_json: bool) -> None:
    """Predictions on stdout, one line each (JSON Lines with `as_json`); errors on stderr, or in the JSON stream."""
    for row in rows:
        if as_json:
            print(json.dumps(row, allow_nan=False))
        elif "error" in row:
            print(f"mnistlab: error: {printable(row['error'])}", file=sys.stderr)
        elif len(row.get("digits", ())) > 1:  # a number: its digits, in reading order
            shown = f"  seen: {row['boxed']}" if "boxed" in row else ""
            print(printable(f"{row['file']}: {row['number']} ({len(row['digits'])} digits){shown}"))
        else:
            ranked = ", ".join(f"{t['label']} {100 * t['probability']:.1f}%" for t in row["top_k"])
            seen = f"  seen: {row['seen']}" if "seen" in row else ""
            if not row.get("is_digit", True):  # an answer, not an error: the image was read
                print(
                    printable(f"{row['file']}: not a digit (score {row['digit_score']:.2f}; best guess {ranked}){seen}")
                )
            else:
                print(printable(f"{row['file']}: {row['label']}  ({ranked}){seen}"))


def print_datasets(rows: list[dict], as_json: bool) -> None:
    """`mnistlab datasets`: one line (or JSON object) per dataset."""
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    print("| dataset | train | test | classes | here | what |\n|---|---|---|---|---|---|")
    for r in rows:
        here = "yes" if r["present"] else "no"
        print(f"| {r['name']} | {r['train']:,} | {r['test']:,} | {r['classes']} | {here} | {r['description']} |")
