"""The bundled model on real-digit-like images rendered from MNIST test digits, and on not-digits (realsets.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from realsets import MAKERS, NOT_DIGITS

import mnistlab
from mnistlab import calibration
from mnistlab.data.download import load_tensors
from mnistlab.errors import UserError

N = 100  # digits per set: the first N MNIST test digits ...
# ... fewer of the 1600x1200 photos, the slowest set to render and read; more of the soft scans, the set nearest
# its bound (97 of the first 100, 296 of 300: 3 s)
SIZE = {"5% of a large photo": 50, "soft low-res scan": 300}
# What each set must reach: the 97%, soft low-resolution scans (8-14 px) too since the small crop's grey
# reading is tried in both polarities (95% before on these 100, benchmarks/robustness.py -n 100, 2026-12-02)
FLOOR: dict[str, float] = {}


@pytest.fixture(scope="module")
def digits(data_dir):
    x, y = load_tensors(False, data_dir)
    return x.numpy(), y.numpy()


@pytest.mark.parametrize("kind", list(MAKERS))
def test_real_digit_like_images_are_read(bundled, digits, kind):
    """Tight crops (all four edges, or one), soft low-resolution scans, squared and ruled notebook paper with a margin
    line, coloured ink on coloured paper, EXIF-rotated JPEGs and a digit 5% of a large photo: >= 97% read right."""
    x, y = digits
    rng = np.random.default_rng(1)
    results = bundled.predict_each([MAKERS[kind](d, rng) for d in x[: SIZE.get(kind, N)]])
    right = [not isinstance(r, UserError) and r.is_digit and r.digit == t for r, t in zip(results, y)]
    wrong = [
        (i, int(y[i]), r if isinstance(r, UserError) else (r.digit, r.candidate))
        for i, r in enumerate(results)
        if not right[i]
    ]
    assert np.mean(right) >= FLOOR.get(kind, 0.97), wrong


# What share of each not-digit set must be turned down: most of them. Measured on 2026-12-01 with the bundled model
# (seed 1): letters 67%, noise and textures 92%, scribbles 63%, pen-drawn shapes the training never saw 48% (seed 2's
# weights: 73%, 92%, 77%, 62%). The drawn shapes are not yet "mostly": their floor only keeps them from falling back.
TURNED_DOWN = {"drawn shapes (held out)": 0.4}


@pytest.mark.parametrize("kind", list(NOT_DIGITS))
def test_not_digits_are_mostly_not_digits(bundled, kind):
    """Letters in fonts the training never used, noise and textures, scribbles, pen-drawn shapes the training never
    saw: most are turned down (no ink, or "not a digit"), at the threshold that accepts 99.5% of held-out digits."""
    rng = np.random.default_rng(2)
    results = bundled.predict_each([NOT_DIGITS[kind](rng) for _ in range(60)])
    turned_down = [isinstance(r, UserError) or not r.is_digit for r in results]
    assert np.mean(turned_down) >= TURNED_DOWN.get(kind, 0.5), np.mean(turned_down)


def test_mnist_digits_are_digits_and_calibrated(bundled, digits):
    """On the whole MNIST test set: >= 99.5% are accepted as digits, and the calibrated probabilities' expected
    calibration error is at most 1%."""
    x, y = digits
    probs = torch.cat([bundled.probabilities(x[i : i + 2000].astype(np.float32) / 255) for i in range(0, len(y), 2000)])
    accepted = (calibration.digit_score(probs) >= bundled.threshold).float().mean()
    assert float(accepted) >= 0.995, float(accepted)
    assert calibration.ece(probs, torch.as_tensor(y)) <= 0.01


def test_the_bundled_card_holds_its_calibration(bundled):
    card = bundled.card
    assert 0 < card["temperature"] < 20 and 0 < card["digit_threshold"] < 1
    assert card["calibration"]["ece_after"] <= card["calibration"]["ece_before"]
    assert card["recipe"]["name"] == "robust" and card["recipe"]["val"] == 5000


def test_blank_is_no_ink_and_scores_are_in_range(bundled):
    results = bundled.predict_each([np.full((50, 50), 200, np.uint8), np.eye(28, dtype=np.float32)])
    assert isinstance(results[0], mnistlab.UserError) and "no ink" in str(results[0])
    assert 0.0 <= results[1].digit_score <= 1.0 and isinstance(results[1].is_digit, bool)
