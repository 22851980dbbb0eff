"""What the command line writes for people and programs: escaped text lines, JSON Lines, CSV, evaluation tables."""

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


def result_row(file: str, result) -> dict:
    """One image's result as plain JSON-ready data: the prediction, or the error."""
    if isinstance(result, UserError):
        return {"file": file, "error": str(result)}
    if not all(math.isfinite(p) for p in result.probabilities):  # JSON has no NaN: report it, never print it
        return {"file": file, "error": f"{file}: the model's output is not finite (NaN or infinite); no prediction"}
    top = [{"digit": d, "probability": p} for d, p in result.top_k]
    return {"file": file, "digit": result.digit, "probabilities": result.probabilities, "top_k": top}


def write_results(path: Path, rows: list[dict]) -> None:
    """Every row to `path`: JSON Lines for .jsonl, else CSV with columns file, digit, p0..p9, error."""
    if path.suffix.lower() == ".jsonl":
        text = "".join(json.dumps(row) + "\n" for row in rows)
    else:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["file", "digit", *(f"p{d}" for d in range(10)), "error"])
        for row in rows:
            probs = row.get("probabilities", [""] * 10)
            writer.writerow([row["file"], row.get("digit", ""), *probs, row.get("error", "")])
        text = buf.getvalue()
    path.write_text(text, encoding="utf-8", errors="backslashreplace")


def print_evaluation(report: dict, cm, written: list) -> None:
    """`mnistlab evaluate`'s tables: overall and per-class accuracy, the confusion matrix, the files written."""
    print(f"Test accuracy: {report['correct']}/{report['test_images']} ({100 * report['test_acc']:.2f}%)")
    print("\nPer-class accuracy:")
    print("| digit | images | correct | accuracy |\n|---|---|---|---|")
    for d, acc in enumerate(report["per_class_acc"]):
        print(f"| {d} | {int(cm[d].sum())} | {int(cm[d, d])} | {100 * acc:.2f}% |")
    print("\nConfusion matrix (rows true, columns predicted):")
    print("      " + " ".join(f"{p:>5}" for p in range(10)))
    for t in range(10):
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
            ranked = ", ".join(f"{t['digit']} {100 * t['probability']:.1f}%" for t in row["top_k"])
            print(f"{printable(row['file'])}: {row['digit']}  ({ranked})")
