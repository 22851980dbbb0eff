"""What scenes are drawn with: digits from MNIST's training split and DejaVu fonts, and not-digits (letters,
symbols, words, drawn shapes), each white-on-black float32 ink cropped to its box."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/Library/Fonts")
# Characters drawn as distractors. Left out: those a person writes like a digit (O o D Q, I l |, Z z, S s, b G, B,
# g q, T, A); "!", "i", "j" and "?" stay: their dot or hook tells them from a 1 or a 7 and a 2.
DISTRACT = "acdefhkmnprtuvwxyCEFHKLMNPRUVWXY#%&@+=<>?*$!ij:;,.-()€£"
# Words written beside numbers (none holding a letter left out above)
WORDS = ("km", "cm", "ca.", "Ref", "Nr.", "max", "min", "Fax", "Ave", "Apt", "kW", "due", "Exp", "Mr", "Dr", "am")


@dataclass(frozen=True)
class Sprites:
    """What scenes are made of: white-on-black float32 ink, cropped to its box."""

    mnist: np.ndarray  # uint8 [N, 28, 28], MNIST's training split
    mnist_labels: np.ndarray  # int64 [N]
    printed: list = field(default_factory=list)  # [(ink, digit)] in each DejaVu font
    others: list = field(default_factory=list)  # not-digits: letters, symbols, shapes


def dejavu_fonts() -> list[str]:
    """The DejaVu font files on this machine (every weight, width and slant; not the maths font)."""
    found = sorted({p for d in FONT_DIRS for p in glob.glob(f"{d}/DejaVu*.ttf")})
    return [p for p in found if "Math" not in p]


def crop(a: np.ndarray, level: float = 0.1) -> np.ndarray | None:
    rows, cols = np.flatnonzero((a > level).any(1)), np.flatnonzero((a > level).any(0))
    if rows.size == 0:
        return None
    return np.ascontiguousarray(a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def _render_text(text: str, font: ImageFont.FreeTypeFont) -> np.ndarray | None:
    img = Image.new("L", (64 * len(text) + 64, 128), 0)
    ImageDraw.Draw(img).text((24, 24), text, fill=255, font=font)
    return crop(np.asarray(img, np.float32) / 255)


def shapes(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Drawn shapes a finder must not call digits: the not-digit bank's pen shapes, smileys and scribbles."""
    from mnistlab.data.notdigits import DRAWN

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
        ink = crop(np.asarray(img, np.float32) / 255)
        if ink is not None:
            out.append(ink)
    return out


def characters(fonts: list[str], texts=(*DISTRACT, *WORDS)) -> list[np.ndarray]:
    """Each of `texts` rendered in each font file of `fonts` (the distractors by default): ink as the sprites'."""
    faces = [ImageFont.truetype(p, 64) for p in fonts]
    return [ink for face in faces for ch in texts if (ink := _render_text(ch, face)) is not None]


def load_sprites(mnist_images=None, mnist_labels=None, *, fonts: list[str] | None = None, seed: int = 0) -> Sprites:
    """The sprites: MNIST's training split (loaded from the mirror unless given), the digits and distractors in
    every DejaVu font found (or `fonts`), and drawn shapes."""
    if mnist_images is None:
        from mnistlab.data.download import load_tensors

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
    others += shapes(rng, 96)
    return Sprites(np.asarray(mnist_images, np.uint8), np.asarray(mnist_labels, np.int64), printed, others)
