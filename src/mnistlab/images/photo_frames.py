"""The parts of a photo's ink (connected components) and the furniture among them: ruled lines, and frames (boxes
drawn around the digit, closed or open, peeled off where the digit touches them), for `photo_path`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from mnistlab.images.field import MAX_PARTS

LINE_ELONGATION = 10.0  # a part this many times longer than wide (by its second moments) ...
LINE_ANGLE = 30.0  # ... lying within this many degrees of horizontal is a ruled line (a "1" stands upright)
LINE_CUT = 1.5  # a ruled line crossing the digit is cut out of it: its pixels in vertical runs up to this many times
LINE_RUN = 0.3  # as thick as the lines standing alone, on a band this fraction of the image's width long ...
LINE_TILT = 10.0  # ... and tilted by up to this many degrees
FRAME_HOLE = 0.5  # a closed ring whose hole is at least this fraction of its filled area ...
FRAME_RECTANGLE = 0.85  # ... and that fills this much of its smallest bounding rectangle is a box (an oval "0" fills
# about pi/4 = 0.79 of it; a hand-drawn box, turned and seen at a slant, 0.9 or more)
FRAME_PEEL_HOLE = 0.2  # a rectangular ring whose hole is this much of it, with a digit touching it, is peeled: ...
FRAME_PEEL = 1.5  # ... its pixels within this many of its line widths (+1 px) of its outside are the box, the rest the
FRAME_REACH = 0.4  # digit, in pieces reaching this fraction of the way to the middle (not a thick bit of box)
FRAME_ENCLOSED = 0.1  # a ring is a frame too when its hole holds another part at least this fraction of its area
FRAME_BAND = 0.2  # a part lying within this fraction of a frame's shorter side from one of its sides is a piece of it
FRAME_FILL = 0.2  # and so is a part covering under this fraction of its bounding box that holds another part's box
# with room around it (a box left open)


@dataclass
class Part:
    """One connected component of the photo's ink."""

    label: int
    area: int
    box: tuple[slice, slice]
    kind: str = ""  # why it is not the digit: "border", "line", "frame"; "" for a candidate

    @property
    def side(self) -> int:
        return max(s.stop - s.start for s in self.box)


def elongation(mine: np.ndarray) -> tuple[float, float]:
    """(length over width, the long axis' angle from horizontal in degrees) of a part, from its second moments."""
    ys, xs = np.nonzero(mine)
    if len(ys) < 2:
        return 1.0, 0.0
    ys, xs = ys - ys.mean(), xs - xs.mean()
    vxx, vyy, vxy = float((xs * xs).mean()), float((ys * ys).mean()), float((xs * ys).mean())
    half, root = (vxx + vyy) / 2, math.hypot((vxx - vyy) / 2, vxy)
    ratio = math.sqrt((half + root) / max(half - root, 1 / 12))  # a 1-px-wide line's variance across it is 1/12
    angle = math.degrees(0.5 * math.atan2(2 * vxy, vxx - vyy))
    return ratio, angle


def rectangularity(filled: np.ndarray) -> float:
    """The filled shape's area over that of its smallest bounding rectangle (turned in 3-degree steps). The turned
    extents are those of its outline's pixels: work along its perimeter, not its area, for each turn."""
    area = np.count_nonzero(filled)
    ys, xs = np.nonzero(filled & ~ndimage.binary_erosion(filled))
    best = math.inf
    for deg in range(-45, 45, 3):
        t = math.radians(deg)
        u, v = xs * math.cos(t) + ys * math.sin(t), ys * math.cos(t) - xs * math.sin(t)
        best = min(best, float((np.ptp(u) + 1) * (np.ptp(v) + 1)))
    return area / best


def inside(inner: tuple[slice, slice], outer: tuple[slice, slice], room: int = 0) -> bool:
    return all(o.start + room <= i.start and i.stop <= o.stop - room for i, o in zip(inner, outer))


def ring_width(mine: np.ndarray) -> float:
    """A ring's line width: the median length of the first run of ink met going in from each side, row by row and
    column by column (where the digit touches the ring a run is longer, but those are few)."""
    runs = []
    for a in (mine, mine[:, ::-1], mine.T, mine.T[:, ::-1]):
        rows = a[a.any(axis=1)]
        start = rows.argmax(axis=1)
        after = ~rows & (np.arange(rows.shape[1]) > start[:, None])
        end = np.where(after.any(axis=1), after.argmax(axis=1), rows.shape[1])
        runs.append(end - start)
    return float(np.median(np.concatenate(runs)))


def peel(part: Part, labels: np.ndarray, inward: np.ndarray, speck: float) -> list[Part]:
    """Split a rectangular ring that the digit touches: its pixels deeper than FRAME_PEEL line widths from the
    outside, in pieces reaching FRAME_REACH of the way to the middle, get new labels (returned as parts, those at
    least `speck` px across); the rest stays the frame. `inward` is the distance to the outside over `part.box`."""
    region = labels[part.box]
    mine = region == part.label
    deep = mine & (inward > FRAME_PEEL * ring_width(mine) + 1)
    pieces, n = ndimage.label(deep, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    reach = ndimage.maximum(inward, pieces, index=np.arange(1, n + 1))
    keep = np.concatenate([[False], reach >= FRAME_REACH * float(inward.max())])
    top = int(labels.max())
    moved = keep[pieces]
    region[moved] = pieces[moved] + top
    found = []
    for j, box in enumerate(ndimage.find_objects(pieces), start=1):
        rows, cols = (slice(o.start + b.start, o.start + b.stop) for o, b in zip(part.box, box))
        whole = (rows, cols)
        if keep[j] and max(b.stop - b.start for b in box) >= speck:
            found.append(Part(top + j, int(np.count_nonzero(pieces[box] == j)), whole))
    return found


def _largest(parts: list[Part]) -> list[Part]:
    """At most MAX_PARTS of `parts`, the largest, in the order they came."""
    if len(parts) <= MAX_PARTS:
        return parts
    top = {id(q) for q in sorted(parts, key=lambda q: q.area, reverse=True)[:MAX_PARTS]}
    return [q for q in parts if id(q) in top]


def find_frames(parts: list[Part], labels: np.ndarray, speck: float) -> list[Part]:
    """Mark the frames among `parts` (candidates so far): a box drawn around the digit, closed (a ring shaped like a
    rectangle, or a ring whose hole holds other ink) or open (a sparse part whose bounding box holds another part
    with room around it). A rectangular ring that the digit touches is peeled: its inner pixels become new parts,
    returned (the MAX_PARTS largest). The parts are compared pairwise: `photo_path` passes at most MAX_PARTS."""
    found: list[Part] = []
    for p in list(parts):
        mine = labels[p.box] == p.label
        held = [o for o in parts if o is not p and not o.kind and inside(o.box, p.box, 1)]
        room = max(2, p.side // 20)
        if p.area < FRAME_FILL * mine.size and any(inside(o.box, p.box, room) for o in held):
            p.kind = "frame"
            continue
        if p.area > (1 - FRAME_PEEL_HOLE) * mine.size:  # too full to be a ring around anything
            continue
        filled = ndimage.binary_fill_holes(mine)
        area = int(np.count_nonzero(filled))
        if area - p.area >= FRAME_PEEL_HOLE * area and rectangularity(filled) >= FRAME_RECTANGLE:
            inner = peel(p, labels, ndimage.distance_transform_edt(filled), speck)
            if inner:
                p.kind = "frame"
                found += inner
                continue
            if area - p.area >= FRAME_HOLE * area:
                p.kind = "frame"
                continue
        hole = filled & ~mine
        for o in held:
            theirs = labels[o.box] == o.label
            y0, x0 = o.box[0].start - p.box[0].start, o.box[1].start - p.box[1].start
            within = hole[y0 : y0 + theirs.shape[0], x0 : x0 + theirs.shape[1]]
            if o.area >= FRAME_ENCLOSED * p.area and np.count_nonzero(within & theirs) >= 0.9 * o.area:
                p.kind = "frame"
                break
    found = _largest(found)  # the pieces peeled off
    for q in parts + found:  # pieces of a box broken where its pen was faint: each hugs one side of the rest
        for f in (f for f in parts if f.kind == "frame" and not q.kind):
            band = FRAME_BAND * min(s.stop - s.start for s in f.box)
            (y0, y1), (x0, x1) = ((s.start, s.stop) for s in f.box)
            (qy0, qy1), (qx0, qx1) = ((s.start, s.stop) for s in q.box)
            within = y0 - band <= qy0 and qy1 <= y1 + band and x0 - band <= qx0 and qx1 <= x1 + band
            if within and (qy0 >= y1 - band or qy1 <= y0 + band or qx0 >= x1 - band or qx1 <= x0 + band):
                q.kind = "frame"
    return found


def line_pixels(ink: np.ndarray, width: float) -> np.ndarray:
    """The pixels of ruled lines in `ink`: thin (in vertical runs of at most `width` px: a pen's stroke crossing a
    line is thicker, and keeps its pixels) and on a long, nearly level band of such pixels (LINE_RUN of the image's
    width, tilted by up to LINE_TILT degrees)."""
    thin = ink & ~ndimage.binary_opening(ink, structure=np.ones((math.ceil(width) + 1, 1), bool))
    run = 2 * max(1, round(LINE_RUN * ink.shape[1] / 2)) + 1
    drift = math.ceil(math.tan(math.radians(LINE_TILT)) * run / 2)
    band = ndimage.maximum_filter1d(thin.view(np.uint8), 2 * drift + 1, axis=0)
    whole = ndimage.uniform_filter1d(band.astype(np.float32), run, axis=1) > 1 - 0.5 / run  # windows all in the band
    return thin & (ndimage.maximum_filter1d(whole.view(np.uint8), run, axis=1) > 0)
