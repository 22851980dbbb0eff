"""mnistlab.synth.camera: perspective maps boxes with the picture; ink stays legible; blur keeps the light."""

from __future__ import annotations

import numpy as np
import torch

from mnistlab.synth import camera


def test_homography_takes_the_corners_where_asked():
    src = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    dst = np.array([[1, 2], [11, 1], [9, 12], [0, 9]], float)
    h = camera.homography(src, dst)
    q = np.c_[src, np.ones(4)] @ h.T
    assert np.allclose(q[:, :2] / q[:, 2:], dst)


def test_a_warped_square_stays_inside_its_warped_box():
    S = 64
    img = torch.zeros(1, 3, S, S)
    img[:, :, 20:40, 24:36] = 1.0
    box = np.array([[24, 20, 36, 40]], np.float32)
    for seed in range(5):
        out, boxes = camera.perspective(img, [box], np.random.default_rng(seed), 0.12)
        x0, y0, x1, y1 = boxes[0][0]
        ink = out[0, 0] > 0.5
        ys, xs = np.nonzero(ink.numpy())
        assert len(ys) > 0
        assert xs.min() >= np.floor(x0) - 1 and xs.max() <= np.ceil(x1) and ys.min() >= np.floor(y0) - 1
        assert ys.max() <= np.ceil(y1)


def test_ink_too_close_to_the_paper_becomes_black_or_white():
    paper = torch.full((2, 3, 8, 8), 0.9)
    paper[1] = 0.1
    ink = torch.full((2, 3, 1, 1), 0.8)  # too light on white paper; fine on the dark board
    out = camera.legible(ink, paper)
    assert torch.equal(out[0], torch.zeros(3, 1, 1)) and torch.equal(out[1], ink[1])


def test_blur_keeps_the_mean_light():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(6, 3, 32, 32, generator=g)
    out = camera.blur(img, g, 2.0)
    assert out.shape == img.shape
    assert torch.allclose(out.mean((1, 2, 3)), img.mean((1, 2, 3)), atol=0.02)
