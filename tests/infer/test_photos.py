"""Photos of handwritten digits (tests/photos.py renders MNIST test digits as phone photos): read right overall and
with each effect alone made stronger; pages holding no digit (a frame, ruled lines, shaded paper) refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from photos import EFFECTS, numbered_photo, photo_like, random_effects
from PIL import Image

from mnistlab.data.download import load_tensors
from mnistlab.errors import UserError
from mnistlab.images.preprocess import NoInkError, prepare, preprocess

SEED = 0  # the photo set scripts/photo_accuracy.py measures (its first 200)


@pytest.fixture(scope="module")
def digits(data_dir) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_tensors(False, data_dir, limit=200)
    return x.numpy(), y.numpy()


def read(clf, images) -> list[int | None]:
    """The digit read in each image, None where it was refused."""
    return [None if isinstance(r, UserError) else r.digit for r in clf.predict_each(images)]


def test_photo_like_digits_are_read_right(bundled, digits):
    """200 photos, each with a random mix of the effects (paper texture, gradient light, a shadow, a frame, the sheet's
    edge, ruled lines, noise, blur, rotation, perspective, colour): at least 95% read right."""
    x, y = digits
    photos, effects = zip(*(numbered_photo(x[i], SEED, i) for i in range(len(y))))
    for name in EFFECTS:  # every effect is well represented
        assert sum(name in e for e in effects) >= 70, name
    got = read(bundled, list(photos))
    right = [g == t for g, t in zip(got, y)]
    wrong = [(i, int(y[i]), got[i], effects[i]) for i in np.flatnonzero(~np.array(right))]
    assert np.mean(right) >= 0.95, wrong


@pytest.mark.parametrize("effect", EFFECTS)
def test_each_effect_alone_at_double_strength_is_read(bundled, digits, effect):
    """One effect at a time, twice as strong as in the mixed set (darker shadows and gradients, more noise and blur,
    16-degree turns, tighter frames, darker lines): nearly every digit is still read right."""
    x, y = digits
    photos = [photo_like(x[i], np.random.default_rng([1, i]), effects=(effect,), strength=2) for i in range(30)]
    got = read(bundled, photos)
    right = sum(g == t for g, t in zip(got, y))
    assert right >= 27, [(i, int(y[i]), got[i]) for i in range(30) if got[i] != y[i]]


def _empty_page(kind: str, i: int) -> np.ndarray:
    """A photo of a page with no digit: only a frame, only ruled lines (each with other random effects, the sheet's
    edge among them), or only shaded paper (falling light and a shadow, with random texture, noise, blur, turn,
    slant or colour)."""
    rng = np.random.default_rng([2, i])
    must = {"frame": ("frame",), "lines": ("lines",), "shading": ("gradient", "shadow")}[kind]
    extra = tuple(
        e for e in random_effects(rng) if e not in ("frame", "lines") + (("edge",) if kind == "shading" else ())
    )
    return photo_like(None, rng, effects=tuple(dict.fromkeys(must + extra)))


def refused(clf, image) -> bool:
    """Whether an image is turned down: no ink found in it, or the model's "not a digit"."""
    r = clf.predict_each([image])[0]
    if isinstance(r, UserError):
        assert isinstance(r, NoInkError) and "\n" not in str(r), r  # NoDigitError is one
        return True
    return not r.is_digit


@pytest.mark.parametrize("kind", ["frame", "lines", "shading"])
def test_pages_without_a_digit_are_turned_down(bundled, kind):
    """A page with only a frame, only ruled lines or only shading holds no digit: no ink is found, or the model
    says "not a digit" (12 of 15 at least: a frame's corner can look like a 7 to anyone)."""
    turned_down = sum(refused(bundled, _empty_page(kind, i)) for i in range(15))
    assert turned_down >= 12, turned_down


def test_two_digits_far_apart_give_one_of_them_or_not_a_digit(bundled, digits):
    """Two digits on one page: the model reads one of them (the most digit-like candidate) or says "not a
    digit"; it never makes up a third."""
    x, y = digits
    page = np.full((200, 400), 0.85, np.float32) * np.linspace(1.0, 0.7, 400, dtype=np.float32)  # light falling off
    for digit, left in ((x[0], 40), (x[1], 240)):
        ink = np.asarray(Image.fromarray(digit).resize((120, 120), Image.Resampling.BICUBIC), np.float32) / 255
        page[40:160, left : left + 120] *= 1 - 0.85 * ink
    r = bundled.predict((page * 255).astype(np.uint8))[0]
    assert not r.is_digit or r.digit in (int(y[0]), int(y[1])), r


def test_large_photos_are_read_on_a_smaller_copy(bundled, digits):
    """A 1200-px photo (the photo path works on a copy of at most 1024 px) reads like a 240-px one."""
    x, y = digits
    photos = [numbered_photo(x[i], SEED, i, size=1200)[0] for i in range(4)]
    assert read(bundled, photos) == [int(d) for d in y[:4]]


def test_prepare_is_preprocess_before_normalising(digits):
    photo, _ = numbered_photo(digits[0][0], SEED, 0)
    seen = prepare(photo)
    assert seen.dtype == np.float32 and seen.shape == (28, 28) and 0 <= seen.min() and seen.max() <= 1
    torch.testing.assert_close(preprocess(photo), torch.from_numpy((seen - 0.1307) / 0.3081).unsqueeze(0))
    mnist = digits[0][1]  # an MNIST digit is used as it is by both
    np.testing.assert_array_equal(prepare(mnist), mnist / np.float32(255))
