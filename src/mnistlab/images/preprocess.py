"""Turn any user image (file, bytes, PIL image or array) into candidate 28x28 MNIST-style digits for the model to check.

Real images hold more than a digit: the sheet's edge, ruled lines or a grid, a margin line, shadows, specks, a
second digit. Instead of deciding by hand-set rules which ink is the digit, this module proposes a few readings of
the image (`candidates`), and the classifier scores them all in one batch and keeps the one with the best digit
score (`Classifier.predict`). The pipeline:

1. grayscale (transparency composited onto a background that contrasts with the ink; `gray.py`);
2. a working copy of at most `ink.WORK_SIDE` px, lightly smoothed when it was reduced (sensor noise, JPEG blocks);
   steps 3-5 are `ink.py`;
3. polarity: the ink is the side that stands out from the median (the paper); where neither side clearly does,
   both polarities are proposed;
4. the paper's brightness: a grey opening of the ink-bright image with a window of a third of the shorter side
   (it removes every stroke thinner than that and keeps gradients, shadows and the light falling off), subtracted;
5. a local threshold with hysteresis (relative to the typical ink and to the noise), then connected components
   (specks dropped, and page furniture: frames, the sheet's edge, ruled-only pages, `furniture.py`);
6. candidates, each made MNIST-style by `field.to_field` (the ink's box scaled to 20 px, its centre of mass at
   (14, 14)): all the ink; the parts that do not touch the border; the ink without lines crossing the image (ruled
   or squared paper, a margin line); the parts inside a frame; the largest group of nearby parts; the other
   polarity; for a narrow crop where nothing stands out locally, one global (Otsu) threshold. Before them comes
   the rule-based photo reading of `photo_path.py` where it reads the image (it is the most reliable on photos of a
   page; it refuses tight crops and some soft scans, which the others read), and before that, for a small crop
   where the others found ink, its ink read from the grey levels alone (`ink.grey_ink`: a soft, low-resolution
   scan's blurred strokes, which the thresholded readings break into dots).

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
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu

from mnistlab.errors import NoDigitError, NoInkError, UserError
from mnistlab.images import furniture, photo_path
from mnistlab.images.decode import MAX_PIXELS, open_image
from mnistlab.images.field import FIELD, MIN_SIDE, bbox, check_shape, to_field
from mnistlab.images.gray import array_to_gray, to_grayscale
from mnistlab.images.ink import MIN_CONTRAST, find_ink, grey_ink, groups, polarities, work_copy
from mnistlab.pixels import MEAN, STD, normalize

if TYPE_CHECKING:
    import torch

__all__ = [
    "MAX_PIXELS",
    "Candidate",
    "NoDigitError",
    "NoInkError",
    "candidates",
    "mnistify",
    "open_image",
    "prepare",
    "preprocess",  # noqa: F822 (the module's __getattr__ gives it, importing torch)
    "to_grayscale",
]

MNIST_BACKGROUND = 0.1  # a 28x28 image whose border is at most this dark, with light ink, is an MNIST digit as given
GROW = 1  # a candidate's ink takes in this many px around its parts (their soft edges)
MIN_INK = 3  # ink whose box is under this many px on its longer side (in the working copy) is a speck
# A small crop's grey reading in the polarity `polarities` did not pick wins only by this much more digit score: an
# inverted fog or low-contrast field can look about as digit-like (on validation digits with fog: 97.5% read right
# without it, 98.1% with it; soft scans 98.95% and 98.9%)
OTHER_DOUBT = 0.05
# The grey reading's box (scaled to 20 px) is of its ink over this level: fainter pixels at a stroke's end, a blur's
# skirt, vanish once scaled, and a 20 px digit boxed with them came out 18 px (issue 31)
SKIRT = 0.1


@dataclass
class Candidate:
    """One reading of an image: which ink it keeps (`kind`) and the 28x28 image, floats in [0, 1], white on black."""

    kind: str  # "as given", "grey levels", "photo path", "all ink", "inside the border", "main group", ...
    seen: np.ndarray
    doubt: float = 0.0  # the digit score it must win by, beyond classifier.PREFER: a reading on a weaker premise


# --------------------------------------------------------------------------------------------------------------
# Making one candidate MNIST-style


def _check_shape(ink: tuple[int, int], image: tuple[int, int], name: str) -> None:
    check_shape(ink, image, name, min_ink=MIN_INK)


def _field(crop: np.ndarray) -> np.ndarray:
    """Cropped ink in [0, 1] -> the 28x28 MNIST-style field (`field.to_field`); an empty field if none lands."""
    out = to_field(crop)
    return out if out is not None else np.zeros((FIELD, FIELD), np.float32)


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
    if _mnist_as_given(g):
        return [Candidate("as given", np.clip(g, 0.0, 1.0).astype(np.float32))]
    errors: list[UserError] = []
    found = _photo_path(g, name, errors)
    s = work_copy(g)
    for i, light in enumerate(polarities(s)):
        try:
            soft, mask = find_ink(s if light else 1.0 - s, name)
        except NoInkError as e:
            errors.append(e.with_traceback(None))  # (its frames hold the image's arrays)
            continue
        inks, furnished = groups(mask)
        for kind, m in inks.items():
            if (made := _candidate(soft, m, s.shape, name, errors)) is not None:
                found.append(Candidate(kind if i == 0 else "other polarity", made))
                if i > 0:
                    break  # the other polarity: its whole ink only
        if furnished:
            break  # a frame, a sheet's edge or ruled lines in this polarity: the page is read this way round
    if not found and min(s.shape) < furniture.CROP_SIDE:  # a 1 cropped tight fills its width, wider than the window
        found = _global_candidate(s)
    if not found:
        raise (
            errors[0]
            if errors
            else NoInkError(f"no ink found in {name}: the image is blank or has too little contrast")
        )
    return _grey_candidate(s, name) + found


def _grey_candidate(s: np.ndarray, name: str) -> list[Candidate]:
    """For a small crop (under CROP_SIDE), its ink read from the grey levels (`ink.grey_ink`), first: on soft,
    low-resolution scans the thresholded candidates come out broken into dots. In both polarities, the likelier
    first: a digit cropped tight can cover as much of the crop as the paper does, and `polarities` then guesses
    wrong (1 soft scan in 20); the model's digit score tells them apart. Only where the others found ink, so it
    refuses nothing they would not."""
    if min(s.shape) >= furniture.CROP_SIDE:
        return []
    found = []
    light = polarities(s)[0]
    for kind, side, doubt in (("grey levels", light, 0.0), ("grey levels, other polarity", not light, OTHER_DOUBT)):
        ink = grey_ink(s, side)
        if ink is None or not (ink > 0).any():
            continue
        r0, r1, c0, c1 = bbox(ink > SKIRT)
        try:
            _check_shape((r1 - r0, c1 - c0), s.shape, name)
        except NoDigitError:
            continue
        found.append(Candidate(kind, _field(ink[r0:r1, c0:c1]), doubt))
    return found


def _photo_path(g: np.ndarray, name: str, errors: list) -> list[Candidate]:
    """The rule-based photo reading, first: where it reads the image, it is the most reliable candidate. It refuses
    tight crops, soft scans, digits touching a line (the reason added to `errors`): the others may read them."""
    try:
        return [Candidate("photo path", photo_path.mnistify(g, name))]
    except NoInkError:
        return []
    except UserError as e:
        errors.append(e.with_traceback(None))  # (its frames hold the image's arrays)
        return []


def _mnist_as_given(g: np.ndarray) -> bool:
    """Whether a 28x28 image is already an MNIST digit: a dark border and light ink, more of it than dark marks."""
    if g.shape != (FIELD, FIELD):
        return False
    paper = float(np.median(np.concatenate([g[0], g[-1], g[1:-1, 0], g[1:-1, -1]])))
    if paper > MNIST_BACKGROUND or float(g.max()) - paper < MIN_CONTRAST:
        return False
    return float(np.maximum(g - paper, 0).sum()) > float(np.maximum(paper - g, 0).sum())


def _candidate(soft: np.ndarray, m: np.ndarray, shape, name: str, errors: list) -> np.ndarray | None:
    """The field of the ink `soft` under the mask `m` (grown by GROW px); None when there is none, or when its
    shape is no digit's (the reason added to `errors`)."""
    zone = ndimage.binary_dilation(m, iterations=GROW)
    ink = np.where(zone, soft, 0.0).astype(np.float32)
    if not (ink > 0).any():
        return None
    r0, r1, c0, c1 = bbox(ink > 0)
    try:
        _check_shape((r1 - r0, c1 - c0), shape, name)
    except NoDigitError as e:
        errors.append(e.with_traceback(None))  # (its frames hold the image's arrays)
        return None
    return _field(ink[r0:r1, c0:c1])


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


def _preprocess(image, *, mean: float = MEAN, std: float = STD, name: str | None = None) -> torch.Tensor:
    """The model's input for one user image (its first candidate): a float32 tensor [1, 28, 28], normalised.

    `image` is a PIL image, a path or encoded bytes (opened with `open_image`), or an array: HxW grayscale,
    HxWx3 / HxWx4 colour (or CxHxW), uint8 / other integers / bool, or floats in [0, 1] or [0, 255] (other ranges
    are min-max scaled). Dark-on-light and light-on-dark both work. Raises `NoInkError` for blank images,
    `NoDigitError` for ink no digit makes, and `UserError` for unusable ones (empty, NaN/inf, unsupported shape or
    type, too large, or more than the memory there is).
    """
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise UserError(f"normalisation needs a finite mean and a positive std, not mean={mean}, std={std}")
    import torch  # (already imported by the module's __getattr__, below)

    x = normalize(prepare(image, name=name), mean, std)
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


def __getattr__(name: str):
    """`preprocess` (`_preprocess`), the one function here that gives a torch tensor: asking for it imports torch,
    as `from mnistlab.images.preprocess import preprocess` always did (a caller may then limit its memory, and
    torch must be mapped before), while the rest of the module, the reading path, imports no torch."""
    if name == "preprocess":
        import torch  # noqa: F401

        return _preprocess
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
