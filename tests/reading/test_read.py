"""mnistlab.reading.read: finder -> crops -> Net; reading order, numbers, ink of either polarity, a number whole."""

from __future__ import annotations

import numpy as np
import pytest
from photos import written_number

from mnistlab.reading import frame
from mnistlab.reading import read as reading


def test_reading_order_is_lines_top_to_bottom_then_left_to_right():
    boxes = np.array(
        [[120, 12, 140, 40], [10, 100, 30, 130], [60, 10, 80, 42], [40, 102, 60, 128], [90, 14, 110, 44]], np.float32
    )
    assert reading.reading_order(boxes) == [[2, 4, 0], [1, 3]]


def test_a_wide_gap_starts_another_number():
    boxes = np.array([[0, 0, 20, 30], [22, 0, 42, 30], [90, 0, 110, 30], [112, 0, 132, 30]], np.float32)
    lines = reading.reading_order(boxes)
    assert reading._number(boxes, [1, 2, 3, 4], lines) == "12 34"
    assert reading._number(boxes[:2], [1, 2], reading.reading_order(boxes[:2])) == "12"


def test_two_peaks_on_one_digit_are_one_digit_but_touching_digits_stay_two():
    boxes = np.array([[10, 10, 40, 60], [14, 30, 38, 62], [36, 10, 66, 60], [100, 10, 130, 60]], np.float32)
    # the second's centre is in the first (one digit, two peaks); the third touches the first (a neighbour)
    assert reading.distinct(boxes).tolist() == [True, False, True, True]
    assert reading.distinct(np.zeros((0, 4), np.float32)).tolist() == []


def test_ink_is_white_on_black_in_either_polarity():
    paper = np.full((60, 60), 0.8, np.float32)
    paper[20:40, 28:32] = 0.1  # a dark bar
    board = 1 - paper  # a light bar on a dark board
    box = (26.0, 18.0, 34.0, 42.0)
    dark, light = reading.ink_of(paper, box), reading.ink_of(board, box)
    assert dark is not None and light is not None
    assert np.allclose(dark, light)
    assert dark.max() == 1.0 and dark[0, 0] == 0.0  # the bar is ink, the paper is not


def test_a_neighbours_stroke_in_the_margin_is_left_out():
    page = np.full((80, 80), 0.9, np.float32)
    page[20:60, 38:42] = 0.1  # the digit: a bar through the box's middle
    page[20:60, 27:29] = 0.1  # a neighbour's stroke, just inside the box's edge
    ink = reading.ink_of(page, (28.0, 18.0, 52.0, 62.0))
    assert ink is not None
    cols = np.flatnonzero(ink.max(0) > 0)
    assert cols.min() > 5 and ink.max() == 1.0  # only the middle bar is left


def test_a_huge_box_is_subsampled_to_a_bounded_crop():
    page = np.full((3000, 2000), 0.9, np.float32)
    page[500:2500, 900:1100] = 0.1
    ink = reading.ink_of(page, (0.0, 0.0, 2000.0, 3000.0))
    assert ink is not None and max(ink.shape) <= reading.CROP_SIDE + 1


@pytest.fixture(scope="module")
def four_digits(data_dir):
    """A 4-digit number of MNIST training digits, 80 px tall, dark on white paper."""
    from mnistlab.data.download import load_tensors

    images, labels = load_tensors(True, data_dir, limit=400)
    return written_number(images.numpy(), labels.numpy(), "2076", size=(520, 160))[0], "2076"


def test_a_four_digit_number_is_read_whole(four_digits, bundled):
    if not reading.bundled_finder().is_file():
        pytest.fail("the finder's weights are not bundled (scripts/train_finder.py --bundle)")
    page, truth = four_digits
    r = reading.read(page, classifier=bundled)
    assert r.number == truth
    assert len(r.digits) == 4 and all(d.found >= frame.DETECT and d.score > 0 for d in r.digits)
    xs = [d.box[0] for d in r.digits]
    assert xs == sorted(xs) and all(30 <= d.box[1] and d.box[3] <= 130 for d in r.digits)


def test_dots_and_blank_paper_are_read_with_bounded_work(bundled):
    """1-px dots on a 1600x1200 picture: the finder's fixed input, at most MAX_FOUND crops scored (here none)."""
    dots = np.ones((1200, 1600), np.float32)
    dots[::3, ::3] = 0.0
    reader = reading.Reader(bundled)
    boxes, _ = reader.find(dots)
    assert len(boxes) <= frame.MAX_FOUND
    assert len(reader.read(dots).digits) <= len(boxes)
    paper = np.clip(0.85 + np.random.default_rng(0).normal(0, 0.02, (300, 400)), 0, 1).astype(np.float32)
    assert reader.read(paper).number == ""


class _Sure:
    """A stand-in classifier: every crop one digit (`level` of its probability on 3, the rest shared)."""

    def __init__(self, level: float):
        self.level = level

    def probabilities(self, seen):
        p = np.full((len(seen), 10), (1 - self.level) / 9, np.float32)
        p[:, 3] = self.level
        return p


def test_a_low_finder_peak_or_a_low_digit_score_is_not_a_digit():
    assert reading.digit_like(1.0, 1.0) == 1.0 and reading.digit_like(0.9, 0.0) == 0.0
    assert reading.digit_like(0.6, 0.9) > reading.digit_like(0.5, 0.9) > reading.digit_like(0.5, 0.2)
    assert reading.digit_like(0.8, 0.95) >= reading.IS_DIGIT  # a clear peak, a clear digit
    assert reading.digit_like(frame.DETECT, 0.9) < reading.IS_DIGIT  # the weakest peak kept: not enough alone
    assert reading.digit_like(0.8, 0.0) < reading.IS_DIGIT  # a strong peak on what reads as no digit at all


def test_what_the_classifier_calls_no_digit_is_left_out_of_the_number(four_digits):
    """The same four found boxes: all digits with a sure classifier, none with one that cannot tell (kept apart)."""
    page, _ = four_digits
    sure = reading.Reader(_Sure(1.0), reading.load_finder()[0]).read(page)
    unsure = reading.Reader(_Sure(0.1), reading.load_finder()[0]).read(page)
    assert sure.number == "3333" and not sure.rejected
    assert unsure.number == "" and unsure.digits == [] and len(unsure.rejected) == 4
    assert all(d.score == 0.0 for d in unsure.rejected)


@pytest.mark.parametrize("number", ["2076", "13579", "48"])
def test_written_numbers_are_still_read_whole(data_dir, bundled, number):
    from mnistlab.data.download import load_tensors

    images, labels = load_tensors(True, data_dir, limit=400)
    page = written_number(images.numpy(), labels.numpy(), number, size=(140 * len(number), 160), k=1)[0]
    assert reading.read(page, classifier=bundled).number == number


def test_letters_and_shapes_are_mostly_not_digits(bundled):
    """Pictures of one letter, symbol or drawn shape each (DejaVu, Liberation; the training's shape kinds): few are
    taken for a digit."""
    import glob

    from mnistlab.synth import scenes, sprites

    fonts = sprites.dejavu_fonts()[:2] + sorted(glob.glob("/usr/share/fonts/truetype/liberation*/*.ttf"))[:2]
    assert len(fonts) == 4, "DejaVu and Liberation are installed here (fonts-dejavu-core, fonts-liberation)"
    pool = sprites.characters(fonts, sprites.DISTRACT) + sprites.shapes(np.random.default_rng(5), 24)
    made = scenes.lone_marks(pool, 48, np.random.default_rng(5))
    reader = reading.Reader(bundled)
    read = [reader.read(s.image) for s in made]
    taken = sum(bool(r.digits) for r in read)
    assert taken <= 0.2 * len(made), f"{taken} of {len(made)} not-digits read as digits"


def test_a_small_digit_in_a_large_photo_is_found_by_the_second_look(bundled, data_dir, monkeypatch):
    """Digits 5% of a 1600x1200 photo's side (13 px in the whole view): the tiles find most of them, the whole
    view alone few (MNIST training digits)."""
    from realsets import small_in_large

    from mnistlab.data.download import load_tensors

    images, labels = load_tensors(True, data_dir, limit=20)
    pictures = [small_in_large(d, np.random.default_rng([5, i])) for i, d in enumerate(images.numpy())]
    reader = reading.Reader(bundled)
    found = sum(len(reader.find(p.astype(np.float32) / 255)[0]) > 0 for p in pictures)
    monkeypatch.setattr(frame, "LOOK", 10**6)  # the whole view alone
    alone = sum(len(reader.find(p.astype(np.float32) / 255)[0]) > 0 for p in pictures)
    print(f"found in {found} of 20 pictures with the second look, {alone} without")
    assert found >= 9 and found >= alone + 6


def test_one_large_digit_is_found_more_often_with_the_zoomed_look(bundled, data_dir):
    """Photos of one digit 30-90% of the picture's side, some cut by its edge (`synth.scenes`, MNIST training digits,
    a seed the choice of ZOOM did not use): the zoomed-out look finds clearly more of them than the whole view."""
    from mnistlab.data.download import load_tensors
    from mnistlab.synth import scenes

    images, labels = load_tensors(True, data_dir, limit=2000)
    lone = scenes.Ranges(**{**scenes.WIDE.__dict__, "empty": 0.0, "big": 1.0})
    made = scenes.make_scenes(scenes.load_sprites(images, labels, fonts=[]), 40, np.random.default_rng(31), r=lone)
    reader = reading.Reader(bundled)
    found = alone = 0
    for s in made:
        g = frame.grey(s.image)
        views = frame.views(g)
        boxes, scores = frame.decode(*reading.run_finder(reader.finder, np.stack([v.input for v in views])))
        found += len(frame.match(reading.found_in(g, views, boxes, scores)[0], s.boxes))
        alone += len(frame.match(reading.found_in(g, views[:1], boxes[:1], scores[:1])[0], s.boxes))
    print(f"found {found} of 40 digits with the zoomed look, {alone} without")
    assert found >= alone + 4
