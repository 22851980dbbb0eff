"""mnistlab.reading.finder: its size, a decoding bounded whatever the network says, its targets decoded back."""

from __future__ import annotations

import numpy as np
import torch

from mnistlab.reading import finder, frame

MB = 2 * 1024 * 1024  # the budget for the finder's weights


def test_the_finder_weighs_at_most_2_mb():
    model = finder.Finder()
    assert finder.parameter_bytes(model) <= MB
    assert sum(p.numel() for p in model.parameters()) * 4 <= finder.parameter_bytes(model)


def test_decoding_a_dot_picture_is_bounded_by_max_found():
    """1-px dots everywhere: at most MAX_FOUND peaks are decoded, whatever the network says."""
    dots = np.ones((1200, 1600), np.float32)
    dots[::3, ::3] = 0.0
    x = torch.from_numpy(frame.prepare(dots).input[None])
    model = finder.Finder().eval()
    with torch.inference_mode():
        heat, size, off = (t.numpy() for t in model(x))
    worst = np.random.default_rng(0).normal(0, 5, heat.shape).astype(np.float32)  # the worst case: peaks everywhere
    boxes, scores = frame.decode(worst, size, off)
    assert boxes.shape == (1, frame.MAX_FOUND, 4) and scores.shape == (1, frame.MAX_FOUND)


def test_targets_decode_back_to_their_boxes():
    truth = np.array([[20, 30, 44, 70], [47, 31, 70, 69], [150, 100, 230, 220]], np.float32)
    grid = frame.INPUT // frame.STRIDE
    heat, size, off, mask = finder.targets([truth], grid)
    assert int(mask.sum()) == 3 and float(heat.max()) == 1.0
    logits = torch.logit(heat.clamp(1e-6, 1 - 1e-6))
    boxes, scores = frame.decode(logits.numpy(), size.numpy(), off.numpy())
    found = boxes[0][scores[0] >= frame.DETECT]
    assert len(found) == 3
    pairs = frame.match(found, truth, least=0.95)
    assert len(pairs) == 3


def test_loss_is_lower_for_the_right_answer():
    truth = [np.array([[20, 30, 44, 70]], np.float32)]
    target = finder.targets(truth, 64)
    heat, size, off, _ = target
    right = (torch.logit(heat.clamp(1e-4, 1 - 1e-4)), size, off)
    wrong = (torch.zeros_like(heat), size + 1, off)
    assert finder.loss(right, target)[0] < finder.loss(wrong, target)[0]
