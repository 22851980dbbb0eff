"""Synthetic pictures of written and printed numbers, made on the fly, with every digit's exact box and class.

A scene is laid out first (`layout`, NumPy and Pillow on small sprites): one to three numbers of one to six digits,
each digit from MNIST's training split or printed in a DejaVu font (`sprites`: the only fonts used for training;
Liberation, FreeFont and every handwriting font are kept for evaluation), spaced as written numbers are (some
touching, some apart, an uneven baseline and size, a slant), drawn with a pen from fine to marker; then distractors
the finder must leave alone: letters, punctuation and symbols, words, drawn shapes and doodles, a smiley,
underlines, a box or a circle around a number, long strokes, specks. A digit's box is the box of its own ink as
pasted (clipped to the picture), so the labels are exact. `make_scenes` then gives the batch paper, light and a
camera (`camera`: backgrounds, ink colour, shadows, perspective with the boxes mapped through it, blur, noise, JPEG).
`lone_marks` photographs pictures of one not-digit each the same way (the benchmark's not-digit sets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from mnistlab.reading.frame import INPUT
from mnistlab.synth import camera
from mnistlab.synth.sprites import Sprites as Sprites
from mnistlab.synth.sprites import crop
from mnistlab.synth.sprites import dejavu_fonts as dejavu_fonts
from mnistlab.synth.sprites import load_sprites as load_sprites

SIZE = INPUT  # scenes are made at the finder's input side
MAX_NUMBERS = 3  # numbers per scene (most scenes hold one)
MAX_DIGITS = 6  # digits per number (a date, a price, a phone number's group)
BIG = (0.3, 0.9)  # a lone digit's height as a share of the picture's side (a photo of one digit)


@dataclass(frozen=True)
class Ranges:
    """How far a scene's parameters go: the training ranges, and wider ones (`WIDE`) for held-out validation."""

    min_height: float = 12.0  # a digit's height in px at SIZE (below about 10 px the finder's stride-4 grid blurs)
    max_height: float = 150.0
    slant: float = 10.0  # degrees, per number; each digit adds a third of it
    perspective: float = 0.08  # corner displacement, as a fraction of the side
    noise: float = 0.05  # the largest sensor noise sigma
    blur: float = 2.5  # the largest defocus radius (px); motion goes to 3x that
    empty: float = 0.06  # the fraction of scenes with no digit at all (distractors only)
    numbers: int = MAX_NUMBERS  # the most numbers in a scene (1: exactly one, as the benchmark's number sets)
    fewest: int = 1  # the fewest digits in a number
    big: float = 0.2  # the share of scenes holding one digit, large in the frame (BIG of the side), as photos of one do
    small: float = 0.0  # the share of those lone digits drawn at any height instead (a small digit on a large page)
    big_sizes: tuple[float, float] = BIG  # a large lone digit's height as a share of the side (1: filling it)
    cut: float = 0.08  # the most of a large lone digit's box left out of the picture on a side (touching, cut off)


# Training holds more lone digits than the validation and benchmark scenes: photos of one digit, small or filling
# the frame, cut by its edges (the bundled finder, trained on Ranges(), finds no digit in 5-15% of such pictures)
TRAIN = Ranges(big=0.35, small=0.3, big_sizes=(0.3, 1.05), cut=0.3)
WIDE = Ranges(min_height=10.0, max_height=200.0, slant=16.0, perspective=0.12, noise=0.07, blur=3.0, empty=0.1)


@dataclass(frozen=True)
class Scene:
    """One picture (float32 RGB [3, H, W] in [0, 1]) with its digits' boxes (x0, y0, x1, y1 in px) and classes."""

    image: torch.Tensor
    boxes: np.ndarray  # float32 [K, 4]
    labels: np.ndarray  # int64 [K]


def _scaled(ink: np.ndarray, height: float, aspect: float, angle: float, shear: float) -> np.ndarray | None:
    """`ink` resized to `height` px (anti-aliased), widened by `aspect`, then sheared and rotated (degrees)."""
    h0, w0 = ink.shape
    s = height / h0
    w, h = max(1, round(w0 * s * aspect)), max(1, round(h0 * s))
    img = Image.fromarray(ink.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR, reducing_gap=2)
    a = math.radians(angle)
    m = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) @ np.array([[1, -shear], [0, 1]])
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], float) - [w / 2, h / 2]
    out = corners @ m.T
    ow, oh = np.ceil(np.ptp(out, 0)).astype(int) + 2
    inv = np.linalg.inv(m)
    c = np.array([w / 2, h / 2]) - inv @ np.array([ow / 2, oh / 2])
    data = (inv[0, 0], inv[0, 1], c[0], inv[1, 0], inv[1, 1], c[1])
    warped = img.transform((int(ow), int(oh)), Image.Transform.AFFINE, data, Image.Resampling.BILINEAR)
    return crop(np.clip(np.asarray(warped, np.float32), 0, 1))


def _pen(ink: np.ndarray, kind: int) -> np.ndarray:
    """0: as drawn; 1: a marker (dilated by about a tenth of the height); 2: a fine pen (eroded)."""
    from scipy import ndimage

    r = max(1, round(ink.shape[0] / 14))
    if kind == 1:
        return ndimage.grey_dilation(np.pad(ink, r), size=(r + 1, r + 1))
    if kind == 2 and ink.shape[0] > 40:
        return ndimage.grey_erosion(ink, size=(r, r))
    return ink


def _digit_ink(sp: Sprites, rng: np.random.Generator, printed_font: int | None) -> tuple[np.ndarray, int]:
    if printed_font is None:
        i = int(rng.integers(len(sp.mnist)))
        ink, d = crop(sp.mnist[i].astype(np.float32) / 255), int(sp.mnist_labels[i])
    else:
        d = int(rng.integers(10))
        ink, d = sp.printed[printed_font * 10 + d]
    assert ink is not None
    if d == 7 and rng.random() < 0.25:  # a crossed 7, as much of the world writes it
        ink = ink.copy()
        h, w = ink.shape
        t = max(1, round(h / 12))
        y = int(h * rng.uniform(0.45, 0.6))
        ink[y : y + t, int(w * 0.25) : int(w * 0.85)] = 1.0
    return ink, d


def _number(sp: Sprites, rng: np.random.Generator, n: int, height: float, r: Ranges) -> list[tuple]:
    """The sprites of one number of `n` digits at about `height` px: [(ink, x, y, label)] (label -1: an affix),
    positions relative to the number's start."""
    printed = None if rng.random() < 0.5 or not sp.printed else int(rng.integers(len(sp.printed) // 10))
    slant = rng.uniform(-r.slant, r.slant)
    pen = int(rng.choice(3, p=[0.6, 0.2, 0.2]))
    items: list[tuple[np.ndarray, int]] = [_digit_ink(sp, rng, printed) for _ in range(n)]
    if rng.random() < 0.15 and sp.others:
        items.insert(0, (sp.others[int(rng.integers(len(sp.others)))], -1))
    if rng.random() < 0.15 and sp.others:
        items.append((sp.others[int(rng.integers(len(sp.others)))], -1))
    out, x = [], 0.0
    for ink, d in items:
        h = height * rng.uniform(0.88, 1.12) * (rng.uniform(0.4, 1.0) if d < 0 else 1.0)
        jitter = 0.02 if printed is not None else 0.08
        s = _scaled(ink, h, rng.uniform(0.85, 1.15), slant + rng.uniform(-1, 1) * r.slant / 3, rng.uniform(-0.2, 0.2))
        if s is None:
            continue
        s = _pen(s, pen)
        y = height - s.shape[0] + height * rng.uniform(-jitter, jitter)  # bottoms on an uneven baseline
        if d < 0 and rng.random() < 0.5:
            y = (height - s.shape[0]) / 2
        out.append((s, x, y, d))
        touching = rng.random() < 0.25
        gap = rng.uniform(-0.12, 0.02) if touching else rng.uniform(0.02, 0.45 if printed is None else 0.18)
        x += s.shape[1] + gap * height
    return out


def _paste(canvas: np.ndarray, ink: np.ndarray, x: int, y: int) -> tuple[int, int, int, int] | None:
    """Max `ink` into `canvas` at (x, y), clipped; the box (x0, y0, x1, y1) of its visible ink, None when less than
    half of its ink is in the picture."""
    S = canvas.shape[0]
    h, w = ink.shape
    y0, y1, x0, x1 = max(y, 0), min(y + h, S), max(x, 0), min(x + w, S)
    if y1 <= y0 or x1 <= x0:
        return None
    part = ink[y0 - y : y1 - y, x0 - x : x1 - x]
    np.maximum(canvas[y0:y1, x0:x1], part, out=canvas[y0:y1, x0:x1])
    if part.sum() < 0.5 * ink.sum():
        return None
    rows, cols = np.flatnonzero((part > 0.1).any(1)), np.flatnonzero((part > 0.1).any(0))
    if rows.size == 0:
        return None
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def _free(box, taken, margin) -> bool:
    return all(
        box[0] > t[2] + margin or box[2] < t[0] - margin or box[1] > t[3] + margin or box[3] < t[1] - margin
        for t in taken
    )


def _numbers(sp: Sprites, rng: np.random.Generator, canvas: np.ndarray, r: Ranges):
    """Lay out the scene's numbers on `canvas`: (digit boxes, labels, the numbers' boxes)."""
    S = canvas.shape[0]
    boxes: list[tuple[int, int, int, int]] = []
    labels: list[int] = []
    numbers: list[tuple[float, float, float, float]] = []
    count = 0 if rng.random() < r.empty else int(rng.choice(MAX_NUMBERS, p=[0.6, 0.25, 0.15])) + 1
    count = min(count, r.numbers)
    lone = rng.random() < r.big
    for _ in range(1 if lone else count):
        n = 1 if lone else int(rng.integers(r.fewest, MAX_DIGITS + 1))
        height = math.exp(rng.uniform(math.log(r.min_height), math.log(r.max_height)))
        height = min(height, S / (0.75 * n + 0.2) * rng.uniform(0.5, 1.0))  # the number fits across
        big = lone and not (r.small and rng.random() < r.small)  # (no draw when none are small: WIDE's scenes stay)
        height = S * rng.uniform(*r.big_sizes) if big else height
        parts = _number(sp, rng, n, height, r)
        if not parts:
            continue
        w = max(x + s.shape[1] for s, x, _, _ in parts)
        h = max(y + s.shape[0] for s, _, y, _ in parts) - min(y for _, _, y, _ in parts)
        cut, most = (r.cut, S / (1 - r.cut)) if big else (0.08, S)
        if w > most or h > most:
            continue
        for _ in range(8):
            ox, oy = rng.uniform(-cut * w, S - (1 - cut) * w), rng.uniform(-cut * h, S - (1 - cut) * h)
            if _free((ox, oy, ox + w, oy + h), numbers, 0.3 * height):
                break
        else:
            continue
        placed = []
        for s, x, y, d in parts:
            box = _paste(canvas, s, round(ox + x), round(oy + y))
            if box is not None and d >= 0:
                boxes.append(box)
                labels.append(d)
                placed.append(box)
        if placed:
            a = np.array(placed)
            numbers.append((a[:, 0].min(), a[:, 1].min(), a[:, 2].max(), a[:, 3].max()))
    return boxes, labels, numbers


def _marks(rng: np.random.Generator, canvas: np.ndarray, numbers: list, taken: list, r: Ranges, sp: Sprites):
    """Distractors: letters, symbols and shapes in free places, lines around numbers, long strokes, specks."""
    S = canvas.shape[0]
    img = Image.new("L", (S, S), 0)
    draw = ImageDraw.Draw(img)
    for x0, y0, x1, y1 in numbers:
        h, u = y1 - y0, rng.random()
        width = max(1, round(h / rng.uniform(6, 14)))
        pad = h * rng.uniform(0.15, 0.4)
        if u < 0.12:  # underline
            yy = y1 + pad
            draw.line((x0 - pad, yy, x1 + pad, yy + rng.normal(0, 2)), fill=255, width=width)
        elif u < 0.2:
            draw.rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), outline=255, width=width)
        elif u < 0.28:
            draw.ellipse((x0 - 2 * pad, y0 - 1.5 * pad, x1 + 2 * pad, y1 + 1.5 * pad), outline=255, width=width)
    for _ in range(int(rng.integers(0, 7))):
        h = math.exp(rng.uniform(math.log(r.min_height), math.log(r.max_height * 0.7)))
        pool = sp.others if rng.random() < 0.8 else None
        ink = pool[int(rng.integers(len(pool)))] if pool else None
        if ink is None:
            continue
        s = _scaled(ink, h * (0.5 if ink.shape[0] < 0.3 * ink.shape[1] else 1.0), rng.uniform(0.8, 1.2),
                    rng.uniform(-r.slant, r.slant), rng.uniform(-0.2, 0.2))  # fmt: skip
        if s is None or max(s.shape) >= S:
            continue
        x, y = int(rng.integers(-4, S - s.shape[1] + 4)), int(rng.integers(-4, S - s.shape[0] + 4))
        if _free((x, y, x + s.shape[1], y + s.shape[0]), taken, 2):
            _paste(canvas, _pen(s, int(rng.choice(3, p=[0.6, 0.2, 0.2]))), x, y)
    if rng.random() < 0.3:  # a long stroke: a crossing-out line, a table rule, an arrow's shaft
        p = rng.uniform(0, S, 4)
        draw.line(tuple(p), fill=255, width=int(rng.integers(1, 5)))
    for _ in range(int(rng.integers(0, 30)) if rng.random() < 0.4 else 0):  # specks
        cx, cy, rad = rng.uniform(0, S), rng.uniform(0, S), rng.uniform(0.5, 2.5)
        draw.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), fill=int(rng.integers(120, 256)))
    marks = np.asarray(img, np.float32) / 255
    for x0, y0, x1, y1 in taken:  # nothing drawn over a digit's ink by the marks (its box stays exact)
        marks[y0:y1, x0:x1] = 0
    np.maximum(canvas, marks, out=canvas)


def layout(sp: Sprites, rng: np.random.Generator, size: int = SIZE, r: Ranges = TRAIN):
    """One scene's ink (float32 [size, size], white on black) with its digits' boxes and classes."""
    canvas = np.zeros((size, size), np.float32)
    boxes, labels, numbers = _numbers(sp, rng, canvas, r)
    _marks(rng, canvas, numbers, boxes, r, sp)
    b = np.array(boxes, np.float32).reshape(-1, 4)
    return canvas, b, np.array(labels, np.int64)


def make_scenes(sp: Sprites, n: int, rng: np.random.Generator, size: int = SIZE, r: Ranges = TRAIN) -> list[Scene]:
    """`n` scenes (see the module's docstring), their randomness all from `rng`."""
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return photograph([layout(sp, rng, size, r) for _ in range(n)], rng, g, size, r)


def lone_marks(pool: list[np.ndarray], n: int, rng: np.random.Generator, size: int = SIZE, r: Ranges = WIDE):
    """`n` pictures of one not-digit each (an ink of `pool`, as tall as a digit in `r`, anywhere), photographed as
    scenes are: no digit boxes. The benchmark's not-digit sets."""
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    laid = []
    for _ in range(n):
        canvas = np.zeros((size, size), np.float32)
        ink = pool[int(rng.integers(len(pool)))]
        h = math.exp(rng.uniform(math.log(r.min_height), math.log(r.max_height)))
        s = _scaled(ink, h * (0.5 if ink.shape[0] < 0.3 * ink.shape[1] else 1.0), rng.uniform(0.8, 1.2),
                    rng.uniform(-r.slant, r.slant), rng.uniform(-0.2, 0.2))  # fmt: skip
        if s is not None and max(s.shape) < size:
            x, y = int(rng.integers(0, size - s.shape[1])), int(rng.integers(0, size - s.shape[0]))
            _paste(canvas, _pen(s, int(rng.choice(3, p=[0.6, 0.2, 0.2]))), x, y)
        laid.append((canvas, np.zeros((0, 4), np.float32), np.zeros(0, np.int64)))
    return photograph(laid, rng, g, size, r)


def photograph(laid: list, rng: np.random.Generator, g: torch.Generator, size: int, r: Ranges) -> list[Scene]:
    """Laid-out scenes [(ink, boxes, labels)] given paper, light and a camera (`camera`), from `rng` and `g`."""
    inks, boxes, labels = zip(*laid)
    n = len(laid)
    kind = rng.integers(0, 8, n)
    bg, light = camera.background(n, size, g, torch.from_numpy(kind), camera.sheet_edges(list(boxes), size, rng, kind))
    ink = torch.from_numpy(np.stack(inks)).unsqueeze(1)
    opacity = 0.55 + 0.45 * torch.rand(n, 1, 1, 1, generator=g)
    chalky = torch.where(light.view(n, 1, 1, 1), 0.55 + 0.45 * camera.noise(n, size, g, 96), torch.ones(1))
    alpha = ink * opacity * chalky
    img = torch.lerp(bg, camera.legible(camera.ink(n, g, light), bg), alpha) * camera.light(n, size, g)
    img, warped = camera.perspective(img, list(boxes), rng, r.perspective)
    img = camera.blur(img, g, r.blur)
    img = img + torch.randn(img.shape, generator=g) * (r.noise * torch.rand(n, 1, 1, 1, generator=g))
    flip = torch.from_numpy(rng.random(n) < 0.08).view(n, 1, 1, 1)  # a negative, a dark-mode screen
    img = torch.where(flip, 1 - img, img).clamp(0, 1)
    img = camera.jpeg(img, rng)
    return [Scene(img[i], warped[i], labels[i]) for i in range(n)]
