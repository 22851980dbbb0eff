"""Hostile pictures for the reading's work bound (issue 28, row 1): many equal ink parts, which no digit has.

Shared by tests/images/test_ink.py and benchmarks/refusals.py (which puts this folder on its path)."""

from __future__ import annotations

import numpy as np

SIDE = 512


def dots(share: float, step: int = 3, side: int = SIDE) -> np.ndarray:
    """White `side` x `side` with 1-px black dots every `step` px over its central `share` (of each side)."""
    a = np.full((side, side), 255, np.uint8)
    lo = round(side * (1 - share) / 2)
    hi = side - lo
    a[lo:hi:step, lo:hi:step] = 0
    return a


def random_dots(share: float = 0.02, side: int = SIDE, seed: int = 0) -> np.ndarray:
    """White with `share` of its pixels black, at random."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random((side, side)) < share, 0, 255).astype(np.uint8)


def checkerboard(cell: int = 1, side: int = SIDE) -> np.ndarray:
    """Black and white squares of `cell` px."""
    y, x = np.indices((side, side)) // cell
    return np.where((y + x) % 2 == 0, 0, 255).astype(np.uint8)


def salt(share: float = 0.05, side: int = SIDE, seed: int = 0) -> np.ndarray:
    """Black with `share` of its pixels white, at random (salt noise)."""
    return 255 - random_dots(share, side, seed)


def squares(step: int = 4, side: int = SIDE) -> np.ndarray:
    """White with nested 1-px black squares every `step` px: many frames, each enclosing all the smaller ones."""
    y, x = np.indices((side, side))
    ring = np.minimum(np.minimum(y, x), np.minimum(side - 1 - y, side - 1 - x))
    return np.where(ring % step == step - 1, 0, 255).astype(np.uint8)


def png(a: np.ndarray) -> bytes:
    """The picture as PNG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a, mode="L").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


PICTURES = {  # name -> picture
    "1-px dots every 3 px, central 70%": lambda: dots(0.7),
    "1-px dots every 3 px, central 80%": lambda: dots(0.8),
    "2% random dots": lambda: random_dots(0.02),
    "1-px checkerboard": lambda: checkerboard(1),
    "5% salt noise on black": lambda: salt(0.05),
    "nested squares every 4 px": lambda: squares(4),
}
