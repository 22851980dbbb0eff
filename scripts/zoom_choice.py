"""Choose the zoomed-out look (`reading.frame.ZOOM`, `LARGE` and its mask) on generated scenes of training data only.

    nice -n 5 python scripts/zoom_choice.py -n 200 --json benchmarks/results/zoom-choice-2026-12-07.json

Scenes made by `synth.scenes` from MNIST's TRAINING split and the DejaVu fonts only (never MNIST's test split, nor
Liberation, FreeFont or a handwriting font: those are the benchmark's), with the wide validation ranges
(`scenes.WIDE`) and SEED, which no training used: one large digit (30-90% of the side or cut by the edge, as
benchmarks/reading.py's "one ... digit, large"), handwritten, then handwritten or printed; one number of 2-6 digits;
pictures without a digit (`scenes.lone_marks`: a DejaVu letter or symbol, a DejaVu word, a drawn shape; paper,
lines and specks alone). Each look is read with the bundled finder and classifier on onnxruntime: "none" is the
reading before (the whole view alone), the others add the zoomed view of each ZOOM in ZOOMS, its mask over the whole
sheet or over the picture only, keeping its finds at least LARGE px tall in the whole view, each LARGE in LARGES.
Per set: the finder's precision and recall (every box kept that is read, a match at IoU >= 0.5, as the benchmark
counts them) and the digits read right; per not-digit set, the share of pictures turned down (no box digit-like
enough, `read.IS_DIGIT`). Chosen: of the looks whose precision and recall on the numbers, precision on the large
digits and refusals on every not-digit set are within NOISE of "none"'s, the one with the highest recall on the
large digits (both sets; ties: the larger LARGE, fewer finds kept, then the smaller ZOOM). The same scenes for every
look: the differences are paired.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import mnistlab
from mnistlab.calibration import digit_score
from mnistlab.data.download import load_tensors
from mnistlab.reading import frame
from mnistlab.reading.read import IS_DIGIT, Reader, digit_like, found_in, run_finder, seen_of
from mnistlab.synth import scenes, sprites

SEED = 777000  # the choice's scenes (SEED + k for set k): a seed no finder or classifier training used
ZOOMS = (1.5, 2.0, 2.5, 3.0)  # the sheet's side as a multiple of the picture's
LARGES = (32, 48, 64, 80, 96)  # the least height (whole-view input px) of a zoomed view's find kept
MASKS = ("sheet", "picture")  # the zoomed view's mask: 1 over the whole sheet, or over the picture only (frame's)
NOISE = 0.01  # how much worse than the reading before a kept look may be on any other figure (paired scenes)


def scene_sets(n: int) -> dict[str, list[scenes.Scene]]:
    """The choice's sets (see the module): MNIST's training split and the DejaVu fonts only."""
    images, labels = load_tensors(train=True)
    handwritten = scenes.load_sprites(images, labels, fonts=[], seed=SEED)
    dejavu = scenes.load_sprites(images, labels, seed=SEED)
    lone = scenes.Ranges(**{**scenes.WIDE.__dict__, "empty": 0.0, "big": 1.0})
    numbers = scenes.Ranges(**{**scenes.WIDE.__dict__, "empty": 0.0, "numbers": 1, "fewest": 2, "big": 0.0})
    paper = scenes.Ranges(**{**scenes.WIDE.__dict__, "empty": 1.0, "big": 0.0})
    bare = sprites.Sprites(np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.int64))
    fonts = sprites.dejavu_fonts()
    rng = lambda k: np.random.default_rng(SEED + k)  # noqa: E731
    return {
        "large, MNIST train": scenes.make_scenes(handwritten, n, rng(0), r=lone),
        "large, train + DejaVu": scenes.make_scenes(dejavu, n, rng(1), r=lone),
        "numbers 2-6": scenes.make_scenes(dejavu, n, rng(2), r=numbers),
        "DejaVu letters": scenes.lone_marks(sprites.characters(fonts, sprites.DISTRACT), n, rng(3)),
        "DejaVu words": scenes.lone_marks(sprites.characters(fonts, sprites.WORDS), n, rng(4)),
        "drawn shapes": scenes.lone_marks(sprites.shapes(rng(5), 96), n, rng(6)),
        "paper, specks": scenes.make_scenes(bare, n, rng(7), r=paper),
    }


def zoomed(g: np.ndarray, zoom: float, mask: str) -> frame.Framed:
    """`frame.zoomed` (its mask over the picture only), or with the mask over the whole sheet."""
    z = frame.zoomed(g, zoom)
    if mask == "sheet":
        nh, nw = (max(1, round(side * z.scale)) for side in g.shape)
        z.input[1, : min(frame.INPUT, round(nh * zoom)), : min(frame.INPUT, round(nw * zoom))] = 1
    return z


class Judge:
    """The classifier's verdict on found boxes, each box read once per picture."""

    def __init__(self, classifier):
        self.classifier, self.seen = classifier, {}

    def __call__(self, key: int, g: np.ndarray, boxes: np.ndarray, found: np.ndarray) -> list[tuple[int, float]]:
        """Per box read (seen_of not None): (its index, its digit class or -1 when not digit-like)."""
        new = [b for b in boxes if (key, b.tobytes()) not in self.seen]
        fields = [seen_of(g, b) for b in new]
        ok = [f for f in fields if f is not None]
        probs = np.asarray(self.classifier.probabilities(np.stack(ok)), np.float32) if ok else np.zeros((0, 10))
        it = iter(zip(probs.argmax(1), digit_score(probs)) if len(ok) else [])
        for b, f in zip(new, fields):
            self.seen[(key, b.tobytes())] = None if f is None else next(it)
        out = []
        for i, (b, s) in enumerate(zip(boxes, found)):
            v = self.seen[(key, b.tobytes())]
            if v is not None:
                out.append((i, int(v[0]) if digit_like(s, v[1]) >= IS_DIGIT else -1))
        return out


def looks() -> list[tuple[str, float | None, str, float]]:
    """(name, zoom, mask, large) of every look tried: "none" first."""
    out: list[tuple[str, float | None, str, float]] = [("none", None, "", 0.0)]
    for z in ZOOMS:
        for m in MASKS:
            out += [(f"zoom {z} {m}, large {large}", z, m, large) for large in LARGES]
    return out


def measure(reader: Reader, judge: Judge, made: list[scenes.Scene], k0: int) -> dict[str, dict]:
    """Per look, the set's counts: true digits, boxes read, matched, read right; pictures with a digit taken."""
    tried = looks()
    counts = {name: dict.fromkeys(("true", "read", "matched", "right", "taken"), 0) for name, *_ in tried}
    variants = [(z, m) for z in ZOOMS for m in MASKS]
    for k, s in enumerate(made):
        g = frame.grey(s.image)
        whole = frame.prepare(g)
        zs = [zoomed(g, z, m) for z, m in variants]
        boxes, scores = frame.decode(*run_finder(reader.finder, np.stack([whole.input] + [v.input for v in zs])))
        for name, z, m, large in tried:
            j = 1 + variants.index((z, m)) if z is not None else None
            views = [whole] if j is None else [whole, zs[j - 1]]
            at = [0] if j is None else [0, j]
            b, f = found_in(g, views, boxes[at], scores[at], large)
            verdict = judge(k0 + k, g, b, f)
            kept = b[[i for i, _ in verdict]].reshape(-1, 4)
            pairs = frame.match(kept, s.boxes)
            c = counts[name]
            c["true"] += len(s.labels)
            c["read"] += len(kept)
            c["matched"] += len(pairs)
            c["right"] += sum(verdict[i][1] == int(s.labels[t]) for i, t in pairs)
            c["taken"] += any(d >= 0 for _, d in verdict)
    return counts


def rows_of(counts: dict[str, dict[str, dict]], n: int) -> dict[str, dict[str, float]]:
    """Per look, its figures: P, R and digits read on the digit sets, the share turned down on the others."""
    rows: dict[str, dict[str, float]] = {}
    for set_name, per in counts.items():
        for look, c in per.items():
            row = rows.setdefault(look, {})
            if c["true"]:
                row[f"{set_name}: P"] = round(c["matched"] / max(c["read"], 1), 4)
                row[f"{set_name}: R"] = round(c["matched"] / c["true"], 4)
                row[f"{set_name}: read"] = round(c["right"] / c["true"], 4)
            else:
                row[f"{set_name}: refused"] = round(1 - c["taken"] / n, 4)
    return rows


def choose(rows: dict[str, dict[str, float]]) -> str:
    """The look chosen (see the module)."""
    base = rows["none"]
    guarded = [k for k in base if k.endswith("refused") or k.startswith("numbers") or k.endswith(": P")]
    fine = [n for n in rows if all(rows[n][k] >= base[k] - NOISE for k in guarded if not k.endswith("read"))]
    recall = {n: rows[n]["large, MNIST train: R"] + rows[n]["large, train + DejaVu: R"] for n in fine}
    tried = {name: (z, large) for name, z, _, large in looks()}
    return max(fine, key=lambda n: (recall[n], tried[n][1], -(tried[n][0] or 0)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=200, help="scenes per set")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args()
    classifier = mnistlab.load(device="cpu", engine="onnx")
    reader = Reader(classifier)
    judge = Judge(classifier)
    start = time.perf_counter()
    counts = {name: measure(reader, judge, made, 10_000 * i) for i, (name, made) in enumerate(scene_sets(a.n).items())}
    rows = rows_of(counts, a.n)
    chosen = choose(rows)
    cols = [c for c in rows["none"] if not c.endswith("read") or c.startswith("large")]
    print("| look | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for name, row in rows.items():
        print(f"| {name}{' (chosen)' if name == chosen else ''} | " + " | ".join(str(row[c]) for c in cols) + " |")
    print(f"chosen: {chosen} ({a.n} scenes per set, {time.perf_counter() - start:.0f} s)")
    if a.json:
        meta = {"n": a.n, "seed": SEED, "noise": NOISE, "zooms": ZOOMS, "larges": LARGES, "masks": MASKS,
                "is_digit": IS_DIGIT, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
        a.json.write_text(json.dumps({"meta": meta, "rows": rows, "chosen": chosen}, indent=2) + "\n")


if __name__ == "__main__":
    main()
