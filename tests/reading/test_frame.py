"""mnistlab.reading.frame: a picture as the finder sees it (as torch's interpolate made it for the bundled finder's
training), and its outputs decoded as torch decoded them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mnistlab.reading import frame


def torch_prepare(g: np.ndarray, size: int = frame.INPUT) -> np.ndarray:
    """The finder's input as torch made it before `frame.prepare` (NumPy) took its place (the bundled finder was
    trained on it): the reference."""
    h, w = g.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    t = torch.from_numpy(np.ascontiguousarray(g, np.float32)).view(1, 1, h, w)
    small = F.interpolate(t, size=(nh, nw), mode="area" if scale < 1 else "bilinear")[0, 0]
    x = torch.zeros(2, size, size)
    x[0, :nh, :nw] = small - small.median()
    x[1, :nh, :nw] = 1.0
    return x.numpy()


def test_any_picture_becomes_the_same_fixed_input():
    for shape in ((2000, 3000), (31, 7), (256, 256), (1, 1)):
        framed = frame.prepare(np.random.default_rng(0).random(shape, dtype=np.float32))
        assert framed.input.shape == (2, frame.INPUT, frame.INPUT) and framed.input.dtype == np.float32
        h, w = shape
        assert round(max(h, w) * framed.scale) == frame.INPUT
        assert float(framed.input[1].sum()) == max(1, round(h * framed.scale)) * max(1, round(w * framed.scale))


def test_the_input_is_torchs_shrunk_or_enlarged():
    rng = np.random.default_rng(1)
    shapes = ((2000, 3000), (3001, 1999), (513, 1025), (300, 257), (257, 256), (255, 100), (31, 7), (12, 255), (1, 1))
    for shape in shapes:
        g = rng.random(shape, dtype=np.float32)
        g[shape[0] // 3 :, : shape[1] // 2] *= 0.2  # an edge, so that the windows' arithmetic shows
        assert np.abs(frame.prepare(g).input - torch_prepare(g)).max() <= 2e-6, shape


def torch_decode(heat, size, offset, k: int = frame.MAX_FOUND):
    """The decoding as the torch finder did it before `frame.decode` (NumPy) took its place: the reference."""
    heat, size, offset = (torch.from_numpy(t) for t in (heat, size, offset))
    p = heat.sigmoid()
    peaks = p * (F.max_pool2d(p, 3, 1, 1) == p)
    b, _, gh, gw = p.shape
    scores, idx = peaks.view(b, -1).topk(min(k, gh * gw))
    ys, xs = (idx // gw).float(), (idx % gw).float()
    take = lambda t: t.reshape(b, 2, -1).gather(2, idx.unsqueeze(1).expand(b, 2, idx.shape[1]))  # noqa: E731
    off, wh = take(offset), take(size).exp()
    cx, cy = (xs + off[:, 0]) * frame.STRIDE, (ys + off[:, 1]) * frame.STRIDE
    boxes = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], -1)
    return boxes.numpy(), scores.numpy()


def test_numpy_decoding_is_torchs():
    rng = np.random.default_rng(7)
    g = frame.INPUT // frame.STRIDE
    heat = rng.normal(0, 3, (3, 1, g, g)).astype(np.float32)  # hundreds of peaks: the top MAX_FOUND are distinct
    size = rng.normal(3, 0.5, (3, 2, g, g)).astype(np.float32)
    offset = rng.random((3, 2, g, g), dtype=np.float32)
    sparse = np.where(heat > 8.5, heat, -12.0).astype(np.float32)  # fewer peaks above the rest than MAX_FOUND
    assert 0 < (sparse > 0).sum(axis=(1, 2, 3)).min() and (sparse > 0).sum(axis=(1, 2, 3)).max() < frame.MAX_FOUND
    for h in (heat, sparse):
        boxes, scores = frame.decode(h, size, offset)
        want_boxes, want_scores = torch_decode(h, size, offset)
        assert boxes.shape == want_boxes.shape == (3, frame.MAX_FOUND, 4)
        real = want_scores > 1e-3  # past the peaks, torch's order among the equal low scores is its own
        assert (real == (scores > 1e-3)).all() and 0 < real.sum()
        assert np.abs(scores - want_scores).max() <= 1e-6
        assert np.abs(boxes[real] - want_boxes[real]).max() <= 1e-3


def test_match_pairs_each_box_once():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10]], np.float32)
    assert frame.match(a, b) == [(0, 0)]
    assert frame.match(a, np.zeros((0, 4), np.float32)) == []


def test_a_large_picture_gets_a_bounded_second_look_in_tiles():
    """Under LOOK px: the whole view alone; from LOOK px: at most 2 x 2 tiles more, covering the picture, each a
    fixed input; a tile of a side no longer than a tile is not repeated."""
    rng = np.random.default_rng(0)
    assert len(frame.views(rng.random((300, frame.LOOK - 1), dtype=np.float32))) == 1
    for shape, count in (((1200, 1600), 5), ((600, 3000), 3), ((frame.LOOK, frame.LOOK), 5), ((4000, 500), 3)):
        g = rng.random(shape, dtype=np.float32)
        views = frame.views(g)
        assert len(views) == count and all(v.input.shape == (2, frame.INPUT, frame.INPUT) for v in views)
        covered = np.zeros(shape, bool)
        for v in views[1:]:
            x, y = v.origin
            side = round(frame.INPUT / v.scale)
            covered[y : y + side, x : x + side] = True
            assert not any(v.inner[:2]) if (x, y) == (0, 0) else any(v.inner[:2])
        assert covered.all()


def test_merging_keeps_the_whole_views_finds_and_a_tiles_small_whole_ones():
    g = np.zeros((1200, 1600), np.float32)
    views = frame.views(g)
    tile = views[4]  # the bottom right tile: its left and top sides are inner
    s = 1 / tile.scale
    boxes = np.zeros((5, 3, 4), np.float32)
    scores = np.zeros((5, 3), np.float32)
    boxes[0, 0], scores[0, 0] = (100, 100, 150, 160), 0.9  # the whole view's: kept, at any size
    boxes[4, 0], scores[4, 0] = (100, 100, 120, 125), 0.8  # small, inside the tile: kept
    boxes[4, 1], scores[4, 1] = (1, 100, 20, 125), 0.8  # on the tile's inner left side: cut, left to another tile
    boxes[4, 2], scores[4, 2] = (100, 100, 160, 180), 0.8  # large: the whole view's to find
    boxes[2, 0], scores[2, 0] = (100, 100, 120, 125), 0.3  # under DETECT
    b, sc = frame.merge(views, boxes, scores)
    assert np.allclose(sc, [0.9, 0.8])
    assert np.allclose(b[0], np.array([100, 100, 150, 160]) / views[0].scale)
    assert np.allclose(b[1], np.array([100, 100, 120, 125]) * s + np.array(tile.origin * 2))
    many = np.full((5, frame.MAX_FOUND, 4), (10, 10, 14, 14), np.float32)
    assert len(frame.merge(views, many, np.ones((5, frame.MAX_FOUND), np.float32))[0]) == frame.MAX_FOUND
