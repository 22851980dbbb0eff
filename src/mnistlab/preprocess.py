"""Turn any user image (file, bytes, PIL image or array) into candidate 28x28 MNIST-style digits for the model to check.

Real images hold more than a digit: the sheet's edge, ruled lines or a grid, a margin line, shadows, specks, a
second digit. Instead of deciding by hand-set rules which ink is the digit, this module proposes a few readings of
the image (`candidates`), and the classifier scores them all in one batch and keeps the one with the best digit
score (`Classifier.predict`). The pipeline:

1. grayscale (transparency composited onto a background that contrasts with the ink; `images.py`);
2. a working copy of at most `WORK_SIDE` px, lightly smoothed when it was reduced (sensor noise, JPEG blocks);
3. polarity: the ink is the side that stands out from the median (the paper); where neither side clearly does,
   both polarities are proposed;
4. the paper's brightness: a grey opening of the ink-bright image with a window of a third of the shorter side
   (it removes every stroke thinner than that and keeps gradients, shadows and the light falling off), subtracted;
5. a local threshold with hysteresis (relative to the typical ink and to the noise), then connected components
   (specks dropped, and page furniture: frames, the sheet's edge, ruled-only pages, `furniture.py`);
6. candidates, each made MNIST-style by `field.to_field` (the ink's box scaled to 20 px, its centre of mass at
   (14, 14)): all the ink; the parts that do not touch the border; the ink without lines crossing the image (ruled
   or squared paper, a margin line); the parts inside a frame; the largest group of nearby parts; the other
   polarity; for a narrow crop where nothing stands out locally, one global (Otsu) threshold. Before them all comes
   the rule-based photo reading of `photo_path.py` where it reads the image (it is the most reliable on photos of a
   page; it refuses tight crops and soft scans, which the others read).

A 28x28 image that is already white on black (an MNIST digit) is used exactly as given: one candidate.
Images with no ink at all raise `NoInkError`; ink no digit makes (a strip of an image, a speck) `NoDigitError`.
Whether the ink is a digit is the model's call (`Prediction.is_digit`). Every step works in memory proportional to
the working copy's pixels; `open_image` refuses oversized images before decoding them.

scipy.ndimage does the filtering, labelling and morphology, scikit-image the hysteresis and Otsu thresholds.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage.filters import apply_hysteresis_threshold, threshold_otsu

from mnistlab import furniture, photo_path
from mnistlab.datasets import MEAN, STD
from mnistlab.errors import NoDigitError, NoInkError, UserError
from mnistlab.field import FIELD, MIN_SIDE, bbox, check_shape, to_field
from mnistlab.images import MAX_PIXELS, array_to_gray, open_image, to_grayscale

__all__ = [
    "MAX_PIXELS",
    "Candidate",
    "NoDigitError",
    "NoInkError",
    "candidates",
    "mnistify",
    "open_image",
    "prepare",
    "preprocess",
    "to_grayscale",
]

MNIST_BACKGROUND = 0.1  # a 28x28 image whose border is at most this dark, with light ink, is an MNIST digit as given
WORK_SIDE = 512  # the working copy's longer side at most (a digit 5% of a photo's side is still 25 px there)
SMOOTH_SIDE = 64  # reduced working copies at least this large are smoothed (Gaussian, sigma 1 px)
POLARITY = 1.5  # one side must stand out this many times more than the other to decide the polarity alone
PAPER = 1 / 3  # the paper's window: strokes thinner than this fraction of the shorter side are ink, wider is paper
MIN_CONTRAST = 0.08  # the typical ink must stand out from the paper by this much (0..1 scale) ...
NOISE = 5.0  # ... and by this many robust standard deviations of the noise
LOW, HIGH = 0.25, 0.5  # hysteresis: ink is above LOW x the typical ink, connected to pixels above HIGH x
SPECK = 0.02  # parts under this fraction of the largest part's area are specks
LINE = 0.6  # a straight run of ink this fraction of the image's side long is a line (ruled, squared, margin, frame)
SPAN = 0.85  # ... when the runs, joined, cross this fraction of it (ruled paper does; a stroke drawn on a pad not)
NEAR = 0.3  # parts within this fraction of the main part's longer side belong with it (a 5's bar, a broken stroke)
GROW = 1  # a candidate's ink takes in this many px around its parts (their soft edges)
MIN_INK = 3  # ink whose box is under this many px on its longer side (in the working copy) is a speck


@dataclass
class Candidate:
    """One reading of an image: which ink it keeps (`kind`) and the 28x28 image, floats in [0, 1], white on black."""

    kind: str  # "as given", "all ink", "inside the border", "without lines", "main group", "other polarity"
    seen: np.ndarray


# --------------------------------------------------------------------------------------------------------------
# Making one candidate MNIST-style


def _check_shape(ink: tuple[int, int], image: tuple[int, int], name: str) -> None:
    check_shape(ink, image, name, min_ink=MIN_INK)


def _field(crop: np.ndarray) -> np.ndarray:
    """Cropped ink in [0, 1] -> the 28x28 MNIST-style field (`field.to_field`); an empty field if none lands."""
    out = to_field(crop)
    return out if out is not None else np.zeros((FIELD, FIELD), np.float32)


# --------------------------------------------------------------------------------------------------------------
# Finding the ink


def _work_copy(g: np.ndarray) -> np.ndarray:
    """A copy block-averaged to at most WORK_SIDE px on its longer side, smoothed when it is large."""
    f = math.ceil(max(g.shape) / WORK_SIDE)
    if f > 1:
        rows, cols = np.arange(0, g.shape[0], f), np.arange(0, g.shape[1], f)
        s = np.add.reduceat(np.add.reduceat(g, rows, axis=0), cols, axis=1)
        g = (s / np.outer(np.diff(rows, append=g.shape[0]), np.diff(cols, append=g.shape[1]))).astype(np.float32)
    if f > 1 and min(g.shape) >= SMOOTH_SIDE:  # a large photo: its grain and JPEG blocks
        g = ndimage.gaussian_filter(g, 1.0, mode="nearest")
    return g


def _polarities(s: np.ndarray) -> list[bool]:
    """[light ink?] for the side that stands out from the median; both sides when neither clearly does."""
    m = float(np.median(s))
    up, down = float(np.maximum(s - m, 0).mean()), float(np.maximum(m - s, 0).mean())
    if up > POLARITY * down:
        return [True]
    if down > POLARITY * up:
        return [False]
    return [up >= down, up < down]


def _ink(v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(soft ink in [0, 1], its mask) of an ink-bright image: the paper's brightness removed, then a threshold
    relative to the typical ink and the noise, with hysteresis. Raises NoInkError when nothing stands out."""
    h, w = v.shape
    window = max(3, round(PAPER * min(h, w)))
    paper = ndimage.grey_opening(v, size=(window, window), mode="nearest")
    paper = ndimage.uniform_filter(paper, max(1, window // 4), mode="nearest")  # smooth the opening's flat blocks
    flat = np.maximum(v - paper, 0)
    # the noise, from differences of neighbouring pixels (robust to the ink, whose edges are few of them)
    noise = 1.4826 / math.sqrt(2) * float(np.median(np.abs(np.diff(v, axis=1)))) if w > 1 else 0.0
    peak = float(np.percentile(flat, 99.9)) if flat.size >= 1000 else float(flat.max())
    level = float(np.median(flat[flat >= 0.5 * peak])) if peak > 0 else 0.0
    if level < max(MIN_CONTRAST, NOISE * noise):
        raise NoInkError(f"no ink found in {name}: the image is blank or has too little contrast")
    low = max(LOW * level, 3 * noise)
    mask = apply_hysteresis_threshold(flat, low, max(low, HIGH * level))
    soft = np.clip((flat - low) / max(level - low, 1e-6), 0, 1).astype(np.float32)
    return soft, mask


def _lines(mask: np.ndarray) -> np.ndarray:
    """The pixels of long straight horizontal or vertical runs (LINE of the image's side) that, joined, cross the
    image (SPAN of its side): ruled and squared paper, a margin line. A digit's own bar is shorter, unless the image
    is cropped tight to the digit; the most inclusive candidate keeps it then, and the model chooses. Strokes drawn
    on a pad (a hash sign, a triangle) stop short of its edges, so they are not lines."""
    h, w = mask.shape
    tol = max(1, round(0.01 * max(mask.shape)))  # a hand-drawn or slightly tilted line wobbles by a few px
    m = ndimage.binary_dilation(mask, iterations=tol).view(np.uint8)
    out = np.zeros(mask.shape, bool)
    for axis, side in ((1, w), (0, h)):
        length = max(3, round(LINE * side))
        # an opening by a 1-px line: running minimum, then running maximum (O(1) per pixel whatever the length)
        runs = ndimage.maximum_filter1d(ndimage.minimum_filter1d(m, length, axis=axis), length, axis=axis) > 0
        labels, n = ndimage.label(runs, structure=np.ones((3, 3), bool))
        for k, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is not None and box[axis].stop - box[axis].start >= SPAN * side:
                out[box] |= labels[box] == k
    return ndimage.binary_dilation(out, iterations=tol)


def _groups(mask: np.ndarray) -> tuple[dict[str, np.ndarray], bool]:
    """The candidate masks (by kind) of one polarity's ink mask: all, inside the border, without lines, inside a
    frame, main group; a mask equal to one before it is left out. And whether page furniture was found (a frame,
    the sheet's edge, ruled paper: `furniture.py`), which settles the polarity."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return {}, False
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    areas[0] = 0
    keep = areas >= SPECK * areas.max()
    keep[0] = False
    # in a crop (under CROP_SIDE) a stroke crossing the image is the digit's own, not ruled paper
    lines = _lines(mask) if min(mask.shape) >= furniture.CROP_SIDE else np.zeros_like(mask)
    if lines.any() and furniture.only_ruled_lines(mask, lines):
        return {}, True
    found = furniture.furniture(labels, keep)
    keep &= ~found  # frames and the sheet's edge are in no candidate
    if not keep.any():
        return {}, True
    border = np.zeros(n + 1, bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        border[edge] = True
    out = {"all ink": keep[labels]}
    inside = keep & ~border
    if inside.any() and border[keep].any():
        out["inside the border"] = inside[labels]
    if lines.any():
        rest = keep[labels] & ~lines
        lab, m = ndimage.label(rest, structure=np.ones((3, 3), bool))
        if m:
            a = np.bincount(lab.ravel(), minlength=m + 1)
            a[0] = 0
            ok = a >= SPECK * a.max()
            ok[0] = False
            out["without lines"] = _main_group(lab, ok)
    framed = _inside_frame(labels, keep)
    if framed is not None:
        out["inside a frame"] = framed
    out["main group"] = _main_group(labels, inside if inside.any() else keep)  # border parts only for a tight crop
    unique: dict[str, np.ndarray] = {}
    for kind, m in out.items():
        if m.any() and not any(np.array_equal(m, u) for u in unique.values()):
            unique[kind] = m
    return unique, bool(found.any())


def _inside_frame(labels: np.ndarray, keep: np.ndarray) -> np.ndarray | None:
    """The main group of the parts lying wholly inside the box of the largest part that encloses others (a frame
    drawn around the digit, a box on a form), without that part; None when no part encloses another."""
    boxes = ndimage.find_objects(labels)
    areas = np.bincount(labels.ravel(), minlength=len(boxes) + 1)
    for k in sorted((k for k in range(1, len(boxes) + 1) if keep[k]), key=lambda k: -areas[k]):
        (y0, y1), (x0, x1) = ((s.start, s.stop) for s in boxes[k - 1])
        inner = np.zeros_like(keep)
        for j, b in enumerate(boxes, start=1):
            if j != k and keep[j] and b[0].start > y0 and b[0].stop < y1 and b[1].start > x0 and b[1].stop < x1:
                inner[j] = True
        if inner.any():
            return _main_group(labels, inner)
    return None


def _main_group(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The largest kept part and the kept parts near it (gaps up to NEAR of the group's longer side), grown."""
    boxes = ndimage.find_objects(labels)
    areas = np.bincount(labels.ravel(), minlength=len(boxes) + 1)
    order = [k for k in np.argsort(-areas) if k > 0 and keep[k]]
    if not order:
        return np.zeros(labels.shape, bool)
    chosen = {order[0]}
    (y0, y1), (x0, x1) = ((s.start, s.stop) for s in boxes[order[0] - 1])
    grew = True
    while grew:
        grew = False
        reach = NEAR * max(y1 - y0, x1 - x0)
        for k in order:
            if k in chosen:
                continue
            (py0, py1), (px0, px1) = ((s.start, s.stop) for s in boxes[k - 1])
            if max(py0 - y1, y0 - py1, px0 - x1, x0 - px1, 0) <= reach:
                chosen.add(k)
                y0, y1, x0, x1 = min(y0, py0), max(y1, py1), min(x0, px0), max(x1, px1)
                grew = True
    return np.isin(labels, list(chosen))


def candidates(image, *, name: str | None = None) -> list[Candidate]:
    """The candidate readings of one image (see the module's docstring), most inclusive first. Takes what
    `prepare` takes; raises `NoInkError` when the image holds no ink, `NoDigitError` for ink no digit makes."""
    result = _attempt(image, name)
    if isinstance(result, UserError):
        raise result
    return result


def _candidates(g: np.ndarray, name: str) -> list[Candidate]:
    h, w = g.shape
    if min(h, w) < MIN_SIDE:
        _check_shape((h, w), (h, w), name)
    if (h, w) == (FIELD, FIELD):
        border = np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])
        if float(np.median(border)) <= MNIST_BACKGROUND and float(g.max()) - float(np.median(border)) >= MIN_CONTRAST:
            if float(np.maximum(g - np.median(border), 0).sum()) > float(np.maximum(np.median(border) - g, 0).sum()):
                return [Candidate("as given", np.clip(g, 0.0, 1.0).astype(np.float32))]
    found: list[Candidate] = []
    first_error: UserError | None = None
    try:  # the rule-based photo reading first: where it reads the image, it is the most reliable candidate
        found.append(Candidate("photo path", photo_path.mnistify(g, name)))
    except UserError as e:  # it refuses tight crops, soft scans, digits touching a line: the others may read them
        first_error = e if not isinstance(e, NoInkError) else None
    s = _work_copy(g)
    for i, light in enumerate(_polarities(s)):
        try:
            soft, mask = _ink(s if light else 1.0 - s, name)
        except NoInkError as e:
            first_error = first_error or e
            continue
        groups, furnished = _groups(mask)
        for kind, m in groups.items():
            zone = ndimage.binary_dilation(m, iterations=GROW)
            ink = np.where(zone, soft, 0.0).astype(np.float32)
            if not (ink > 0).any():
                continue
            r0, r1, c0, c1 = bbox(ink > 0)
            try:
                _check_shape((r1 - r0, c1 - c0), s.shape, name)
            except NoDigitError as e:
                first_error = first_error or e
                continue
            found.append(Candidate(kind if i == 0 else "other polarity", _field(ink[r0:r1, c0:c1])))
            if i > 0:
                break  # the other polarity: its whole ink only
        if furnished:
            break  # a frame, a sheet's edge or ruled lines in this polarity: the page is read this way round
    if not found and min(s.shape) < furniture.CROP_SIDE:  # a 1 cropped tight fills its width, wider than the window
        found = _global_candidate(s)
    if not found:
        raise first_error or NoInkError(f"no ink found in {name}: the image is blank or has too little contrast")
    return found


def _global_candidate(s: np.ndarray) -> list[Candidate]:
    """A narrow crop whose ink fills it (a 1 cropped tight): one threshold for the whole image (Otsu's), the
    minority side as the ink; nothing when the two sides differ by less than MIN_CONTRAST."""
    if float(s.max()) - float(s.min()) < MIN_CONTRAST:  # (and Otsu's histogram needs a range)
        return []
    dark = s < threshold_otsu(s)
    ink, paper = (dark, ~dark) if dark.mean() <= 0.5 else (~dark, dark)
    if not ink.any() or not paper.any():
        return []
    level, base = float(np.median(s[ink])), float(np.median(s[paper]))
    if abs(base - level) < MIN_CONTRAST:
        return []
    zone = ndimage.binary_dilation(ink, iterations=GROW)
    soft = np.where(zone, np.clip((s - base) / (level - base), 0, 1), 0).astype(np.float32)
    r0, r1, c0, c1 = bbox(ink)
    return [Candidate("global threshold", _field(soft[r0:r1, c0:c1]))]


def mnistify(gray: np.ndarray, name: str = "the image") -> np.ndarray:
    """A 2-D float array in [0, 1] (any polarity) -> its first candidate: 28x28 float32, white on black."""
    return _candidates(np.asarray(gray, dtype=np.float32), name)[0].seen


def prepare(image, *, name: str | None = None) -> np.ndarray:
    """The 28x28 image (float32 in [0, 1], white digit on black) of an image's first, most inclusive candidate,
    for uses without a model to check the candidates (`Classifier.predict` checks them all)."""
    return candidates(image, name=name)[0].seen


def preprocess(image, *, mean: float = MEAN, std: float = STD, name: str | None = None) -> torch.Tensor:
    """The model's input for one user image (its first candidate): a float32 tensor [1, 28, 28], normalised.

    `image` is a PIL image, a path or encoded bytes (opened with `open_image`), or an array: HxW grayscale,
    HxWx3 / HxWx4 colour (or CxHxW), uint8 / other integers / bool, or floats in [0, 1] or [0, 255] (other ranges
    are min-max scaled). Dark-on-light and light-on-dark both work. Raises `NoInkError` for blank images,
    `NoDigitError` for ink no digit makes, and `UserError` for unusable ones (empty, NaN/inf, unsupported shape or
    type, too large, or more than the memory there is).
    """
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise UserError(f"normalisation needs a finite mean and a positive std, not mean={mean}, std={std}")
    x = (prepare(image, name=name) - np.float32(mean)) / np.float32(std)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(0)


def _attempt(image, name: str | None) -> list[Candidate] | UserError:
    """The candidates, or the `UserError` to raise instead: running out of memory becomes one, and it comes
    without the frames it came through. They hold the image's arrays, and a caller that keeps the error
    (Classifier.predict_each keeps one per unusable image) would keep those too. Returned, not raised, so that
    the public function that raises it is the last frame of its traceback."""
    label = name or (str(image) if isinstance(image, (str, os.PathLike)) else "the image")
    try:
        if isinstance(image, (str, os.PathLike)):
            name = name or str(image)
            image = open_image(image)
        elif isinstance(image, (bytes, bytearray, memoryview)):
            image = open_image(image, name)
        name = name or "the image"
        gray = to_grayscale(image) if isinstance(image, Image.Image) else array_to_gray(image, name)
        image = None  # an image opened here is not needed any more
        return _candidates(gray, name)
    except MemoryError:
        error = UserError(f"not enough memory to prepare {label}; no digit was read from it")
    except UserError as e:
        error = e
    error.__traceback__ = error.__context__ = None
    return error
