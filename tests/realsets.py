"""Real-digit-like test sets rendered from MNIST test digits, and not-digits (no tests here).

Each maker takes a 28x28 uint8 MNIST digit (white on black) and a NumPy generator and returns what a person would
hand to `mnistlab predict`: a dark-on-light array (grey or RGB), or for EXIF the bytes of a JPEG file. Used by the
tests (tests/infer/test_realdigits.py) and by benchmarks/robustness.py, on sets that no model here was tuned on.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Fonts for not-digits: none of them is in the robust recipe's training bank (notdigits.TRAIN_FONTS).
HELD_OUT_FONTS = (
    "DejaVuSansCondensed.ttf",
    "DejaVuSerifCondensed-Bold.ttf",
    "LiberationSans-Regular.ttf",
    "LiberationSerif-Italic.ttf",
    "FreeMono.ttf",
    "FreeSerif.ttf",
)
LETTERS = "acdefhkmnprtuvwxyACEFHKMNPRUVWXY"  # letters no one writes like a digit (notdigits.GLYPHS' letters)


def _font(name: str) -> str | None:
    """A system font's path by file name, from matplotlib's list of the system's fonts."""
    from matplotlib import font_manager

    return next((f for f in font_manager.findSystemFonts() if f.endswith("/" + name)), None)


def _ink_box(d: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(d.max(1) > 0), np.flatnonzero(d.max(0) > 0)
    return d[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _paper(ink: np.ndarray, paper: float = 245, pen: float = 20) -> np.ndarray:
    """Ink (0..1) as dark pen on light paper, 0..255 floats."""
    return paper - (paper - pen) * ink


def tight(d: np.ndarray, rng: np.random.Generator, edges: str = "all") -> np.ndarray:
    """Cropped to the ink's box (the strokes touch all four edges), or with margins on all sides but one
    (`edges="one"`), enlarged 2-6x, dark on light, grey."""
    crop = _ink_box(d).astype(np.float32) / 255
    if edges == "one":
        m = int(rng.integers(2, 5))
        crop = np.pad(crop, ((m, m), (m, m)))
        side = int(rng.integers(4))
        crop = [crop[m:], crop[:-m], crop[:, m:], crop[:, :-m]][side]
    k = float(rng.uniform(2, 6))
    img = Image.fromarray(_paper(crop)).resize(
        (max(3, round(crop.shape[1] * k)), round(crop.shape[0] * k)), Image.BILINEAR
    )
    return np.clip(np.asarray(img), 0, 255).astype(np.uint8)


def soft_scan(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft, low-resolution scan: a tight crop (0-1 px margin) shrunk to 8-14 px on its longer side (keeping its
    shape), blurred, shown 4x."""
    crop = np.pad(_ink_box(d).astype(np.float32) / 255, int(rng.integers(0, 2)))
    side = int(rng.integers(8, 15))
    h, w = (side, max(2, round(side * crop.shape[1] / crop.shape[0]))) if crop.shape[0] >= crop.shape[1] else (
        max(2, round(side * crop.shape[0] / crop.shape[1])), side)  # fmt: skip
    small = Image.fromarray(_paper(crop, 235, 60)).resize((w, h), Image.BOX)
    small = np.asarray(small, np.float32) + rng.normal(0, 3, (h, w))
    return np.asarray(Image.fromarray(np.clip(small, 0, 255).astype(np.uint8)).resize((w * 4, h * 4), Image.BICUBIC))


def _sheet(h: int, w: int, rng: np.random.Generator, colour=(246, 244, 236)) -> np.ndarray:
    base = np.ones((h, w, 3), np.float32) * np.array(colour, np.float32)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    a = rng.uniform(0, 2 * np.pi)
    light = 1 - rng.uniform(0.05, 0.25) * (np.cos(a) * xx + np.sin(a) * yy + 1) / 2  # light falling off
    return base * light[..., None] + rng.normal(0, 2.0, (h, w, 1))


def _place(sheet: np.ndarray, d: np.ndarray, side: int, top: int, left: int, pen, rng) -> np.ndarray:
    ink = np.asarray(Image.fromarray(d).resize((side, side), Image.BICUBIC), np.float32) / 255
    out = sheet.copy()
    region = out[top : top + side, left : left + side]
    region[:] = region * (1 - ink[..., None]) + np.array(pen, np.float32) * ink[..., None]
    return out


def notebook(d: np.ndarray, rng: np.random.Generator, paper: str = "squared", margin: bool = False) -> np.ndarray:
    """A digit written on squared or ruled notebook paper (blue-grey lines, 14-22 px apart), with or without a red
    margin line, light falling off across the page, saved as JPEG (quality 70-90): an RGB photo of 260x260."""
    h = w = 260
    s = _sheet(h, w, rng)
    gap = int(rng.integers(14, 23))
    line = np.array([150, 170, 205], np.float32)
    off = int(rng.integers(0, gap))
    for y in range(off, h, gap):
        s[y : y + 1] = s[y : y + 1] * 0.35 + line * 0.65
    if paper == "squared":
        for x in range(off, w, gap):
            s[:, x : x + 1] = s[:, x : x + 1] * 0.35 + line * 0.65
    if margin:
        x = int(rng.integers(20, 50))
        s[:, x : x + 2] = s[:, x : x + 2] * 0.3 + np.array([210, 60, 60], np.float32) * 0.7
    side = int(rng.integers(110, 170))
    top, left = int(rng.integers(10, h - side - 10)), int(rng.integers(55, w - side - 5))
    pen = (20, 30, 110) if rng.random() < 0.5 else (25, 25, 30)
    out = _place(s, d, side, top, left, pen, rng)
    buf = io.BytesIO()
    Image.fromarray(np.clip(out, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=int(rng.integers(70, 91)))
    return np.asarray(Image.open(buf).convert("RGB"))


def coloured(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Coloured ink (blue, red, green, purple, brown) on coloured paper (yellow, pink, mint, light blue, grey)."""
    papers = [(250, 238, 160), (250, 210, 220), (200, 240, 210), (200, 225, 250), (215, 215, 215)]
    pens = [(30, 50, 190), (190, 30, 30), (20, 120, 40), (110, 30, 140), (110, 60, 20)]
    s = _sheet(200, 200, rng, papers[int(rng.integers(len(papers)))])
    side = int(rng.integers(100, 150))
    top, left = int(rng.integers(5, 200 - side - 5)), int(rng.integers(5, 200 - side - 5))
    return np.clip(_place(s, d, side, top, left, pens[int(rng.integers(len(pens)))], rng), 0, 255).astype(np.uint8)


def small_in_large(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A digit 5% of the side of a 1600x1200 photo of paper (grey)."""
    h, w = 1200, 1600
    s = _sheet(h, w, rng)
    side = round(0.05 * w * 28 / 20)  # the ink's box is 20/28 of the field: the digit is 5% of the side
    top, left = int(rng.integers(50, h - side - 50)), int(rng.integers(50, w - side - 50))
    out = _place(s, d, side, top, left, (30, 30, 35), rng)
    return np.clip(out.mean(axis=2), 0, 255).astype(np.uint8)


def exif_jpeg(d: np.ndarray, rng: np.random.Generator) -> bytes:
    """A JPEG whose pixels are stored turned (as a phone does) with the EXIF orientation that turns them upright."""
    img = Image.fromarray(np.clip(_paper(np.pad(d, 6).astype(np.float32) / 255), 0, 255).astype(np.uint8))
    img = img.resize((160, 160), Image.BICUBIC)
    orientation = int(rng.choice([3, 6, 8]))
    stored = img.transpose({3: Image.ROTATE_180, 6: Image.ROTATE_90, 8: Image.ROTATE_270}[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


MAKERS = {  # name: maker, for the tests and the robustness report
    "tight, all edges": lambda d, rng: tight(d, rng, "all"),
    "tight, one edge": lambda d, rng: tight(d, rng, "one"),
    "soft low-res scan": soft_scan,
    "squared paper": lambda d, rng: notebook(d, rng, "squared"),
    "ruled paper + margin": lambda d, rng: notebook(d, rng, "ruled", margin=True),
    "coloured ink and paper": coloured,
    "EXIF-rotated JPEG": exif_jpeg,
    "5% of a large photo": small_in_large,
}


# --------------------------------------------------------------------------------------------------------------
# Not digits


def letter(rng: np.random.Generator, fonts=HELD_OUT_FONTS, chars: str = LETTERS) -> np.ndarray:
    """One letter, dark on light, 120x120, in a font none of the training glyphs used (Pillow's when none is)."""
    paths = [p for p in (_font(f) for f in fonts) if p]
    size = int(rng.integers(60, 90))
    face = ImageFont.truetype(paths[int(rng.integers(len(paths)))], size) if paths else ImageFont.load_default(size)
    img = Image.new("L", (120, 120), 245)
    ch = chars[int(rng.integers(len(chars)))]
    ImageDraw.Draw(img).text((60, 60), ch, fill=20, font=face, anchor="mm", stroke_width=int(rng.integers(0, 3)))
    return np.asarray(img)


def noise(rng: np.random.Generator) -> np.ndarray:
    """Grey noise, smooth at a random scale (a texture) or not."""
    k = int(rng.integers(1, 12))
    small = rng.uniform(0, 255, (max(2, 96 // k), max(2, 96 // k))).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((96, 96), Image.BICUBIC))


def scribble(rng: np.random.Generator) -> np.ndarray:
    """A random-walk scribble of many strokes, dark on light."""
    img = Image.new("L", (120, 120), 245)
    draw = ImageDraw.Draw(img)
    p = rng.uniform(20, 100, 2)
    for _ in range(40):
        q = np.clip(p + rng.normal(0, 25, 2), 5, 115)
        draw.line([tuple(p), tuple(q)], fill=20, width=4)
        p = q
    return np.asarray(img)


# Pen-drawn letters and symbols, none of them among the training bank's drawn shapes (robust.DRAWN)
HELD_OUT_DRAWN = {
    "R": [[(0.3, 0.9), (0.3, 0.1), (0.6, 0.1), (0.72, 0.22), (0.72, 0.38), (0.6, 0.5), (0.3, 0.5)],
          [(0.45, 0.5), (0.75, 0.9)]],
    "Y": [[(0.2, 0.1), (0.5, 0.5), (0.8, 0.1)], [(0.5, 0.5), (0.5, 0.9)]],
    "V": [[(0.2, 0.1), (0.5, 0.9), (0.8, 0.1)]],
    "=": [[(0.15, 0.38), (0.85, 0.38)], [(0.15, 0.62), (0.85, 0.62)]],
    "house": [[(0.2, 0.45), (0.2, 0.9), (0.8, 0.9), (0.8, 0.45)], [(0.12, 0.5), (0.5, 0.12), (0.88, 0.5)]],
    "smiley": [[(0.5 + 0.38 * np.sin(t), 0.5 - 0.38 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 30)],
               [(0.36, 0.38), (0.37, 0.4)], [(0.63, 0.38), (0.64, 0.4)],
               [(0.3, 0.6), (0.4, 0.7), (0.5, 0.73), (0.6, 0.7), (0.7, 0.6)]],
    "tick": [[(0.15, 0.55), (0.4, 0.85), (0.88, 0.15)]],
    "cross-hatch": [[(0.1, 0.2), (0.9, 0.2)], [(0.1, 0.5), (0.9, 0.5)], [(0.1, 0.8), (0.9, 0.8)],
                    [(0.2, 0.1), (0.2, 0.9)], [(0.5, 0.1), (0.5, 0.9)], [(0.8, 0.1), (0.8, 0.9)]],
}  # fmt: skip


def draw_strokes(strokes, rng: np.random.Generator, side: int = 140) -> np.ndarray:
    """Strokes (in a unit square) drawn with a round pen of random width, each point moved a little, dark on
    light: what the page's pad or a photographed doodle gives."""
    img = Image.new("L", (side, side), 245)
    draw = ImageDraw.Draw(img)
    width = int(rng.integers(5, 12))
    for stroke in strokes:
        pts = [(10 + (side - 20) * (x + rng.normal(0, 0.02)), 10 + (side - 20) * (y + rng.normal(0, 0.02)))
               for x, y in stroke]  # fmt: skip
        draw.line(pts, fill=20, width=width, joint="curve")
        for px, py in (pts[0], pts[-1]):
            draw.ellipse((px - width / 2, py - width / 2, px + width / 2, py + width / 2), fill=20)
    return np.asarray(img)


def drawn(rng: np.random.Generator) -> np.ndarray:
    """One of the held-out pen-drawn shapes."""
    return draw_strokes(list(HELD_OUT_DRAWN.values())[int(rng.integers(len(HELD_OUT_DRAWN)))], rng)


NOT_DIGITS = {
    "letters (held-out fonts)": letter,
    "noise and textures": noise,
    "scribbles": scribble,
    "drawn shapes (held out)": drawn,
}
