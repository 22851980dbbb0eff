"""A picture as the digit finder sees it, and the finder's outputs as boxes: NumPy only (no torch imported here).

Any picture is made grey, scaled so that its longer side is INPUT px and put at the top left of an INPUT x INPUT
field (`prepare`); the network (`finder.Finder`, or its ONNX copy) sees two channels: the grey level less the
picture's median (ink is then signed: dark ink on paper below zero, chalk on a board above, both polarities alike)
and a mask of where the picture is (1) or padding (0). `decode` keeps the peaks of its heatmap (a 3x3 maximum), the
best MAX_FOUND of them: the work is fixed by the input size, whatever the picture holds. A large picture also gets a
bounded second look in tiles (`views`, their finds joined by `merge`): a small digit in it. Every picture also gets a
zoomed-out look (`zoomed`): itself on a sheet of its own paper ZOOM times its size, so that one digit filling it,
or cut by its edge, is seen at a size the finder knows; of it `merge` keeps the LARGE digits only. Two finder
inputs per picture, six at most, whatever it holds. The scaling is the one the bundled finder was trained with
(torch's `interpolate`, "area" when shrinking, "bilinear" when enlarging), done here in NumPy; `iou` and `match`
pair found boxes with true ones (training, tests, benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mnistlab.pixels import is_tensor

INPUT = 256  # the finder's input side: a picture's longer side is scaled to it (a digit under ~10 px is then lost)
STRIDE = 4  # output cells per input px (a 64 x 64 grid at INPUT 256): two cells across the narrowest digit kept
MAX_FOUND = 64  # the most peaks decoded per picture: more digits than any page of numbers holds at INPUT px
# The least heatmap peak called a digit: the best F1 (P 0.81, R 0.86) of 0.30-0.60 on the generated validation
# scenes (scenes.WIDE, seed 1001; never MNIST's test split)
DETECT = 0.45
GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as Pillow's convert("L")
# A picture whose longer side is at least LOOK px gets a second look (`views`): the finder also sees it as up to
# 2 x 2 overlapping square tiles of TILE of that side (each then 1 / TILE times larger than in the whole view),
# in one batch with it and the zoomed view: at most six inputs per picture, whatever it holds. A tile keeps only
# the digits under SMALL input px tall in the whole view (larger ones the whole view finds: of the
# 5%-of-a-large-photo digits, 13 px there, it found 12%) and not touching the tile's inner edges (the tiles overlap
# by more than SMALL).
LOOK = 2 * INPUT
TILE = 0.6
SMALL = 24
# Every picture gets a zoomed-out look (`zoomed`), one finder input more, in the same batch: the picture 1 / ZOOM
# as large, centred on a sheet ZOOM times its size of its own paper (its median grey, 0 in the input), the mask 1
# over the picture only. A digit filling the picture or cut by its edge (far larger than most in the finder's
# training) is then 1 / ZOOM as tall, with paper around it. Of it `merge` keeps only the digits at least LARGE input
# px tall in the whole view (smaller ones the whole view finds). Chosen by `python scripts/zoom_choice.py -n 300`
# (2026-12-07, benchmarks/results/zoom-choice-2026-12-07.json) on generated scenes of MNIST's training split and
# DejaVu fonts only (seed 777000) of ZOOM 1.5-3, LARGE 32-96 and the mask over the picture or the whole sheet: the
# finder's recall on one large digit .657 -> .785 (MNIST), .658 -> .795 (with DejaVu), the precision there, on
# numbers of 2-6 digits and the not-digit refusals within a point; ZOOM 2.5-3 and LARGE 32-48 cost precision or
# refusals, and the mask over the sheet found as many (.789, .776).
ZOOM = 2.0
LARGE = 64


@dataclass(frozen=True)
class Framed:
    """A picture (or a tile of one, at `origin`) as the finder sees it: the input [2, INPUT, INPUT] float32 and how
    to map boxes back (x / scale + origin)."""

    input: np.ndarray
    scale: float  # input px per picture px
    origin: tuple[float, float] = (0, 0)  # the input's top left (x, y) in the picture's px (a tile's; < 0 zoomed)
    inner: tuple[bool, bool, bool, bool] = (False,) * 4  # which of its sides (x0, y0, x1, y1) cut the picture
    zoomed: bool = False  # the zoomed-out look (`zoomed`)


def grey(image) -> np.ndarray:
    """A picture (HxW or HxWxC array, uint8 or floats in [0, 1]; a CHW tensor) as float32 grey in [0, 1]."""
    tensor = is_tensor(image)
    a = image.detach().cpu().numpy() if tensor else np.asarray(image)
    if tensor and a.ndim == 3:
        a = a.transpose(1, 2, 0)
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    if a.ndim == 3:
        a = a[..., :3] @ np.array(GREY[: a.shape[2]], np.float32) / sum(GREY[: a.shape[2]])
    return a


def _area(a: np.ndarray, n: int) -> np.ndarray:
    """`a` shrunk to `n` rows as torch's adaptive average pooling ("area") does: row i is the mean of rows
    floor(i m / n) to ceil((i + 1) m / n) - 1, windows that overlap by at most one row."""
    m = len(a)
    i = np.arange(n)
    starts, ends = (i * m) // n, -((-(i + 1) * m) // n)
    sums = np.add.reduceat(a, starts, axis=0)  # rows starts[i] .. starts[i + 1] - 1 (the last: .. m - 1)
    extra = np.flatnonzero(ends[:-1] > starts[1:])  # windows that also hold the next one's first row
    sums[extra] += a[starts[extra + 1]]
    return sums / (ends - starts)[:, None].astype(a.dtype)


def _bilinear(m: int, n: int) -> np.ndarray:
    """The [n, m] matrix scaling m samples to n as torch's bilinear interpolation (align_corners False) does."""
    src = np.maximum((np.arange(n) + 0.5) * (m / n) - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(int), m - 1)
    hi = np.minimum(lo + 1, m - 1)
    w = (src - lo).astype(np.float32)
    out = np.zeros((n, m), np.float32)
    np.add.at(out, (np.arange(n), lo), 1 - w)
    np.add.at(out, (np.arange(n), hi), w)
    return out


def prepare(g: np.ndarray, size: int = INPUT) -> Framed:
    """Grey [H, W] in [0, 1] -> the finder's input: scaled (area-averaged when shrinking, bilinear when enlarging)
    so the longer side is `size`, at the top left of a `size` x `size` field; channels: grey less its median (the
    lower middle value, as torch's), and the picture's mask."""
    g = np.asarray(g, np.float32)
    h, w = g.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if scale < 1:
        small = _area(_area(g, nh).T, nw).T
    else:
        small = _bilinear(h, nh) @ g @ _bilinear(w, nw).T
    flat = small.ravel()
    median = np.partition(flat, (flat.size - 1) // 2)[(flat.size - 1) // 2]
    x = np.zeros((2, size, size), np.float32)
    x[0, :nh, :nw] = small - median
    x[1, :nh, :nw] = 1.0
    return Framed(x, scale)


def zoomed(g: np.ndarray, zoom: float = ZOOM) -> Framed:
    """Grey picture `g` zoomed out: `g` prepared at INPUT / `zoom` px (the same work as the whole view), centred on
    a sheet `zoom` times its size (each side; the sheet at the top left of the input, as any picture) whose rest is
    its paper (its median grey: 0 once the median is taken off), the mask 1 over `g` only."""
    inner = prepare(g, max(1, round(INPUT / zoom)))
    h, w = g.shape
    nh, nw = max(1, round(h * inner.scale)), max(1, round(w * inner.scale))
    sh, sw = min(INPUT, round(nh * zoom)), min(INPUT, round(nw * zoom))  # the sheet, at the top left as any picture
    y, x = (sh - nh) // 2, (sw - nw) // 2
    out = np.zeros((2, INPUT, INPUT), np.float32)
    out[0, y : y + nh, x : x + nw] = inner.input[0, :nh, :nw]
    out[1, y : y + nh, x : x + nw] = 1.0
    return Framed(out, inner.scale, (-x / inner.scale, -y / inner.scale), zoomed=True)


def views(g: np.ndarray, zoom: float = ZOOM) -> list[Framed]:
    """Grey picture `g` as the finder sees it: whole, zoomed out `zoom` times (`zoomed`), and when its longer side
    is at least LOOK px, also as up to 2 x 2 overlapping tiles of TILE of that side (none across a side no longer
    than a tile)."""
    out = [prepare(g), zoomed(g, zoom)]
    h, w = g.shape
    if max(h, w) < LOOK:
        return out
    t = int(np.ceil(TILE * max(h, w)))
    starts = [[0] if side <= t else [0, side - t] for side in (h, w)]
    for y in starts[0]:
        for x in starts[1]:
            tile = prepare(g[y : y + t, x : x + t])
            inner = (x > 0, y > 0, x + t < w, y + t < h)
            out.append(Framed(tile.input, tile.scale, (x, y), inner))
    return out


def merge(
    found: list[Framed], boxes: np.ndarray, scores: np.ndarray, large: float = LARGE
) -> tuple[np.ndarray, np.ndarray]:
    """The finds of `views` (decode's boxes [V, k, 4] and scores [V, k]) with scores >= DETECT as (boxes [N, 4] in
    the picture's px, scores [N]), the best MAX_FOUND, highest first: the whole view's, the zoomed view's digits at
    least `large` px tall in the whole view, and a tile's digits under SMALL px in the whole view that keep STRIDE px
    off the tile's inner edges."""
    whole = found[0].scale
    out_b, out_s = [], []
    for f, b, s in zip(found, boxes, scores):
        keep = s >= DETECT
        tall = (b[:, 3] - b[:, 1]) * whole / f.scale
        if f.zoomed:
            keep &= tall >= large
        elif f is not found[0]:
            keep &= tall < SMALL
            lo, hi = b[:, :2] > STRIDE, b[:, 2:] < INPUT - STRIDE  # off each side: x0, y0 and x1, y1
            for side, ok in zip(f.inner, (lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1])):
                keep &= ok | (not side)
        out_b.append(b[keep] / f.scale + np.array(f.origin * 2, np.float32))
        out_s.append(s[keep])
    b, s = np.concatenate(out_b).astype(np.float32), np.concatenate(out_s)
    order = np.argsort(-s, kind="stable")[:MAX_FOUND]
    return b[order], s[order]


def decode(heat: np.ndarray, size: np.ndarray, offset: np.ndarray, k: int = MAX_FOUND):
    """The network's outputs for a batch (heat logits [B, 1, g, g], log size and offset [B, 2, g, g]) -> per picture
    (boxes [B, k, 4] x0 y0 x1 y1 in input px, scores [B, k]): the top `k` local maxima of the heatmap (3x3), highest
    first, whatever their score (filter by DETECT after)."""
    p = 1 / (1 + np.exp(-np.asarray(heat, np.float32)))
    peaks = p * (ndimage.maximum_filter(p, size=(1, 1, 3, 3), mode="nearest") == p)
    b, _, _, gw = p.shape
    flat = peaks.reshape(b, -1)
    idx = np.argsort(-flat, axis=1, kind="stable")[:, : min(k, flat.shape[1])]
    scores = np.take_along_axis(flat, idx, 1)
    ys, xs = (idx // gw).astype(np.float32), (idx % gw).astype(np.float32)
    take = lambda t: np.take_along_axis(np.asarray(t, np.float32).reshape(b, 2, -1), idx[:, None], 2)  # noqa: E731
    off, wh = take(offset), np.exp(take(size))
    cx, cy = (xs + off[:, 0]) * STRIDE, (ys + off[:, 1]) * STRIDE
    boxes = np.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], -1)
    return boxes, scores


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes a [N, 4] and b [M, 4]: [N, M]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def match(found: np.ndarray, truth: np.ndarray, least: float = 0.5) -> list[tuple[int, int]]:
    """Pairs (found i, true j), greedily by IoU (each box in one pair at most), with IoU >= `least`."""
    if not len(found) or not len(truth):
        return []
    m = iou(found, truth)
    pairs: list[tuple[int, int]] = []
    for flat in np.argsort(-m, axis=None):
        i, j = divmod(int(flat), m.shape[1])
        if m[i, j] < least:
            break
        if all(i != p for p, _ in pairs) and all(j != q for _, q in pairs):
            pairs.append((i, j))
    return pairs
