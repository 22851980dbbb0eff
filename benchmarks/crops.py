"""A recogniser on a crop set of scripts/make_crops.py: the finder's crops of generated scenes, as reading sees them.

    python benchmarks/crops.py runs/crops-val.npz                                  # the bundled model
    python benchmarks/crops.py runs/crops-val.npz --model runs/bundled-s1-crops    # another

"digit accuracy": the share of digit crops read right; "digits accepted": of them, the share whose digit score
reaches the card's "not a digit" threshold; "not-digits refused": the share of not-digit crops (label -1) under it;
"confused": the most frequent (true -> read) mistakes. Choose settings on a `--split val` set (MNIST's held-out
training images, never its test split).
"""

from __future__ import annotations

import argparse
import collections
import json

import numpy as np
import torch

import mnistlab
from mnistlab.calibration import digit_score


def measure(classifier, images: np.ndarray, labels: np.ndarray) -> dict:
    probs = np.concatenate(
        [
            np.asarray(classifier.probabilities(images[i : i + 2000] / np.float32(255)))
            for i in range(0, len(images), 2000)
        ]
    )
    read, score = probs.argmax(1), digit_score(probs)
    threshold = classifier.card.get("digit_threshold", 0.0)
    digit = labels >= 0
    wrong = collections.Counter(f"{t}->{r}" for t, r in zip(labels[digit], read[digit]) if t != r)
    return {
        "digit crops": int(digit.sum()),
        "digit accuracy": round(float((read[digit] == labels[digit]).mean()), 4),
        "digits accepted": round(float((score[digit] >= threshold).mean()), 4),
        "not-digit crops": int((~digit).sum()),
        "not-digits refused": round(float((score[~digit] < threshold).mean()), 4) if (~digit).any() else None,
        "confused": dict(wrong.most_common(6)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("crops", help="a crop set (.npz of scripts/make_crops.py)")
    p.add_argument("--model", action="append", default=None, help="a run folder or weights (default: the bundled)")
    a = p.parse_args()
    torch.set_num_threads(1)
    with np.load(a.crops, allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    for model in a.model or [None]:
        row = measure(mnistlab.load(model, device="cpu"), images, labels)
        print(f"{model or 'bundled'}: {json.dumps(row)}")


if __name__ == "__main__":
    main()
