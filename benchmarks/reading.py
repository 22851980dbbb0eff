"""Reading whole pictures: the finder's precision and recall, digit accuracy and whole-number accuracy.

    python benchmarks/reading.py                                   # the bundled finder and classifier
    python benchmarks/reading.py --finder runs/finder/finder.safetensors -n 300 --json benchmarks/results/reading.json
    python benchmarks/reading.py --engine onnx                     # the bundled ONNX copies on onnxruntime

Scenes are made by `reading.scenes` with the wider validation ranges (`scenes.WIDE`), seeds no training used:
one number of 2-6 digits each in the first two sets, one digit at 30-90% of the picture's side in the third. The
digits are ones nobody trained on: MNIST's TEST split (read here for measurement only, never to choose anything)
and, in the second set, printed digits and distractors in the Liberation fonts (held out from training, which
uses DejaVu only). A found box matches a true one at IoU >= 0.5; "digits read" is the share of true digits found
and read right; a number is read whole when `Reading.number` equals its digits left to right.
"""

from __future__ import annotations

import argparse
import glob
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mnistlab.data import load_tensors
from mnistlab.reading import frame, scenes
from mnistlab.reading.finder_onnx import OnnxFinder
from mnistlab.reading.read import Reader, load_finder

SEED = 20261207  # the benchmark's scenes: a seed no training run uses


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


def measure(reader: Reader, made: list[scenes.Scene]) -> dict:
    tp = n_found = n_true = right = whole = numbers = 0
    start = time.perf_counter()
    for s in made:
        r = reader.read(s.image)
        found = np.array([d.box for d in r.digits], np.float32).reshape(-1, 4)
        pairs = frame.match(found, s.boxes)
        tp += len(pairs)
        n_found += len(found)
        n_true += len(s.labels)
        right += sum(r.digits[i].digit == int(s.labels[j]) for i, j in pairs)
        if 2 <= len(s.labels) <= 6:
            truth = "".join(str(d) for d in s.labels[np.argsort(s.boxes[:, 0], kind="stable")])
            numbers += 1
            whole += r.number == truth
    took = time.perf_counter() - start
    return {
        "scenes": len(made), "true digits": n_true,
        "finder precision": round(tp / max(n_found, 1), 4), "finder recall": round(tp / max(n_true, 1), 4),
        "digit accuracy (found ones)": round(right / max(tp, 1), 4), "digits read": round(right / max(n_true, 1), 4),
        "numbers (2-6 digits)": numbers, "numbers read whole": round(whole / max(numbers, 1), 4),
        "ms per picture": round(1000 * took / max(len(made), 1), 1),
    }  # fmt: skip


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
    rows = {name: measure(reader, made) for name, made in scene_sets(a.n).items()}
    for name, row in rows.items():
        print(f"{name}: {json.dumps(row)}")
    if a.json:
        meta = {"finder": str(a.finder or "bundled"), "model": a.model or "bundled", "engine": a.engine, "n": a.n,
                "seed": SEED,
                "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
        a.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
