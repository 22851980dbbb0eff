"""The not-digits that outlier exposure trains on (the `robust` recipe): letters and symbols rendered from fonts,
and shapes drawn with a round pen, each made MNIST-style as a user image would be."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from mnistlab.images.field import FIELD, bbox, to_field

# Letters and symbols for the not-digit bank. Left out: those that are written like a digit (O o D Q 0, I l i j |
# ! 1, Z z 2, S s 5, b G 6, B 8, g q 9, T 7, A 4, L?), which a person would read as one.
GLYPHS = "acdefhkmnprtuvwxyCEFHKMNPRUVWXY#%&@+=<>?*$"
TRAIN_FONTS = (  # DejaVu ships with Debian and most Linux systems; other fonts are kept for evaluating
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSans-Oblique.ttf",
)


def find_font(name: str) -> str | None:
    """The path of a TrueType font file by its file name, looked for where Linux and macOS keep fonts."""
    import glob

    for root in ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "/System/Library/Fonts"):
        hits = glob.glob(f"{root}/**/{name}", recursive=True)
        if hits:
            return hits[0]
    return None


def mnist_style(ink: np.ndarray) -> np.ndarray:
    """White-on-black ink (float, any size, some of it non-zero) made MNIST-style by `field.to_field`, strokes as
    drawn (not thickened)."""
    r0, r1, c0, c1 = bbox(ink)
    out = to_field(np.ascontiguousarray(ink[r0:r1, c0:c1]), thick=False)
    return out if out is not None else np.zeros((FIELD, FIELD), np.float32)


def render_glyphs(chars: str = GLYPHS, fonts=TRAIN_FONTS, strokes=(0, 2)) -> torch.Tensor:
    """[N, 28, 28] float32 in [0, 1]: each character in each font (found on this machine) and stroke width,
    MNIST-style. Pillow's own font stands in when none of `fonts` is installed."""
    faces: list[ImageFont.FreeTypeFont | ImageFont.ImageFont] = [
        ImageFont.truetype(p, 48) for p in (find_font(f) for f in fonts) if p
    ]
    if not faces:
        faces = [ImageFont.load_default(size=48)]
    out = []
    for face in faces:
        for ch in chars:
            for stroke in strokes:
                img = Image.new("L", (96, 96), 0)
                ImageDraw.Draw(img).text((16, 8), ch, fill=255, font=face, stroke_width=stroke, stroke_fill=255)
                a = np.asarray(img, np.float32) / 255
                if a.max() > 0:
                    out.append(mnist_style(a))
    return torch.from_numpy(np.stack(out))


# Shapes drawn with a pen, as on the page's pad (strokes in a unit square, x to the right, y down): letters and
# symbols no one writes as a digit. A circle alone (0), a bar (1), a C or U (an open 0) are left out.
DRAWN = {
    "A": [[(0.2, 0.9), (0.5, 0.1), (0.8, 0.9)], [(0.32, 0.6), (0.68, 0.6)]],
    "E": [[(0.75, 0.1), (0.25, 0.1), (0.25, 0.9), (0.75, 0.9)], [(0.25, 0.5), (0.65, 0.5)]],
    "F": [[(0.75, 0.1), (0.3, 0.1), (0.3, 0.9)], [(0.3, 0.5), (0.65, 0.5)]],
    "H": [[(0.25, 0.1), (0.25, 0.9)], [(0.75, 0.1), (0.75, 0.9)], [(0.25, 0.5), (0.75, 0.5)]],
    "K": [[(0.3, 0.1), (0.3, 0.9)], [(0.75, 0.1), (0.3, 0.55)], [(0.42, 0.45), (0.78, 0.9)]],
    "M": [[(0.15, 0.9), (0.2, 0.1), (0.5, 0.6), (0.8, 0.1), (0.85, 0.9)]],
    "N": [[(0.25, 0.9), (0.25, 0.1), (0.75, 0.9), (0.75, 0.1)]],
    "W": [[(0.1, 0.15), (0.3, 0.85), (0.5, 0.35), (0.7, 0.85), (0.9, 0.15)]],
    "X": [[(0.2, 0.15), (0.8, 0.85)], [(0.8, 0.15), (0.2, 0.85)]],
    "#": [[(0.38, 0.1), (0.32, 0.9)], [(0.68, 0.1), (0.62, 0.9)],
          [(0.12, 0.36), (0.88, 0.36)], [(0.1, 0.64), (0.86, 0.64)]],
    "+": [[(0.5, 0.15), (0.5, 0.85)], [(0.15, 0.5), (0.85, 0.5)]],
    "*": [[(0.5, 0.1), (0.5, 0.9)], [(0.15, 0.3), (0.85, 0.7)], [(0.85, 0.3), (0.15, 0.7)]],
    "star": [[(0.5, 0.1), (0.26, 0.88), (0.88, 0.38), (0.12, 0.38), (0.74, 0.88), (0.5, 0.1)]],
    "triangle": [[(0.5, 0.12), (0.12, 0.85), (0.88, 0.85), (0.5, 0.12)]],
    "square": [[(0.15, 0.15), (0.85, 0.15), (0.85, 0.85), (0.15, 0.85), (0.15, 0.15)]],
    "arrow": [[(0.1, 0.5), (0.9, 0.5)], [(0.6, 0.2), (0.9, 0.5), (0.6, 0.8)]],
    "heart": [[(0.5, 0.9), (0.12, 0.45), (0.15, 0.2), (0.33, 0.12), (0.5, 0.3), (0.67, 0.12), (0.85, 0.2),
               (0.88, 0.45), (0.5, 0.9)]],
    "zigzag": [[(0.1, 0.3), (0.26, 0.7), (0.42, 0.3), (0.58, 0.7), (0.74, 0.3), (0.9, 0.7)]],
    "spiral": [[(0.5 + 0.03 * t * math.cos(t), 0.5 + 0.03 * t * math.sin(t)) for t in np.linspace(0, 14, 36)]],
}  # fmt: skip


def render_drawn(shapes=DRAWN, variants: int = 16, seed: int = 0) -> torch.Tensor:
    """[N, 28, 28] float32 in [0, 1]: each shape drawn `variants` times with a round pen of random width, its
    points moved a little, MNIST-style (the training's affine and elastic distortions vary them further)."""
    rng = np.random.default_rng(seed)
    out = []
    for strokes in shapes.values():
        for _ in range(variants):
            img = Image.new("L", (112, 112), 0)
            draw = ImageDraw.Draw(img)
            width = int(rng.integers(6, 14))
            for stroke in strokes:
                pts = [(8 + 96 * (x + rng.normal(0, 0.03)), 8 + 96 * (y + rng.normal(0, 0.03))) for x, y in stroke]
                draw.line(pts, fill=255, width=width, joint="curve")
                for px, py in (pts[0], pts[-1]):
                    draw.ellipse((px - width / 2, py - width / 2, px + width / 2, py + width / 2), fill=255)
            out.append(mnist_style(np.asarray(img, np.float32) / 255))
    return torch.from_numpy(np.stack(out))


def not_digit_bank() -> torch.Tensor:
    """The shapes outlier exposure draws from: font glyphs and pen-drawn shapes."""
    return torch.cat([render_glyphs(), render_drawn()])
