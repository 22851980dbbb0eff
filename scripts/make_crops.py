"""Make a crop set for the recogniser: what the finder gives it in generated scenes, labelled by the scenes' truth.

    nice -n 10 python scripts/make_crops.py --scenes 8000 --seed 29001 --out runs/crops-train.npz  # to train on
    nice -n 10 python scripts/make_crops.py --scenes 1500 --seed 29002 --split val --out runs/crops-val.npz

Scenes are made by `synth.scenes` (`--split train`: the TRAIN ranges; `val`: the wider WIDE ones) from MNIST
training digits and the DejaVu fonts. `train` draws its handwriting from the part of MNIST's training split that the
bundled recipe trains on (`load_data` with the recipe's `val`: all but the last 5,000); `val` draws it from the
5,000 held out, so that settings can be chosen on digits no recogniser has seen (never on MNIST's test split). The
finder (`Reader.find`, the bundled one unless --finder) boxes each scene; a found box matching a true digit
(`frame.match`, IoU >= 0.5) gives that digit's crop, made as reading makes it (`read.seen_of`), with its true
label; a box overlapping no true digit by NOT_DIGIT IoU or more (a letter, a symbol, a shape, a stroke) gives a
not-digit, label -1; the boxes between (part of a digit, two digits) are left out. The set is a compressed .npz:
`images` uint8 [N, 28, 28], `labels` int64 [N], `meta` (JSON: how it was made, its counts and time). A recipe
trains on it with `crops` (build.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import mnistlab
from mnistlab.reading import frame
from mnistlab.reading.read import Reader, load_finder, seen_of
from mnistlab.recipes import get_recipe
from mnistlab.synth import scenes
from mnistlab.train.build import load_data

NOT_DIGIT = 0.2  # a found box whose IoU with every true digit is below this is a not-digit (label -1)
CHUNK = 64  # scenes made at a time (the camera works on batches)


def handwriting(split: str, recipe: str) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST training images and labels: the part `recipe` trains on (train), or the part it holds out (val)."""
    d = load_data(get_recipe(recipe))
    if split == "train":
        return d.train_images, d.train_labels
    return d.test_images, d.test_labels  # with the recipe's `val`, load_data's evaluation set is the held-out part


def crops_of(reader: Reader, scene: scenes.Scene) -> tuple[list[np.ndarray], list[int], int]:
    """(the crops of what the finder found in `scene`, their labels, how many found boxes were left out)."""
    g = frame.grey(scene.image)
    boxes, _ = reader.find(g)
    label = dict(frame.match(boxes, scene.boxes))
    overlap = frame.iou(boxes, scene.boxes).max(1) if len(scene.boxes) else np.zeros(len(boxes))
    seen, labels, skipped = [], [], 0
    for i, box in enumerate(boxes):
        y = int(scene.labels[label[i]]) if i in label else -1 if overlap[i] < NOT_DIGIT else None
        f = seen_of(g, box) if y is not None else None
        if f is None:
            skipped += 1
            continue
        seen.append(np.round(f * 255).astype(np.uint8))
        labels.append(y)
    return seen, labels, skipped


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=8000, help="scenes to make (default: 8000, about 30,000 digits)")
    p.add_argument("--seed", type=int, default=29001, help="the scenes' seed (default: 29001; no other use of it)")
    p.add_argument("--split", choices=("train", "val"), default="train", help="whose handwriting (see above)")
    p.add_argument("--recipe", default="robust", help="the recipe whose split of MNIST is kept (default: robust)")
    p.add_argument("--finder", type=Path, default=None, help="a finder .safetensors (default: the bundled one)")
    p.add_argument("--out", type=Path, required=True, help="the .npz to write (under runs/: never committed)")
    a = p.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    images, labels = handwriting(a.split, a.recipe)
    sprites = scenes.load_sprites(images, labels, seed=a.seed)
    ranges = scenes.TRAIN if a.split == "train" else scenes.WIDE
    reader = Reader(mnistlab.load(device="cpu"), load_finder(a.finder)[0])
    rng = np.random.default_rng(a.seed)
    seen: list[np.ndarray] = []
    ys: list[int] = []
    skipped = true_digits = 0
    for done in range(0, a.scenes, CHUNK):
        for scene in scenes.make_scenes(sprites, min(CHUNK, a.scenes - done), rng, r=ranges):
            s, y, k = crops_of(reader, scene)
            seen += s
            ys += y
            skipped += k
            true_digits += len(scene.labels)
        print(f"{done + CHUNK:>6} scenes: {len(ys):,} crops, {time.perf_counter() - start:.0f} s", flush=True)
    y = np.array(ys, np.int64)
    meta = {
        "scenes": a.scenes, "seed": a.seed, "split": a.split, "recipe": a.recipe, "ranges": ranges.__dict__,
        "finder": str(a.finder or "bundled"), "true digits": true_digits, "digit crops": int((y >= 0).sum()),
        "not-digit crops": int((y < 0).sum()), "left out": skipped, "seconds": round(time.perf_counter() - start),
    }  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.out, images=np.stack(seen).reshape(-1, 28, 28), labels=y, meta=json.dumps(meta))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
