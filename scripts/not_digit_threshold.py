"""Choose the reading's "not a digit" rule (`reading.read.SCORE_POWER`, `IS_DIGIT`) on generated validation scenes.

    nice -n 5 python scripts/not_digit_threshold.py -n 1500 --json benchmarks/results/not-digit-choice.json

Every box the finder keeps (heatmap peak >= frame.DETECT) on scenes made by `synth.scenes` from MNIST's
TRAINING split, the DejaVu fonts and their distractors (letters, symbols, words, shapes, lines, specks), with the
wide validation ranges (`scenes.WIDE`) and SEED, which no finder training or validation used (train_finder.py uses
seeds 1, 2 and 1001), is read and scored `read.digit_like(found, score, power)`: the finder's peak times the
classifier's digit score to `power`. A box matching a true digit (IoU >= 0.5) is a digit found; any other is not
a digit. For each power in POWERS the threshold is the highest that keeps >= KEEP of the digits found; the power
chosen is the one that then turns down most of the other boxes. MNIST's test split is never read here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import mnistlab
from mnistlab.calibration import threshold
from mnistlab.reading import frame
from mnistlab.reading.read import Reader, digit_like
from mnistlab.synth import scenes

SEED = 7007  # the validation scenes (and the sprites' drawn shapes): a seed no finder training or validation used
KEEP = 0.99  # the share of true digits found that must be kept
POWERS = (0.0, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)  # 0: the finder's peak alone; 1: the plain product


def boxes_scored(reader: Reader, made: list[scenes.Scene]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(finder peaks, digit scores, is a true digit) of every box read on `made`, accepted or not."""
    found, score, true = [], [], []
    for s in made:
        r = reader.read(s.image)
        every = r.digits + r.rejected
        boxes = np.array([d.box for d in every], np.float32).reshape(-1, 4)
        matched = {i for i, _ in frame.match(boxes, s.boxes)}
        for i, d in enumerate(every):
            found.append(d.found)
            score.append(d.score)
            true.append(i in matched)
    return np.array(found), np.array(score), np.array(true, bool)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=1500, help="validation scenes")
    p.add_argument("--model", default=None, help="the classifier (default: the bundled one)")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    torch.set_num_threads(1)
    sprites = scenes.load_sprites(seed=SEED)
    made = scenes.make_scenes(sprites, a.n, np.random.default_rng(SEED), r=scenes.WIDE)
    found, score, true = boxes_scored(Reader(mnistlab.load(a.model, device="cpu")), made)
    rows = []
    for power in POWERS:
        like = digit_like(found, score, power)
        t = threshold(torch.from_numpy(like[true]), KEEP)
        rows.append({"power": power, "threshold": round(t, 4), "digits kept": round(float(np.mean(like[true] >= t)), 4),
                     "others turned down": round(float(np.mean(like[~true] < t)), 4)})  # fmt: skip
        print(json.dumps(rows[-1]))
    best = max(rows, key=lambda r: r["others turned down"])
    print(f"chosen: SCORE_POWER = {best['power']}, IS_DIGIT = {best['threshold']} "
          f"({int(true.sum())} digits found, {int((~true).sum())} other boxes, {a.n} scenes)")  # fmt: skip
    if a.json:
        meta = {"model": a.model or "bundled", "n": a.n, "seed": SEED, "keep": KEEP, "digits found": int(true.sum()),
                "other boxes": int((~true).sum()),
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
        a.json.write_text(json.dumps({"meta": meta, "rows": rows, "chosen": best}, indent=2) + "\n")


if __name__ == "__main__":
    main()
