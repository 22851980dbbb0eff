"""Measure how well the bundled classifier reads photo-like images of MNIST test digits, overall and per effect.

    python scripts/photo_accuracy.py            # the first 1000 test digits, seed 0, 240 px photos
    python scripts/photo_accuracy.py -n 200 --wrong /tmp/wrong   # also save the misread photos there

Image i is made by `tests/photos.py` (`numbered_photo`) from test digit i with its own generator, seeded with
(seed, i), so the first N images are the same whatever N is (and the same as tests/infer/test_photos.py's, which uses
seed 0). A refused image (NoInkError, NoDigitError) counts as wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from photos import EFFECTS, numbered_photo  # noqa: E402

import mnistlab  # noqa: E402
from mnistlab.data.download import load_tensors  # noqa: E402
from mnistlab.errors import UserError  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=1000, help="how many test digits (the first N)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=240, help="the photos' longer side in px")
    p.add_argument("--data", default=None, help="MNIST data folder (default: as `mnistlab train`)")
    p.add_argument("--wrong", type=Path, default=None, help="save misread photos to this folder")
    args = p.parse_args(argv)

    x, y = load_tensors(False, args.data, limit=args.n)
    clf = mnistlab.load(device="cpu")
    start = time.perf_counter()
    photos, effects = zip(*(numbered_photo(x[i].numpy(), args.seed, i, size=args.size) for i in range(len(y))))
    made = time.perf_counter() - start
    results = clf.predict_each(list(photos))
    read = time.perf_counter() - start - made
    right = np.array([not isinstance(r, UserError) and r.digit == int(t) for r, t in zip(results, y)])
    refused = np.array([isinstance(r, UserError) for r in results])
    n = len(y)
    print(f"{n} photo-like images (seed {args.seed}, {args.size} px): made in {made:.1f} s, read in {read:.1f} s")
    print(f"overall  {right.mean():7.2%}  ({int(right.sum())}/{n} right, {int(refused.sum())} refused)")
    rows = [("none", np.array([not e for e in effects]))]
    rows += [(name, np.array([name in e for e in effects])) for name in EFFECTS]
    for name, has in rows:
        k, ok, no = int(has.sum()), int(right[has].sum()), int(refused[has].sum())
        if k:
            print(f"  {name:<12} {ok / k:7.2%}  ({ok}/{k}, {no} refused)")
    if args.wrong:
        args.wrong.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(~right):
            r = results[i]
            said = "refused" if isinstance(r, UserError) else f"read{r.digit}"
            Image.fromarray(photos[i]).save(args.wrong / f"{i:04d}-true{int(y[i])}-{said}-{'+'.join(effects[i])}.png")


if __name__ == "__main__":
    main()
