"""`mnistlab predict IMAGE...`: options -> `load` -> the digit, and the number, in each image, printed and written."""

from __future__ import annotations

import argparse
from pathlib import Path

from mnistlab.cli import args as types
from mnistlab.cli.report import EXIT_USER_ERROR
from mnistlab.errors import UserError

# The columns output.write_results writes to a .csv (tests/cli/test_cli.py checks the two agree).
FOUND = "found digit"  # the candidate named for a picture of several digits: the most digit-like one found
CSV_COLUMNS = "file, digit, label, digit_score, is_digit, number, p0..p9, error"


HELP = "predict the digit, or read the number, in your own images"
DESCRIPTION = (
    "Predict digits in image files (PNG, JPEG, BMP, GIF, WebP, TIFF; any size; dark-on-light "
    "or light-on-dark). Images are prepared the way MNIST was made. A digit model also reads every digit in "
    "each picture (the digit finder, then the network on each): a picture with several is printed as its "
    "number, 'photo.jpg: 2026 (4 digits)', and --json gives 'number' and each digit's box. Exit status 2 if any "
    "image failed."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files or folders of images")
    p.add_argument(
        "--top-k", type=types.positive_int, default=3, help="how many digits to list per image (default: %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per image, one per line (errors included)")
    p.add_argument(
        "--output",
        metavar="FILE",
        help=f"also write every result to FILE: .csv with the columns {CSV_COLUMNS} (a p column per class); or "
        ".jsonl, as --json",
    )
    p.add_argument(
        "--show",
        metavar="DIR",
        help="save the 28x28 image the network saw for each input as DIR/<image name>.png (white on black), and "
        "the picture with each digit found boxed as DIR/<image name>.boxes.png, and name them next to the answer; "
        "DIR is not an input's folder, and only images an earlier --show wrote there are replaced",
    )
    types.add_model_args(p, onnx=True)


def run(args: argparse.Namespace) -> int:
    from mnistlab.infer import output
    from mnistlab.infer.classifier import image_files, load

    if args.output and not args.output.lower().endswith((".csv", ".jsonl")):
        raise UserError(f"--output must name a .csv or a .jsonl file, not {args.output!r}")
    files = image_files(args.images)
    seen = output.check_show(Path(args.show), files) if args.show else None  # before any work: nothing is lost
    classifier = load(args.model, device=args.device, engine=types.chosen_engine(args))
    results = classifier.predict_each(files, top_k=args.top_k)
    rows = [output.result_row(str(f), r, classifier.classes) for f, r in zip(files, results)]
    if classifier.reads_digits:  # the finder reads the numbers too
        read_numbers(classifier, files, results, rows, args.top_k)
    if args.show:
        output.save_seen(Path(args.show), files, results, rows, seen)
    output.print_results(rows, as_json=args.json)
    if args.output:
        output.write_results(Path(args.output), rows)
    return EXIT_USER_ERROR if any("error" in row for row in rows) else 0


def read_numbers(classifier, files, results: list, rows: list[dict], top_k: int) -> None:
    """Each read picture's number and digits (`output.reading_fields`) added to its row; a picture used as given
    (a 28x28 MNIST digit) is its one digit. Where several digits are found, the most digit-like of them is a
    candidate after the picture's own readings, as `Classifier.prediction` ranks its candidates: it is the one-digit
    answer (and the 28x28 --show saves; "found digit") when its digit score is over PREFER above theirs. So a number
    read as one blob of ink ("2076" as a 9 at digit score 0.18) gives way to one of its digits, and a digit that
    fills its picture, which the finder may see as two, keeps its own reading."""
    from mnistlab.images.preprocess import Candidate
    from mnistlab.infer import output
    from mnistlab.infer.classifier import PREFER
    from mnistlab.reading.read import Reader

    reader = None
    for i, (file, result, row) in enumerate(zip(files, results, rows)):
        if "error" in row:
            continue
        if result.candidate == "as given":
            row |= output.given_fields(row, result.seen.shape[::-1] if result.seen is not None else (28, 28))
            continue
        reader = reader or Reader(classifier)  # the finder is loaded once, for the first picture that needs it
        reading = reader.read(file)
        best = max(reading.digits, key=lambda d: d.score, default=None)
        if len(reading.digits) > 1 and best is not None and best.score > result.digit_score + PREFER:
            found = [Candidate(FOUND, best.seen)]
            results[i] = classifier.prediction([best.probabilities], found, top_k, str(file))
            row.clear()
            row |= output.result_row(str(file), results[i], classifier.classes)
        row |= output.reading_fields(reading, classifier.classes)
