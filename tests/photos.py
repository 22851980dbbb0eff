"""Photo-like test images: an MNIST digit rendered as a phone photo of a handwritten digit on paper (no tests here)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

# The effects a photo may have; `random_effects` gives each image a random subset, each effect with probability 1/2.
EFFECTS = (
    "texture",  # paper grain and blotches, a few % of the paper's brightness
    "gradient",  # light falling off across the page, to 55-80% of the brightest side
    "shadow",  # a soft-edged shadow (to 55-75%) entering from one side, often over part of the digit
    "frame",  # a hand-drawn box around the digit, with the same pen
    "edge",  # the sheet's edge: a darker table region along one or two sides
    "lines",  # ruled lines across the sheet, paler than the pen: one just under the digit (now and then touching
    # it), the next ones a fifth of the photo's height apart (faint, but crossing a tall digit)
    "noise",  # sensor noise, Gaussian, sigma 2-4% of white
    "blur",  # out of focus, Gaussian, sigma 0.8-1.6 px at 240 px
    "rotation",  # the sheet turned by up to 8 degrees
    "perspective",  # the phone held at a slant: corners moved by up to 5% of the size
    "colour",  # an RGB photo: tinted paper, blue or black pen, bluish ruled lines
)


def random_effects(rng: np.random.Generator, p: float = 0.5) -> tuple[str, ...]:
    """A random subset of `EFFECTS`, each one included with probability `p`."""
    return tuple(e for e in EFFECTS if rng.random() < p)


def numbered_photo(
    digit28: np.ndarray | None, seed: int, i: int, *, size: int = 240, strength: float = 1.0
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Photo number i of a set (and its effects): its own generator, seeded with (seed, i), so that a photo is the
    same in every set that has it, whatever the set's size (scripts/photo_accuracy.py and
    tests/infer/test_photos.py)."""
    rng = np.random.default_rng([seed, i])
    effects = random_effects(rng)
    return photo_like(digit28, rng, size=size, effects=effects, strength=strength), effects


def _digit_alpha(digit28: np.ndarray, side: int) -> np.ndarray:
    """The 28x28 digit (white on black, 0..255) upscaled to side x side, as pen ink coverage in [0, 1]."""
    a = Image.fromarray(np.asarray(digit28, np.float32) / 255.0)
    a = np.asarray(a.resize((side, side), Image.Resampling.BICUBIC), np.float32)
    t = np.clip((a - 0.2) / 0.5, 0.0, 1.0)  # MNIST's soft edges made into a pen's firmer ones
    return t * t * (3 - 2 * t)


def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> tuple[float, ...]:
    """PIL's PERSPECTIVE coefficients mapping output points `dst` (4x2) to input points `src` (4x2)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return tuple(np.linalg.solve(np.array(rows, float), np.array(rhs, float)))


def _wobbly_box(draw: ImageDraw.ImageDraw, box, width: int, rng: np.random.Generator) -> None:
    """A hand-drawn rectangle: jittered corners, slightly wavy sides, the last side overshooting its corner."""
    x0, y0, x1, y1 = box
    j = 0.03 * max(x1 - x0, y1 - y0)
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    corners = [(x + rng.uniform(-j, j), y + rng.uniform(-j, j)) for x, y in corners]
    points = []
    for k in range(4):
        (ax, ay), (bx, by) = corners[k], corners[(k + 1) % 4]
        for t in np.linspace(0, 1, 5)[:-1]:
            w = 0 if t == 0 else rng.uniform(-1.5, 1.5)
            points.append((ax + t * (bx - ax) + w, ay + t * (by - ay) + w))
    (ax, ay), (bx, by) = corners[0], corners[1]
    points += [corners[0], (ax + 0.12 * (bx - ax), ay + 0.12 * (by - ay))]
    draw.line(points, fill=255, width=width, joint="curve")


def photo_like(
    digit28: np.ndarray | None,
    rng: np.random.Generator,
    *,
    size: int = 240,
    effects: tuple[str, ...] | None = None,
    strength: float = 1.0,
) -> np.ndarray:
    """A phone-photo-like uint8 image (HxW, or HxWx3 with "colour") of `digit28` written in dark ink on paper.

    `digit28` is a 28x28 MNIST digit (white on black, 0..255), or None for an empty sheet (a frame, ruled lines
    or lighting alone). The longer side is `size` px, the shorter 3/4 of it. `effects` (default: a random subset,
    see `random_effects`) picks from `EFFECTS`; `strength` > 1 makes each one stronger (2 is about twice as
    strong: darker shadows and gradients, more texture, noise and blur, larger angles, tighter frames, darker and
    thicker ruled lines, a deeper sheet's edge, a stronger tint).
    """
    if effects is None:
        effects = random_effects(rng)
    unknown = set(effects) - set(EFFECTS)
    if unknown:
        raise ValueError(f"unknown effects {sorted(unknown)}; choose from {EFFECTS}")
    s = strength
    h, w = (size, size * 3 // 4) if rng.random() < 0.5 else (size * 3 // 4, size)
    pad = size // 4  # the scene is drawn larger than the photo, so that turning it leaves no empty corners
    sh, sw = h + 2 * pad, w + 2 * pad

    # The sheet, in its own coordinates: the digit (and the frame and ruled lines) as ink coverage.
    field = int(rng.uniform(0.42, 0.55) * min(h, w))  # the 28x28 field's side; the digit is about 20/28 of it
    cy = pad + h / 2 + rng.uniform(-0.06, 0.06) * h
    cx = pad + w / 2 + rng.uniform(-0.06, 0.06) * w
    top, left = int(cy - field / 2), int(cx - field / 2)
    ink = np.zeros((sh, sw), np.float32)
    if digit28 is not None:
        ink[top : top + field, left : left + field] = _digit_alpha(digit28, field)
    rows = np.flatnonzero(ink.max(axis=1) > 0.5)
    cols = np.flatnonzero(ink.max(axis=0) > 0.5)
    if len(rows):
        iy0, iy1, ix0, ix1 = rows[0], rows[-1], cols[0], cols[-1]
    else:  # an empty sheet: the frame and the line under "the digit" go where a digit would be
        iy0, iy1 = top + field * 0.15, top + field * 0.85
        ix0, ix1 = left + field * 0.3, left + field * 0.7
    pen = max(2, round(field * 2.6 / 28 * rng.uniform(0.6, 1.0)))
    if "frame" in effects:
        frame = Image.new("L", (sw, sh), 0)
        m = field * rng.uniform(0.1, 0.16) / s  # the room left around the digit: stronger is tighter
        box = (ix0 - m * rng.uniform(1, 1.6), iy0 - m, ix1 + m * rng.uniform(1, 1.6), iy1 + m)
        _wobbly_box(ImageDraw.Draw(frame), box, pen, rng)
        ink = np.maximum(ink, np.asarray(frame, np.float32) / 255.0)
    lines = np.zeros((sh, sw), np.float32)
    if "lines" in effects:
        spacing = rng.uniform(0.18, 0.26) * h
        gap = rng.uniform(-0.02, 0.08) * field  # under the digit; now and then (about 1 in 5) touching it
        first = iy1 + gap
        img = Image.new("L", (sw, sh), 0)
        draw = ImageDraw.Draw(img)
        thick = round(int(rng.integers(1, 3)) * s)
        for k in range(-8, 9):
            y = first + k * spacing
            if 0 <= y < sh:
                draw.line([(0, y), (sw, y)], fill=255, width=thick)
        lines = np.asarray(img, np.float32) / 255.0 * min(0.9, rng.uniform(0.35, 0.6) * s)  # paler than the pen

    # The photo: the sheet turned and seen at a slant (output pixel -> sheet point).
    angle = math.radians(rng.uniform(-8, 8) * s) if "rotation" in effects else 0.0
    corners = np.array([(0, 0), (w, 0), (w, h), (0, h)], float)
    c, sn = math.cos(angle), math.sin(angle)
    centred = corners - (w / 2, h / 2)
    src = centred @ np.array([[c, sn], [-sn, c]]) + (sw / 2, sh / 2)
    if "perspective" in effects:
        src += rng.uniform(-0.05, 0.05, (4, 2)) * s * size
    coeffs = _perspective_coeffs(corners, src)

    def warp(a: np.ndarray) -> np.ndarray:
        out = Image.fromarray(a).transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
        return np.asarray(out, np.float32)

    ink, lines = warp(ink), warp(lines)

    colour = "colour" in effects
    tint = 1 - s * (1 - np.array([1.0, rng.uniform(0.94, 1.0), rng.uniform(0.82, 0.97)]))
    paper = rng.uniform(0.8, 0.95) * (np.clip(tint, 0.3, 1) if colour else 1)
    pen_rgb = rng.uniform(0.08, 0.25) * (np.array([0.6, 0.7, 1.6]) if colour and rng.random() < 0.6 else 1)
    line_rgb = paper * np.array([0.55, 0.7, 1.0]) if colour else paper * 0.6
    paper, pen_rgb, line_rgb = (np.broadcast_to(np.asarray(v, np.float32), (3,)) for v in (paper, pen_rgb, line_rgb))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    light = np.ones((h, w), np.float32)
    if "texture" in effects:
        blotches = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), rng.uniform(2, 6))
        blotches /= blotches.std() + 1e-6
        grain = rng.standard_normal((h, w)).astype(np.float32)
        light *= 1 + 0.025 * s * blotches + 0.012 * s * grain
    if "gradient" in effects:
        theta = rng.uniform(0, 2 * math.pi)
        ramp = (x - w / 2) * math.cos(theta) + (y - h / 2) * math.sin(theta)
        ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
        low = max(0.2, 1 - rng.uniform(0.2, 0.45) * s)
        light *= 1 - (1 - low) * ramp
    if "shadow" in effects:
        theta = rng.uniform(0, 2 * math.pi)
        d = (x - w / 2) * math.cos(theta) + (y - h / 2) * math.sin(theta)
        edge_at = rng.uniform(-0.1, 0.3) * min(h, w)  # the shadow covers what lies beyond this from the centre
        softness = rng.uniform(0.02, 0.06) * size
        inside = 1 / (1 + np.exp(-(d - edge_at) / softness))
        light *= 1 - max(0.1, rng.uniform(0.25, 0.45) * s) * inside

    rgb = paper * (1 - lines[..., None]) + line_rgb * lines[..., None]
    rgb = rgb * (1 - ink[..., None]) + pen_rgb * ink[..., None]
    if "edge" in effects:
        table = rng.uniform(0.15, 0.45) * (np.array([1.0, 0.8, 0.6]) if colour else 1)
        sides = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
        for side in sides:
            depth = min(0.14, rng.uniform(0.04, 0.1) * s) * (h if side < 2 else w)
            tilt = math.tan(math.radians(rng.uniform(-4, 4)))
            if side == 0:
                beyond = y < depth + tilt * (x - w / 2)
            elif side == 1:
                beyond = y > h - depth + tilt * (x - w / 2)
            elif side == 2:
                beyond = x < depth + tilt * (y - h / 2)
            else:
                beyond = x > w - depth + tilt * (y - h / 2)
            grain = 1 + 0.05 * rng.standard_normal((h, w)).astype(np.float32)
            rgb = np.where(beyond[..., None], np.asarray(table, np.float32) * grain[..., None], rgb)
    rgb = rgb * light[..., None]
    if "blur" in effects:
        sigma = rng.uniform(0.8, 1.6) * s * size / 240
        rgb = ndimage.gaussian_filter(rgb, (sigma, sigma, 0))
    if "noise" in effects:
        rgb = rgb + rng.normal(0, rng.uniform(0.02, 0.04) * s, (h, w, 1 if not colour else 3))
    out = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    return out if colour else np.ascontiguousarray(out[..., 0])


def written_number(images, labels, digits: str, *, size=(400, 200), height: int = 80, gap: float = 0.3, k: int = 0):
    """A number written dark on white paper (uint8 grey, `size` = (width, height)): for each character of `digits`,
    the k-th image of that class in `images` (MNIST's training split, as the callers pass it) cropped to its ink,
    `height` px tall, `gap` heights apart, the row centred; also each digit's box (x0, y0, x1, y1) as pasted."""
    images, labels = np.asarray(images), np.asarray(labels)
    inks = []
    for c in digits:
        a = images[np.flatnonzero(labels == int(c))[k]]
        rows, cols = np.flatnonzero(a.max(1)), np.flatnonzero(a.max(0))
        ink = Image.fromarray(a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
        width = max(1, round(ink.width * height / ink.height))
        inks.append(np.asarray(ink.resize((width, height), Image.Resampling.BILINEAR)))
    paper = np.full((size[1], size[0]), 255, np.uint8)
    x, y = (
        (size[0] - sum(i.shape[1] for i in inks) - round(gap * height) * (len(inks) - 1)) // 2,
        (size[1] - height) // 2,
    )
    boxes = []
    for ink in inks:
        paper[y : y + height, x : x + ink.shape[1]] = np.minimum(paper[y : y + height, x : x + ink.shape[1]], 255 - ink)
        boxes.append((x, y, x + ink.shape[1], y + height))
        x += ink.shape[1] + round(gap * height)
    return paper, boxes
