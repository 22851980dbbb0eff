"""Synthetic pictures of written and printed numbers, made on the fly, with every digit's exact box and class.

A scene is laid out first (`_layout`, NumPy and Pillow on small sprites): one to three numbers of one to six digits,
each digit from MNIST's training split or printed in a DejaVu font (the only fonts used for training: Liberation,
FreeFont and every handwriting font are kept for evaluation), spaced as written numbers are (some touching, some
apart, an uneven baseline and size, a slant), drawn with a pen from fine to marker; then distractors the finder
must leave alone: letters, punctuation and symbols, drawn shapes and doodles, a smiley, underlines, a box or a
circle around a number, specks. A digit's box is the box of its own ink as pasted (clipped to the picture), so the
labels are exact. The rest is done on the whole batch with tensor ops (`_render`): the background (paper of any
colour and texture, squared and ruled pages with a margin line, the sheet's edge on a desk, whiteboard, cardboard,
chalkboard with light ink), the ink's colour and opacity, soft and hard shadows, light falling off, a perspective
(boxes mapped through it), motion and defocus blur, sensor noise and JPEG.
"""

from __future__ import annotations

import glob
import io
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

SIZE = 256  # the finder's input side: scenes are made at that size
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/Library/Fonts")
# Characters drawn as distractors. Left out: those a person writes like a digit (O o D Q, I l |, Z z, S s, b G, B,
# g q, T, A); "!", "i", "j" and "?" stay: their dot or hook tells them from a 1 or a 7 and a 2.
DISTRACT = "acdefhkmnprtuvwxyCEFHKLMNPRUVWXY#%&@+=<>?*$!ij:;,.-()€£"
WORDS = (
    "km",
    "cm",
    "ca.",
    "Ref",
    "Nr.",
    "max",
    "min",
    "Fax",
    "Ave",
    "Apt",
    "kW",
    "due",
    "Exp",
    "Mr",
    "Dr",
    "am",
)  # words beside numbers
MIN_CONTRAST = 0.3  # the least grey-level difference of ink and paper (a faint pencil on paper is about that)
MAX_NUMBERS = 3  # numbers per scene (most scenes hold one)
MAX_DIGITS = 6  # digits per number (a date, a price, a phone number's group)


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


TRAIN = Ranges()
WIDE = Ranges(min_height=10.0, max_height=200.0, slant=16.0, perspective=0.12, noise=0.07, blur=3.0, empty=0.1)


@dataclass(frozen=True)
class Sprites:
    """What scenes are made of: white-on-black float32 ink, cropped to its box."""

    mnist: np.ndarray  # uint8 [N, 28, 28], MNIST's training split
    mnist_labels: np.ndarray  # int64 [N]
    printed: list = field(default_factory=list)  # [(ink, digit)] in each DejaVu font
    others: list = field(default_factory=list)  # not-digits: letters, symbols, shapes


@dataclass(frozen=True)
class Scene:
    """One picture (float32 RGB [3, H, W] in [0, 1]) with its digits' boxes (x0, y0, x1, y1 in px) and classes."""

    image: torch.Tensor
    boxes: np.ndarray  # float32 [K, 4]
    labels: np.ndarray  # int64 [K]


def dejavu_fonts() -> list[str]:
    """The DejaVu font files on this machine (every weight, width and slant; not the maths font)."""
    found = sorted({p for d in FONT_DIRS for p in glob.glob(f"{d}/DejaVu*.ttf")})
    return [p for p in found if "Math" not in p]


def _crop(a: np.ndarray, level: float = 0.1) -> np.ndarray | None:
    rows, cols = np.flatnonzero((a > level).any(1)), np.flatnonzero((a > level).any(0))
    if rows.size == 0:
        return None
    return np.ascontiguousarray(a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def _render_text(text: str, font: ImageFont.FreeTypeFont) -> np.ndarray | None:
    img = Image.new("L", (64 * len(text) + 64, 128), 0)
    ImageDraw.Draw(img).text((24, 24), text, fill=255, font=font)
    return _crop(np.asarray(img, np.float32) / 255)


def _shapes(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Drawn shapes a finder must not call digits: the not-digit bank's pen shapes, smileys and scribbles."""
    from mnistlab.notdigits import DRAWN

    out = []
    kinds = list(DRAWN.values())
    for i in range(n):
        img = Image.new("L", (112, 112), 0)
        draw = ImageDraw.Draw(img)
        width = int(rng.integers(3, 10))
        if i % 4 == 0:  # a smiley: a ring, two eyes, a mouth
            draw.ellipse((10, 10, 102, 102), outline=255, width=width)
            for ex in (38, 74):
                draw.ellipse((ex - 6, 36, ex + 6, 48), fill=255)
            draw.arc((32, 40, 80, 84), 20, 160, fill=255, width=width)
        elif i % 4 == 1:  # a scribble: a smooth random walk
            p = np.cumsum(rng.normal(0, 14, (12, 2)), 0)
            p = 8 + 96 * (p - p.min(0)) / np.maximum(np.ptp(p, 0), 1)
            draw.line([tuple(q) for q in p], fill=255, width=width, joint="curve")
        else:
            for stroke in kinds[i % len(kinds)]:
                pts = [(8 + 96 * (x + rng.normal(0, 0.03)), 8 + 96 * (y + rng.normal(0, 0.03))) for x, y in stroke]
                draw.line(pts, fill=255, width=width, joint="curve")
        ink = _crop(np.asarray(img, np.float32) / 255)
        if ink is not None:
            out.append(ink)
    return out


def load_sprites(mnist_images=None, mnist_labels=None, *, fonts: list[str] | None = None, seed: int = 0) -> Sprites:
    """The sprites: MNIST's training split (loaded from the mirror unless given), the digits and distractors in
    every DejaVu font found (or `fonts`), and drawn shapes."""
    if mnist_images is None:
        from mnistlab.data import load_tensors

        mnist_images, mnist_labels = load_tensors(train=True)
    faces = [ImageFont.truetype(p, 64) for p in (dejavu_fonts() if fonts is None else fonts)]
    printed, others = [], []
    for face in faces:
        for d in range(10):
            ink = _render_text(str(d), face)
            if ink is not None:
                printed.append((ink, d))
        for ch in (*DISTRACT, *WORDS):
            ink = _render_text(ch, face)
            if ink is not None:
                others.append(ink)
    rng = np.random.default_rng(seed)
    others += _shapes(rng, 96)
    return Sprites(np.asarray(mnist_images, np.uint8), np.asarray(mnist_labels, np.int64), printed, others)


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
    return _crop(np.clip(np.asarray(warped, np.float32), 0, 1))


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
        ink, d = _crop(sp.mnist[i].astype(np.float32) / 255), int(sp.mnist_labels[i])
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
    for _ in range(count):
        n = int(rng.integers(1, MAX_DIGITS + 1))
        height = math.exp(rng.uniform(math.log(r.min_height), math.log(r.max_height)))
        height = min(height, S / (0.75 * n + 0.2) * rng.uniform(0.5, 1.0))  # the number fits across
        parts = _number(sp, rng, n, height, r)
        if not parts:
            continue
        w = max(x + s.shape[1] for s, x, _, _ in parts)
        h = max(y + s.shape[0] for s, _, y, _ in parts) - min(y for _, _, y, _ in parts)
        if w > S or h > S:
            continue
        for _ in range(8):
            ox, oy = rng.uniform(-0.08 * w, S - 0.92 * w), rng.uniform(-0.08 * h, S - 0.92 * h)
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


def _homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 matrix taking the 4 points `src` to `dst`."""
    a = []
    for (x, y), (u, v) in zip(src, dst):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    h = np.linalg.solve(np.array(a, float), dst.reshape(-1).astype(float))
    return np.append(h, 1).reshape(3, 3)


def _perspective(img: torch.Tensor, boxes: list[np.ndarray], rng: np.random.Generator, amount: float):
    """Each picture seen from a little aside: its corners moved by up to `amount` of the side; boxes mapped."""
    n, _, S, _ = img.shape
    corners = np.array([[0, 0], [S, 0], [S, S], [0, S]], float)
    hs, out = [], []
    for i in range(n):
        moved = corners + rng.uniform(-amount, amount, (4, 2)) * S * (rng.random() < 0.6)
        h_out_in = _homography(corners, moved)  # an output pixel -> where it is read in the scene
        b = boxes[i]
        if len(b):
            pts = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], 1).reshape(-1, 2)
            q = np.c_[pts, np.ones(len(pts))] @ np.linalg.inv(h_out_in).T
            q = (q[:, :2] / q[:, 2:]).reshape(-1, 4, 2)
            b = np.concatenate([q.min(1), q.max(1)], 1).clip(0, S).astype(np.float32)
        out.append(b)
        hs.append(h_out_in)
    c = torch.arange(S, dtype=torch.float32) + 0.5
    p = torch.stack([c.view(1, S).expand(S, S), c.view(S, 1).expand(S, S), torch.ones(S, S)], -1).view(1, -1, 3)
    q = p @ torch.from_numpy(np.stack(hs)).float().transpose(1, 2)
    grid = (q[..., :2] / q[..., 2:] / S * 2 - 1).view(n, S, S, 2)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False), out


def _noise(n: int, S: int, g: torch.Generator, cells: int) -> torch.Tensor:
    """Smooth noise in [0, 1]: `cells` random values across, upsampled bilinearly."""
    return F.interpolate(torch.rand(n, 1, cells, cells, generator=g), size=(S, S), mode="bilinear").clamp(0, 1)


def _background(n: int, S: int, g: torch.Generator, kind: torch.Tensor, edges: torch.Tensor):
    """Paper, pages, desk, boards: (RGB [n, 3, S, S], whether the ink is light on it [n])."""
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    k = kind.view(n, 1, 1, 1)
    white = 0.82 + 0.18 * u(n, 1, 1, 1) - 0.06 * u(n, 3, 1, 1)
    colour = 0.45 + 0.5 * u(n, 3, 1, 1)
    card = torch.tensor([0.66, 0.52, 0.36]).view(1, 3, 1, 1) * (0.8 + 0.35 * u(n, 1, 1, 1))
    board = torch.tensor([0.16, 0.24, 0.2]).view(1, 3, 1, 1) * (0.4 + 0.9 * u(n, 1, 1, 1))
    base = torch.where(k == 5, card, torch.where(k == 6, board, torch.where(k == 7, colour, white)))
    tex = _noise(n, S, g, 4) - 0.5
    fine = _noise(n, S, g, 64) - 0.5
    amp = torch.where(k == 5, 0.12, torch.where(k == 6, 0.1, 0.04 * u(n, 1, 1, 1)))
    bg = base * (1 + amp * tex + amp * fine)
    ys = torch.arange(S, dtype=torch.float32).view(1, 1, S, 1)
    xs = torch.arange(S, dtype=torch.float32).view(1, 1, 1, S)
    period = 7 + 16 * u(n, 1, 1, 1)
    line = lambda c: ((c + period * u(n, 1, 1, 1)) % period < 0.6 + 0.8 * u(n, 1, 1, 1)).float()  # noqa: E731
    ink_blue = torch.tensor([0.45, 0.6, 0.85]).view(1, 3, 1, 1)
    grid = torch.maximum(line(ys), line(xs) * (k == 1)) * ((k == 1) | (k == 2))
    bg = torch.lerp(bg, ink_blue * bg, grid * (0.3 + 0.5 * u(n, 1, 1, 1)))
    margin = ((xs - S * (0.05 + 0.25 * u(n, 1, 1, 1))).abs() < 0.8).float() * (k == 2) * (u(n, 1, 1, 1) < 0.7)
    bg = torch.lerp(bg, torch.tensor([0.9, 0.3, 0.3]).view(1, 3, 1, 1), margin * 0.7)
    glare = (1 - ((xs / S - u(n, 1, 1, 1)) ** 2 + (ys / S - u(n, 1, 1, 1)) ** 2)).clamp(0, 1) ** 4 * 0.15
    bg = bg + glare * (k == 4)
    desk = torch.where(u(n, 1, 1, 1) < 0.5, 0.1 + 0.3 * u(n, 3, 1, 1), card * 0.6) * (1 + 0.3 * _noise(n, S, g, 24))
    c, s_, rho = edges[:, 0].view(n, 1, 1, 1), edges[:, 1].view(n, 1, 1, 1), edges[:, 2].view(n, 1, 1, 1)
    off = ((xs * c + ys * s_ - rho) / 0.8).sigmoid() * (edges[:, 3].view(n, 1, 1, 1) > 0)
    bg = torch.lerp(bg, desk, off)
    return bg.clamp(0, 1), kind == 6


def _sheet_edges(boxes: list[np.ndarray], S: int, rng: np.random.Generator, kind: np.ndarray) -> torch.Tensor:
    """Where the sheet ends (kind 3): a line beyond every digit; [n, 4] = (cos, sin, offset, on)."""
    out = np.zeros((len(boxes), 4), np.float32)
    for i, b in enumerate(boxes):
        a = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(a), math.sin(a)
        pts = np.array([[0, 0], [S, 0], [0, S], [S, S]]) if not len(b) else np.r_[b[:, :2], b[:, 2:]]
        lo = float((pts @ [c, s]).max()) + 4
        hi = float((np.array([[0, 0], [S, 0], [0, S], [S, S]]) @ [c, s]).max())
        if kind[i] == 3 and hi > lo + 4:
            out[i] = (c, s, rng.uniform(lo, hi), 1)
    return torch.from_numpy(out)


def _ink(n: int, g: torch.Generator, light: torch.Tensor) -> torch.Tensor:
    """The ink's colour [n, 3, 1, 1]: black, blue, red, green, pencil grey on paper; chalk's white or yellow."""
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    palette = torch.tensor(
        [[0.05, 0.05, 0.08], [0.1, 0.15, 0.55], [0.7, 0.1, 0.12], [0.1, 0.4, 0.2], [0.35, 0.35, 0.37], [0.2, 0.1, 0.4]]
    )
    pick = palette[(u(n) * len(palette)).long().clamp(max=len(palette) - 1)] * (0.6 + 0.6 * u(n, 1))
    chalk = torch.where(u(n, 1) < 0.7, torch.tensor([0.95, 0.95, 0.92]), torch.tensor([0.95, 0.9, 0.5]))
    return torch.where(light.view(n, 1), chalk * (0.8 + 0.2 * u(n, 1)), pick).view(n, 3, 1, 1).clamp(0, 1)


def _legible(ink: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """The ink colour, replaced by black or white where its grey level is within MIN_CONTRAST of the paper's."""
    grey = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    paper = (bg * grey).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    level = (ink * grey).sum(1, keepdim=True)
    fix = torch.where(paper > 0.5, torch.zeros_like(ink), torch.ones_like(ink))
    return torch.where((level - paper).abs() < MIN_CONTRAST, fix, ink)


def _light(n: int, S: int, g: torch.Generator) -> torch.Tensor:
    """Light falling off across the picture times a hard or soft shadow: [n, 1, S, S] factors in (0, 1]."""
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    ys = torch.linspace(0, 1, S).view(1, 1, S, 1)
    xs = torch.linspace(0, 1, S).view(1, 1, 1, S)
    d2 = (xs - u(n, 1, 1, 1)) ** 2 + (ys - u(n, 1, 1, 1)) ** 2
    fall = 1 - 0.5 * u(n, 1, 1, 1) * d2 * (u(n, 1, 1, 1) < 0.5)
    a = u(n, 1, 1, 1) * 2 * math.pi
    dist = xs * torch.cos(a) + ys * torch.sin(a) - (u(n, 1, 1, 1) * 1.4 - 0.2)
    soft = torch.where(u(n, 1, 1, 1) < 0.5, 0.002 + 0.006 * u(n, 1, 1, 1), 0.02 + 0.1 * u(n, 1, 1, 1))
    depth = (0.15 + 0.5 * u(n, 1, 1, 1)) * (u(n, 1, 1, 1) < 0.35)
    shadow = 1 - depth * (dist / soft).sigmoid()
    return fall * shadow


def _blur(img: torch.Tensor, g: torch.Generator, most: float) -> torch.Tensor:
    """Defocus (a disc) or motion (a line) blur on part of the batch, up to `most` px."""
    n = img.shape[0]
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    k = 2 * math.ceil(3 * most) + 1
    r = torch.arange(k, dtype=torch.float32) - k // 2
    yy, xx = r.view(1, k, 1), r.view(1, 1, k)
    rad = (most * u(n, 1, 1)).clamp(min=0.5)
    disc = (rad + 0.5 - (xx**2 + yy**2).sqrt()).clamp(0, 1)
    a = u(n, 1, 1) * math.pi
    length = 3 * most * u(n, 1, 1)
    along, across = xx * torch.cos(a) + yy * torch.sin(a), -xx * torch.sin(a) + yy * torch.cos(a)
    motion = (1 - across.abs()).clamp(0, 1) * (along.abs() <= length / 2 + 0.5)
    which = u(n, 1, 1)
    centre = (xx == 0) & (yy == 0)
    kern = torch.where(which < 0.2, disc, torch.where(which < 0.35, motion, centre.float()))
    kern = kern / kern.sum((1, 2), keepdim=True)
    picked = torch.nonzero(which.view(n) < 0.35).view(-1)
    if picked.numel() == 0:
        return img
    sub = img[picked]
    m, c, S, _ = sub.shape
    w = kern[picked].repeat_interleave(c, 0).unsqueeze(1)
    out = F.conv2d(F.pad(sub.reshape(1, m * c, S, S), (k // 2,) * 4, mode="replicate"), w, groups=m * c)
    img = img.clone()
    img[picked] = out.view(m, c, S, S)
    return img


def _jpeg(img: torch.Tensor, rng: np.random.Generator, share: float = 0.3) -> torch.Tensor:
    """Part of the batch through JPEG at a quality from 15 to 85."""
    for i in np.flatnonzero(rng.random(img.shape[0]) < share):
        a = (img[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=int(rng.integers(15, 86)))
        img[i] = torch.from_numpy(np.asarray(Image.open(buf), np.float32) / 255).permute(2, 0, 1)
    return img


def make_scenes(sp: Sprites, n: int, rng: np.random.Generator, size: int = SIZE, r: Ranges = TRAIN) -> list[Scene]:
    """`n` scenes (see the module's docstring), their randomness all from `rng`."""
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    inks, boxes, labels = zip(*(layout(sp, rng, size, r) for _ in range(n)))
    kind = rng.integers(0, 8, n)
    bg, light = _background(n, size, g, torch.from_numpy(kind), _sheet_edges(list(boxes), size, rng, kind))
    ink = torch.from_numpy(np.stack(inks)).unsqueeze(1)
    opacity = 0.55 + 0.45 * torch.rand(n, 1, 1, 1, generator=g)
    chalky = torch.where(light.view(n, 1, 1, 1), 0.55 + 0.45 * _noise(n, size, g, 96), torch.ones(1))
    alpha = ink * opacity * chalky
    img = torch.lerp(bg, _legible(_ink(n, g, light), bg), alpha) * _light(n, size, g)
    img, warped = _perspective(img, list(boxes), rng, r.perspective)
    img = _blur(img, g, r.blur)
    img = img + torch.randn(img.shape, generator=g) * (r.noise * torch.rand(n, 1, 1, 1, generator=g))
    flip = torch.from_numpy(rng.random(n) < 0.08).view(n, 1, 1, 1)  # a negative, a dark-mode screen
    img = torch.where(flip, 1 - img, img).clamp(0, 1)
    img = _jpeg(img, rng)
    return [Scene(img[i], warped[i], labels[i]) for i in range(n)]
