"""Reading whole pictures: the finder's precision and recall, digits and whole numbers read, not-digits turned
down, and the work done on hostile pictures.

    python benchmarks/reading.py                                   # the bundled finder and classifier
    python benchmarks/reading.py --model runs/mine -n 100 --json benchmarks/results/reading-mine.json
    python benchmarks/reading.py --finder runs/finder/finder.safetensors -n 300
    python benchmarks/reading.py --engine onnx                     # the bundled ONNX copies on onnxruntime

Scenes are made by `synth.scenes` with the wider validation ranges (`scenes.WIDE`), seeds no training used:
one number of 2-6 digits each in the first two sets, one digit at 30-90% of the picture's side in the third. The
digits are ones nobody trained on: MNIST's TEST split (read here for measurement only, never to choose anything)
and, in the second set, printed digits and distractors in the Liberation fonts (held out from training, which
uses DejaVu only). A found box matches a true one at IoU >= 0.5; the finder's precision and recall count every box
it keeps (peak >= frame.DETECT) that is read, "precision of digits taken" only those taken for digits
(`read.digit_like` >= read.IS_DIGIT); "digits read" is the share of true digits found, taken and read right;
"digits turned down" the share of true digits found that the rule leaves out; a number is read whole when
`Reading.number` equals its digits left to right.

Not-digits: pictures of one outlier each (`scenes.lone_marks`): letters and symbols in the Liberation and FreeFont
families (held out), drawn shapes (the training's kinds, another seed), and pictures of paper, lines and specks
alone (`scenes.make_scenes` with no digit). A picture is turned down when no digit is read in it: at read.IS_DIGIT,
by the finder alone (no box read: the reading before the rule), and at the threshold that keeps 99% of this run's
true digits found (chosen on the test digits: a measurement, not the shipped rule). Hostile pictures (a 2000 x 2000
PNG of 1-px dots, a checkerboard, salt noise, a 16 MP photo-like JPEG) give the work done: the finder's input
size and the boxes scored by the classifier, and the time to read them from their encoded bytes.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import hostile  # noqa: E402
import photos  # noqa: E402

from mnistlab.calibration import threshold  # noqa: E402
from mnistlab.data.download import load_tensors  # noqa: E402
from mnistlab.reading import frame
from mnistlab.reading.finder_onnx import OnnxFinder  # noqa: E402
from mnistlab.reading.read import IS_DIGIT, SCORE_POWER, Reader, digit_like, load_finder  # noqa: E402
from mnistlab.synth import scenes, sprites  # noqa: E402

SEED = 20261207  # the benchmark's scenes: a seed no training run uses (not-digit sets: SEED + 10 ...)
KEEP = 0.99  # the share of true digits found kept by the threshold the not-digit rows are also given at
HOSTILE_SIDE = 2000  # the dots, checkerboard and salt pictures' side


def scene_sets(n: int) -> dict[str, list[scenes.Scene]]:
    images, labels = load_tensors(train=False)  # MNIST's test split: measurement only
    ranges = scenes.Ranges(**{**scenes.WIDE.__dict__, "empty": 0.0, "numbers": 1, "fewest": 2, "big": 0.0})
    lone = scenes.Ranges(**{**scenes.WIDE.__dict__, "empty": 0.0, "big": 1.0})
    handwritten = scenes.load_sprites(images, labels, fonts=[])
    liberation = sorted(glob.glob("/usr/share/fonts/truetype/liberation*/Liberation*.ttf"))
    printed = scenes.load_sprites(images, labels, fonts=liberation)
    return {
        "MNIST test digits": scenes.make_scenes(handwritten, n, np.random.default_rng(SEED), r=ranges),
        "MNIST test + Liberation fonts": scenes.make_scenes(printed, n, np.random.default_rng(SEED + 1), r=ranges),
        "one MNIST test digit, large": scenes.make_scenes(handwritten, n, np.random.default_rng(SEED + 2), r=lone),
    }


def not_digit_sets(n: int) -> dict[str, list[scenes.Scene]]:
    """Pictures without digits, per outlier kind (see the module)."""
    rng = lambda k: np.random.default_rng(SEED + 10 + k)  # noqa: E731
    fonts = {f: sorted(glob.glob(f"/usr/share/fonts/truetype/{f}/*.ttf")) for f in ("liberation", "freefont")}
    bare = sprites.Sprites(np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.int64))
    paper = scenes.Ranges(**{**scenes.WIDE.__dict__, "empty": 1.0, "big": 0.0})
    return {
        "Liberation letters, symbols": scenes.lone_marks(sprites.characters(fonts["liberation"], sprites.DISTRACT),
                                                         n, rng(0)),
        "FreeFont letters, symbols": scenes.lone_marks(sprites.characters(fonts["freefont"], sprites.DISTRACT),
                                                       n, rng(1)),
        "Liberation words": scenes.lone_marks(sprites.characters(fonts["liberation"], sprites.WORDS), n, rng(2)),
        "drawn shapes, smileys, scribbles": scenes.lone_marks(sprites.shapes(rng(3), 96), n, rng(4)),
        "paper, lines and specks": scenes.make_scenes(bare, n, rng(5), r=paper),
    }  # fmt: skip


def measure(reader: Reader, made: list[scenes.Scene]) -> tuple[dict, list[float]]:
    """A digit set's row, and the `digit_like` of every true digit found (for the 99% threshold)."""
    tp = n_found = n_true = right = whole = numbers = turned = n_read = 0
    kept: list[float] = []
    start = time.perf_counter()
    for s in made:
        r = reader.read(s.image)
        every = r.digits + r.rejected
        found = np.array([d.box for d in every], np.float32).reshape(-1, 4)
        pairs = frame.match(found, s.boxes)
        tp += len(pairs)
        n_found += len(found)
        n_read += len(r.digits)
        n_true += len(s.labels)
        taken = [i < len(r.digits) for i, _ in pairs]
        turned += taken.count(False)
        kept += [float(digit_like(every[i].found, every[i].score)) for i, _ in pairs]
        right += sum(t and every[i].digit == int(s.labels[j]) for t, (i, j) in zip(taken, pairs))
        if 2 <= len(s.labels) <= 6:
            truth = "".join(str(d) for d in s.labels[np.argsort(s.boxes[:, 0], kind="stable")])
            numbers += 1
            whole += r.number == truth
    took = time.perf_counter() - start
    return {
        "scenes": len(made), "true digits": n_true,
        "finder precision": round(tp / max(n_found, 1), 4), "finder recall": round(tp / max(n_true, 1), 4),
        "precision of digits taken": round((tp - turned) / max(n_read, 1), 4),
        "digits turned down": round(turned / max(tp, 1), 4),
        "digit accuracy (found ones)": round(right / max(tp - turned, 1), 4),
        "digits read": round(right / max(n_true, 1), 4),
        "numbers (2-6 digits)": numbers, "numbers read whole": round(whole / max(numbers, 1), 4),
        "ms per picture": round(1000 * took / max(len(made), 1), 1),
    }, kept  # fmt: skip


def most_digit_like(reader: Reader, made: list[scenes.Scene]) -> list[float]:
    """Per picture, the highest `digit_like` of the boxes read (0 where the finder keeps none)."""
    out = []
    for s in made:
        r = reader.read(s.image)
        out.append(max((float(digit_like(d.found, d.score)) for d in r.digits + r.rejected), default=0.0))
    return out


def hostile_pictures() -> dict[str, bytes]:
    """Encoded hostile pictures (see the module)."""
    images, _ = load_tensors(train=False, limit=10)
    photo = photos.photo_like(images[0].numpy(), np.random.default_rng(SEED), size=1200)
    big = np.asarray(photos.Image.fromarray(photo).resize((4616, 3464), photos.Image.Resampling.BICUBIC), np.float32)
    big += np.random.default_rng(SEED).normal(0, 6, big.shape).astype(np.float32)  # full-resolution sensor noise
    buf = io.BytesIO()
    photos.Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    side = HOSTILE_SIDE
    return {
        f"1-px dots every 3 px, {side}x{side} PNG": hostile.png(hostile.dots(1.0, side=side)),
        f"1-px checkerboard, {side}x{side} PNG": hostile.png(hostile.checkerboard(1, side=side)),
        f"5% salt noise on black, {side}x{side} PNG": hostile.png(hostile.salt(0.05, side=side)),
        "photo-like digit, 4616x3464 (16 MP) JPEG": buf.getvalue(),
    }


def work(reader: Reader, pictures: dict[str, bytes]) -> dict[str, dict]:
    """Per hostile picture: its size, the finder's input, the boxes kept and scored, the digits read, the time."""
    from mnistlab.reading.read import to_grey

    rows = {}
    for name, data in pictures.items():
        start = time.perf_counter()
        r = reader.read(data, name=name)
        took = time.perf_counter() - start
        g = to_grey(data, name)
        looks = [len(frame.views(g)), *frame.prepare(g).input.shape]  # views x channels x INPUT x INPUT
        rows[name] = {"bytes": len(data), "pixels": int(g.size), "finder input": looks,
                      "boxes kept": len(reader.find(g)[0]), "boxes scored": len(r.digits) + len(r.rejected),
                      "digits read": len(r.digits), "ms": round(1000 * took, 1)}  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--finder", type=Path, default=None, help="a finder .safetensors, .onnx with --engine onnx "
                   "(default: the bundled one)")  # fmt: skip
    p.add_argument("--model", default=None, help="the classifier (default: the bundled one)")
    p.add_argument("--engine", choices=("torch", "onnx"), default="torch", help="what runs both networks")
    p.add_argument("-n", type=int, default=300, help="scenes per set")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    import mnistlab

    classifier = mnistlab.load(a.model, device="cpu", engine=a.engine)
    if a.engine == "onnx":
        reader = Reader(classifier, OnnxFinder(a.finder) if a.finder else None)
    else:
        reader = Reader(classifier, load_finder(a.finder)[0])
    rows, kept = {}, []
    for name, made in scene_sets(a.n).items():
        rows[name], k = measure(reader, made)
        kept += k
    at99 = threshold(torch.tensor(kept), KEEP)
    for name, made in not_digit_sets(a.n).items():
        top = np.array(most_digit_like(reader, made))
        rows[name] = {"pictures": len(made), "turned down": round(float(np.mean(top < IS_DIGIT)), 4),
                      "by the finder alone": round(float(np.mean(top == 0)), 4),
                      f"at {KEEP:.0%} of digits kept here": round(float(np.mean(top < at99)), 4)}  # fmt: skip
    hard = work(reader, hostile_pictures())
    print_table(rows, hard, at99)
    if a.json:
        meta = {"finder": str(a.finder or "bundled"), "model": a.model or "bundled", "engine": a.engine, "n": a.n,
                "seed": SEED, "is_digit": IS_DIGIT, "score_power": SCORE_POWER, "threshold keeping 99% here": at99,
                "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"meta": meta, "rows": rows, "hostile": hard}, indent=2) + "\n")


def print_table(rows: dict[str, dict], hard: dict[str, dict], at99: float) -> None:
    """The rows as three Markdown tables: digit sets, not-digit sets, hostile pictures."""
    for title, names in (("digits", [k for k, r in rows.items() if "scenes" in r]),
                         (f"not digits (IS_DIGIT {IS_DIGIT}; 99% of digits here: {at99:.3f})",
                          [k for k, r in rows.items() if "pictures" in r]),
                         ("hostile pictures", None)):  # fmt: skip
        table = {k: rows[k] for k in names} if names is not None else hard
        cols = list(next(iter(table.values())))
        print(f"\n{title}\n| set | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
        for name, row in table.items():
            print(f"| {name} | " + " | ".join(str(row[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
