"""mnistlab.reading.finder: its size, a decoding bounded whatever the picture holds, and its targets decoded back."""

from __future__ import annotations

import numpy as np
import torch

from mnistlab.reading import finder

MB = 2 * 1024 * 1024  # the budget for the finder's weights


def test_the_finder_weighs_at_most_2_mb():
    model = finder.Finder()
    assert finder.parameter_bytes(model) <= MB
    assert sum(p.numel() for p in model.parameters()) * 4 <= finder.parameter_bytes(model)


def test_any_picture_becomes_the_same_fixed_input():
    for shape in ((2000, 3000), (31, 7), (256, 256), (1, 1)):
        framed = finder.prepare(np.random.default_rng(0).random(shape, dtype=np.float32))
        assert framed.input.shape == (2, finder.INPUT, finder.INPUT)
        h, w = shape
        assert round(max(h, w) * framed.scale) == finder.INPUT
        assert float(framed.input[1].sum()) == max(1, round(h * framed.scale)) * max(1, round(w * framed.scale))


def test_decoding_a_dot_picture_is_bounded_by_max_found():
    """1-px dots everywhere: at most MAX_FOUND peaks are decoded, whatever the network says."""
    dots = np.ones((1200, 1600), np.float32)
    dots[::3, ::3] = 0.0
    x = finder.prepare(dots).input.unsqueeze(0)
    model = finder.Finder().eval()
    with torch.inference_mode():
        heat, size, off = model(x)
        boxes, scores = finder.decode(torch.randn_like(heat) * 5, size, off)  # the worst case: peaks everywhere
    assert boxes.shape == (1, finder.MAX_FOUND, 4) and scores.shape == (1, finder.MAX_FOUND)


def test_targets_decode_back_to_their_boxes():
    truth = np.array([[20, 30, 44, 70], [47, 31, 70, 69], [150, 100, 230, 220]], np.float32)
    grid = finder.INPUT // finder.STRIDE
    heat, size, off, mask = finder.targets([truth], grid)
    assert int(mask.sum()) == 3 and float(heat.max()) == 1.0
    logits = torch.logit(heat.clamp(1e-6, 1 - 1e-6))
    boxes, scores = finder.decode(logits, size, off)
    found = boxes[0][scores[0] >= finder.DETECT].numpy()
    assert len(found) == 3
    pairs = finder.match(found, truth, least=0.95)
    assert len(pairs) == 3


def test_loss_is_lower_for_the_right_answer():
    truth = [np.array([[20, 30, 44, 70]], np.float32)]
    target = finder.targets(truth, 64)
    heat, size, off, _ = target
    right = (torch.logit(heat.clamp(1e-4, 1 - 1e-4)), size, off)
    wrong = (torch.zeros_like(heat), size + 1, off)
    assert finder.loss(right, target)[0] < finder.loss(wrong, target)[0]


def test_match_pairs_each_box_once():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10]], np.float32)
    assert finder.match(a, b) == [(0, 0)]
    assert finder.match(a, np.zeros((0, 4), np.float32)) == []
