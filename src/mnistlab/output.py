"""What the command line writes for people and programs: escaped text lines, JSON Lines, CSV, evaluation and
dataset tables, and the 28x28 images the network saw."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

from mnistlab.errors import UserError


def printable(text: str) -> str:
    """`text` safe for one terminal line: control characters (a newline in a file name) escaped, and bytes that
    are not valid in the terminal's encoding shown as backslash escapes instead of crashing the print."""
    text = "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding, "replace")


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


def save_seen(folder: Path, files, results, rows: list[dict]) -> None:
    """Each prepared image as folder/<image name>.png (28x28, white on black), its path added to its row."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for file, result, row in zip(files, results, rows):
        if "error" in row or result.seen is None:
            continue
        stem, n = Path(file).stem, 1
        name = f"{stem}.png"
        while name in used:  # the same name in two input folders
            n += 1
            name = f"{stem}-{n}.png"
        used.add(name)
        path = folder / name
        Image.fromarray(np.rint(np.clip(result.seen, 0, 1) * 255).astype(np.uint8), mode="L").save(path)
        row["seen"] = str(path)


def write_results(path: Path, rows: list[dict]) -> None:
    """Every row to `path`: JSON Lines for .jsonl, else CSV with columns file, digit, label, digit_score, is_digit,
    p0..p9 (one per class), error."""
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(row) + "\n" for row in rows)
    else:
        k = max((len(row["probabilities"]) for row in rows if "probabilities" in row), default=10)
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["file", "digit", "label", "digit_score", "is_digit", *(f"p{d}" for d in range(k)), "error"])
        for row in rows:
            probs = row.get("probabilities", [""] * k)
            verdict = [row.get("digit_score", ""), row.get("is_digit", "")]
            writer.writerow(
                [row["file"], row.get("digit", ""), row.get("label", ""), *verdict, *probs, row.get("error", "")]
            )
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
