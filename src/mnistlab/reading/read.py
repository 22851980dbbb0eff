"""Reading a picture whole: the finder's boxes -> crops of the full-resolution picture -> MNIST-style -> `Net`.

`Reader(classifier, finder).read(image)` gives a `Reading`: every digit found, in reading order (lines from top
to bottom, left to right in a line), each with its box in the picture's pixels, the classifier's calibrated
probabilities and digit score, and the finder's score; and the number as a string (numbers on a line apart by
more than NUMBER_GAP digit heights, or on other lines, are joined by a space). A found box is a digit only when
its finder peak and its digit score together are digit-like enough (`digit_like` >= IS_DIGIT); the others, a
letter or a symbol the finder fired on, are the reading's `rejected`. `mnistlab.read(image)` does it
with the bundled finder and classifier. The work is bounded by the finder's input size and MAX_FOUND crops.
The finder runs on the classifier's engine: its ONNX copy on onnxruntime beside a classifier on onnxruntime (no
torch imported then), the torch network otherwise.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from scipy import ndimage

from mnistlab.calibration import digit_score
from mnistlab.errors import UserError
from mnistlab.images.field import FIELD, bbox, to_field
from mnistlab.pixels import is_tensor
from mnistlab.reading import frame
from mnistlab.reading.finder_onnx import OnnxFinder

if TYPE_CHECKING:
    from mnistlab.reading.finder import Finder

AnyFinder = Union["Finder", OnnxFinder]  # the torch network, or its ONNX copy on onnxruntime
FINDER = "weights/finder.safetensors"  # inside the package; made by scripts/train_finder.py --bundle
FINDER_ONNX = "weights/finder.onnx"  # the same finder exported (scripts/bundle_onnx.py, train_finder.py --bundle)
MARGIN = 0.06  # a found box is widened by this share of its size on each side before cropping (a cut stroke)
SAME = 0.6  # two found boxes overlapping by more than this IoU are one digit (the lower peak is dropped), and so
# is a box whose centre lies in a higher one's (two peaks on one digit; touching digits' centres stay outside)
NUMBER_GAP = 0.8  # a horizontal gap wider than this many digit heights starts another number
CROP_SIDE = 160  # a crop larger than this is subsampled first (the field is 20 px; this bounds the work per digit)
INK_FLOOR = 0.3  # share of the crop's strongest contrast under which a pixel is paper (texture, noise, shadow)
# "Not a digit": a found box is a digit when its finder peak times its digit score to SCORE_POWER reaches IS_DIGIT.
# Chosen with the bundled finder and classifier (mnist-default.safetensors as of 2026-12-07; new classifier weights
# call for a rerun) by `python scripts/not_digit_threshold.py -n 1500` (2026-12-07, the results in
# benchmarks/results/not-digit-choice-2026-12-07.json) on generated validation scenes only: MNIST's training split,
# DejaVu fonts and their distractors, scenes.WIDE, seed 7007 (no finder training's). Of powers 0-1, 1/8 turned down
# most of the other boxes (20%; the peak alone 12%, the plain product 7%) at the threshold keeping 99% of the 4,167
# digits found. IS_DIGIT is under frame.DETECT: a digit score of 1 is never turned down; a box at DETECT needs 0.96.
SCORE_POWER = 0.125
IS_DIGIT = 0.4477


@dataclass(frozen=True)
class FoundDigit:
    """One digit of a `Reading`."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the picture's pixels
    digit: int
    probabilities: list[float]  # the classifier's calibrated probabilities, one per class
    score: float  # the classifier's digit score in [0, 1] (how much one digit it is)
    found: float  # the finder's heatmap peak in [0, 1]
    seen: np.ndarray = field(repr=False)  # the 28x28 MNIST-style crop the classifier saw

    def fields(self, classes: list[str]) -> dict:
        """Its JSON-ready fields, as `mnistlab predict --json` and POST /v1/read give them: box (rounded to 0.1
        px), digit, label (its class's name in `classes`), probability (of that class), digit_score, found."""
        box = [round(float(v), 1) for v in self.box]
        top = {"digit": self.digit, "label": classes[self.digit], "probability": float(self.probabilities[self.digit])}
        return {"box": box} | top | {"digit_score": float(self.score), "found": float(self.found)}


@dataclass(frozen=True)
class Reading:
    """The digits of a picture in reading order, and the number they write ("2026"; "12 345" for two)."""

    digits: list[FoundDigit]
    number: str
    source: str | None = None
    rejected: list[FoundDigit] = field(default_factory=list)  # boxes found but not digit-like (`digit_like`)


def digit_like(found, score, power: float = SCORE_POWER):
    """How much a found box is a digit, in [0, 1]: its finder peak `found` times its classifier's digit score
    `score` to `power` (a small power: the finder's peak leads, a low digit score pulls it down)."""
    return np.asarray(found, np.float32) * np.asarray(score, np.float32) ** np.float32(power)


def bundled_finder() -> Path:
    return Path(__file__).resolve().parents[1] / FINDER


def bundled_finder_onnx() -> Path:
    return Path(__file__).resolve().parents[1] / FINDER_ONNX


def load_finder(path: str | os.PathLike | None = None) -> tuple[Finder, dict]:
    """(the finder in eval mode on the CPU, its card) from a .safetensors file (default: the bundled one)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from mnistlab.reading import finder as finder_mod

    p = Path(path) if path is not None else bundled_finder()
    if not p.is_file():
        raise UserError(f"no finder weights at {p}; make them with scripts/train_finder.py")
    with safe_open(str(p), framework="pt") as f:
        card = json.loads((f.metadata() or {}).get("card", "{}"))
    model = finder_mod.Finder()
    missing, unexpected = model.load_state_dict(load_file(str(p)), strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise UserError(f"{p} is not a finder's weights (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model.eval(), card


def to_grey(image, name: str) -> np.ndarray:
    """Any picture a `Reader` reads (a path, encoded bytes, a PIL image, an array or a tensor) as the grey plane
    [H, W] in [0, 1] it works on; `name` is what a mistake calls it."""
    from PIL import Image

    from mnistlab.images.decode import open_image
    from mnistlab.images.gray import array_to_gray, to_grayscale

    if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)):
        image = open_image(image, None if isinstance(image, (str, os.PathLike)) else name)
    if isinstance(image, Image.Image):
        return to_grayscale(image)
    if is_tensor(image):
        return frame.grey(image)
    return array_to_gray(image, name)


def ink_of(g: np.ndarray, box) -> np.ndarray | None:
    """The ink in `box` of grey picture `g`, white on black in [0, 1], at most CROP_SIDE px: contrast to the paper
    around it (the median of the box widened twice), in the polarity with the stronger ink, below INK_FLOOR of the
    strongest made 0; of that ink, only the parts reaching into the box's core (a neighbour's stroke is left out)."""
    h, w = g.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    bw, bh = x1 - x0, y1 - y0
    step = max(1, int(np.ceil(max(bw, bh) * (1 + 2 * MARGIN) / CROP_SIDE)))  # bounded work for any box
    ctx = g[
        max(0, int(y0 - bh / 2)) : int(y1 + bh / 2) + 1 : step, max(0, int(x0 - bw / 2)) : int(x1 + bw / 2) + 1 : step
    ]
    a, b = max(0, int(x0 - MARGIN * bw)), min(w, int(np.ceil(x1 + MARGIN * bw)))
    c, d = max(0, int(y0 - MARGIN * bh)), min(h, int(np.ceil(y1 + MARGIN * bh)))
    crop = g[c:d:step, a:b:step]
    if crop.size == 0 or ctx.size == 0:
        return None
    paper = float(np.median(ctx))
    dark, light = paper - crop, crop - paper
    s = dark if np.percentile(dark, 98) >= np.percentile(light, 98) else light
    top = float(np.percentile(s, 99.5))
    if top <= 0:
        return None
    ink = np.clip((s / top - INK_FLOOR) / (1 - INK_FLOOR), 0, 1).astype(np.float32)
    parts, _ = ndimage.label(ink > 0)
    core = parts[round(0.3 * parts.shape[0]) : round(0.7 * parts.shape[0]) + 1,
                 round(0.3 * parts.shape[1]) : round(0.7 * parts.shape[1]) + 1]  # fmt: skip
    ink[~np.isin(parts, np.unique(core[core > 0]))] = 0
    return ink if ink.any() else None


def seen_of(g: np.ndarray, box) -> np.ndarray | None:
    """What the classifier sees of `box` in grey picture `g`: its ink (`ink_of`) as the MNIST-style 28x28 field
    (float32 in [0, 1]), or None when the box holds no ink. (scripts/make_crops.py trains on these.)"""
    ink = ink_of(g, box)
    if ink is None:
        return None
    r0, r1, c0, c1 = bbox(ink)
    return to_field(np.ascontiguousarray(ink[r0:r1, c0:c1]))


def reading_order(boxes: np.ndarray) -> list[list[int]]:
    """Indices of `boxes` grouped in lines (top to bottom; a box joins a line whose vertical middle it covers),
    each line left to right."""
    order = np.argsort((boxes[:, 1] + boxes[:, 3]) / 2, kind="stable")
    lines: list[list[int]] = []
    for i in order:
        y0, y1 = boxes[i, 1], boxes[i, 3]
        for line in lines:
            mid = float(np.median([(boxes[j, 1] + boxes[j, 3]) / 2 for j in line]))
            if y0 <= mid <= y1:
                line.append(int(i))
                break
        else:
            lines.append([int(i)])
    return [sorted(line, key=lambda j: boxes[j, 0]) for line in lines]


def _number(boxes: np.ndarray, digits: list[int], lines: list[list[int]]) -> str:
    words = []
    for line in lines:
        word = str(digits[line[0]])
        for prev, cur in zip(line, line[1:]):
            height = max(boxes[prev, 3] - boxes[prev, 1], boxes[cur, 3] - boxes[cur, 1])
            word += (" " if boxes[cur, 0] - boxes[prev, 2] > NUMBER_GAP * height else "") + str(digits[cur])
        words.append(word)
    return " ".join(words)


def distinct(b: np.ndarray) -> np.ndarray:
    """Which of boxes `b` (sorted by score, highest first) are digits of their own: not overlapping a higher kept
    box by more than SAME IoU, nor centred inside one."""
    drop = np.zeros(len(b), bool)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    inside = (b[None, :, 0] <= cx[:, None]) & (cx[:, None] <= b[None, :, 2])
    inside &= (b[None, :, 1] <= cy[:, None]) & (cy[:, None] <= b[None, :, 3])
    over = (frame.iou(b, b) > SAME) | inside  # [i, j]: i overlaps j, or i's centre is in j
    for i in range(len(b)):
        drop[i] = bool((over[i, :i] & ~drop[:i]).any())
    return ~drop


def found_in(g: np.ndarray, views: list[frame.Framed], boxes: np.ndarray, scores: np.ndarray, large=frame.LARGE):
    """The digits found in grey picture `g` from its `views`' decoded finds (`frame.merge`'s, with `large`): boxes
    [N, 4] clipped to `g`'s pixels (at least 1 px on each side) that are `distinct`, and their scores [N]."""
    b, s = frame.merge(views, boxes, scores, large)
    h, w = g.shape
    b = np.clip(b, 0, [w, h, w, h]).astype(np.float32)
    ok = (b[:, 2] - b[:, 0] >= 1) & (b[:, 3] - b[:, 1] >= 1)
    b, s = b[ok], s[ok]
    keep = distinct(b)
    return b[keep], s[keep]


def run_finder(finder: AnyFinder, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The finder's outputs (heat, size, offset: float32 arrays) for prepared inputs `x` [B, 2, INPUT, INPUT]."""
    if isinstance(finder, OnnxFinder):
        return finder(x)
    import torch  # already imported: a torch Finder exists

    with torch.inference_mode():
        heat, size, offset = finder(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
    return heat.numpy(), size.numpy(), offset.numpy()


def default_finder(classifier) -> AnyFinder:
    """The bundled finder on `classifier`'s engine: its ONNX copy beside a classifier on onnxruntime, else torch."""
    if getattr(classifier, "engine", "torch") == "onnx":
        return OnnxFinder(bundled_finder_onnx())
    return load_finder()[0]


class Reader:
    """A classifier (`mnistlab.load()`) and a finder (`load_finder()`, an `OnnxFinder`, or None: `default_finder`),
    reading pictures (see the module)."""

    def __init__(self, classifier=None, finder: AnyFinder | None = None):
        import mnistlab

        self.classifier = classifier if classifier is not None else mnistlab.load(device="cpu")
        self.finder = finder if finder is not None else default_finder(self.classifier)

    def find(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(boxes [N, 4] in `g`'s pixels, finder scores [N]) of the digits found in grey picture `g`."""
        views = frame.views(g)
        return found_in(g, views, *frame.decode(*run_finder(self.finder, np.stack([v.input for v in views]))))

    def read(self, image, name: str | None = None) -> Reading:
        """The `Reading` of one picture: a path, encoded bytes, a PIL image, an array or a tensor."""
        source = str(image) if isinstance(image, (str, os.PathLike)) else None
        g = to_grey(image, name or source or "the image")
        boxes, found = self.find(g)
        fields, kept = [], []
        for i, box in enumerate(boxes):
            f = seen_of(g, box)
            if f is not None:
                fields.append(f)
                kept.append(i)
        if not kept:
            return Reading([], "", source)
        seen = np.stack(fields).reshape(-1, FIELD, FIELD)
        probs = np.asarray(self.classifier.probabilities(seen), np.float32)
        scores = digit_score(probs)
        boxes, found = boxes[kept], found[kept]
        classes = [int(d) for d in probs.argmax(1)]
        every = [
            FoundDigit((float(b[0]), float(b[1]), float(b[2]), float(b[3])), classes[i], probs[i].tolist(),
                       float(scores[i]), float(found[i]), seen[i])
            for i, b in enumerate(boxes)
        ]  # fmt: skip
        digit = np.flatnonzero(digit_like(found, scores) >= IS_DIGIT)
        if not len(digit):
            return Reading([], "", source, every)
        lines = [[int(digit[i]) for i in line] for line in reading_order(boxes[digit])]
        rejected = [every[i] for i in np.setdiff1d(np.arange(len(every)), digit)]
        return Reading([every[i] for line in lines for i in line], _number(boxes, classes, lines), source, rejected)


def read(image, classifier=None, finder: AnyFinder | None = None) -> Reading:
    """The `Reading` of one picture with the bundled finder and classifier (or those given)."""
    return Reader(classifier, finder).read(image)
