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
    """Under LOOK px: the whole and zoomed views alone; from LOOK px: at most 2 x 2 tiles more, covering the
    picture, each a fixed input; a tile of a side no longer than a tile is not repeated."""
    rng = np.random.default_rng(0)
    small = frame.views(rng.random((300, frame.LOOK - 1), dtype=np.float32))
    assert [v.zoomed for v in small] == [False, True]
    for shape, count in (((1200, 1600), 6), ((600, 3000), 4), ((frame.LOOK, frame.LOOK), 6), ((4000, 500), 4)):
        g = rng.random(shape, dtype=np.float32)
        views = frame.views(g)
        assert len(views) == count and all(v.input.shape == (2, frame.INPUT, frame.INPUT) for v in views)
        assert [v.zoomed for v in views].count(True) == 1 and views[1].zoomed
        covered = np.zeros(shape, bool)
        for v in views[2:]:
            x, y = v.origin
            side = round(frame.INPUT / v.scale)
            covered[y : y + side, x : x + side] = True
            assert not any(v.inner[:2]) if (x, y) == (0, 0) else any(v.inner[:2])
        assert covered.all()


def test_merging_keeps_the_whole_views_finds_and_a_tiles_small_whole_ones():
    g = np.zeros((1200, 1600), np.float32)
    views = frame.views(g)
    tile = views[5]  # the bottom right tile: its left and top sides are inner
    s = 1 / tile.scale
    boxes = np.zeros((6, 3, 4), np.float32)
    scores = np.zeros((6, 3), np.float32)
    boxes[0, 0], scores[0, 0] = (100, 100, 150, 160), 0.9  # the whole view's: kept, at any size
    boxes[5, 0], scores[5, 0] = (100, 100, 120, 125), 0.8  # small, inside the tile: kept
    boxes[5, 1], scores[5, 1] = (1, 100, 20, 125), 0.8  # on the tile's inner left side: cut, left to another tile
    boxes[5, 2], scores[5, 2] = (100, 100, 160, 180), 0.8  # large: the whole view's to find
    boxes[3, 0], scores[3, 0] = (100, 100, 120, 125), 0.3  # under DETECT
    boxes[1, 0], scores[1, 0] = (100, 100, 120, 125), 0.95  # the zoomed view's, small: the whole view's to find
    b, sc = frame.merge(views, boxes, scores)
    assert np.allclose(sc, [0.9, 0.8])
    assert np.allclose(b[0], np.array([100, 100, 150, 160]) / views[0].scale)
    assert np.allclose(b[1], np.array([100, 100, 120, 125]) * s + np.array(tile.origin * 2))
    many = np.full((6, frame.MAX_FOUND, 4), (10, 10, 14, 14), np.float32)
    assert len(frame.merge(views, many, np.ones((6, frame.MAX_FOUND), np.float32))[0]) == frame.MAX_FOUND


def test_the_zoomed_view_is_the_picture_centred_on_a_sheet_of_its_own_paper():
    """The picture prepared at INPUT / ZOOM px, centred on a sheet ZOOM times its size whose paper is the picture's
    median (0 in the input), the mask 1 over the picture and 0 beyond; its origin maps it back."""
    g = np.random.default_rng(3).random((90, 150), dtype=np.float32)
    g[30:, :70] *= 0.2
    z = frame.zoomed(g)
    inner = frame.prepare(g, round(frame.INPUT / frame.ZOOM))
    nh, nw = round(90 * inner.scale), round(150 * inner.scale)
    sh, sw = round(nh * frame.ZOOM), round(nw * frame.ZOOM)
    x, y = (sw - nw) // 2, (sh - nh) // 2
    assert z.zoomed and z.input.shape == (2, frame.INPUT, frame.INPUT) and z.scale == inner.scale
    assert sw == frame.INPUT and 0 < x and 0 < y  # the longer side fills the input; paper on every side
    assert np.array_equal(z.input[0, y : y + nh, x : x + nw], inner.input[0, :nh, :nw])
    assert float(np.abs(z.input[0]).sum()) == float(np.abs(inner.input[0, :nh, :nw]).sum())  # paper: 0
    assert z.input[1, y : y + nh, x : x + nw].all() and z.input[1].sum() == nh * nw
    assert np.allclose(np.array(z.origin) * z.scale, (-x, -y))
    for shape in ((1, 1), (31, 7), (3000, 2000)):  # any picture: a fixed input, the picture inside it
        framed = frame.zoomed(np.random.default_rng(0).random(shape, dtype=np.float32))
        assert framed.input.shape == (2, frame.INPUT, frame.INPUT) and max(framed.origin) <= 0


def test_merging_keeps_the_zoomed_views_large_finds_mapped_back_into_the_picture():
    from mnistlab.reading.read import found_in

    g = np.zeros((200, 300), np.float32)
    views = frame.views(g)
    z = views[1]
    x, y = -np.array(z.origin) * z.scale  # the picture's top left in the zoomed input
    boxes = np.zeros((2, 3, 4), np.float32)
    scores = np.zeros((2, 3), np.float32)
    boxes[1, 0], scores[1, 0] = (x + 30, y + 10, x + 90, y + 70), 0.9  # large: kept, in the picture's px
    boxes[1, 1], scores[1, 1] = (x + 100, y + 10, x + 110, y + 20), 0.9  # small: the whole view's to find
    boxes[1, 2], scores[1, 2] = (x - 20, y + 20, x + 40, y + 80), 0.8  # cut by the picture's edge: clipped
    b, s = frame.merge(views, boxes, scores)
    assert np.allclose(s, [0.9, 0.8])
    assert np.allclose(b[0], np.array([30, 10, 90, 70]) / z.scale, atol=1e-3)
    assert frame.LARGE <= (b[0, 3] - b[0, 1]) * views[0].scale
    assert np.allclose(b[1], np.array([-20, 20, 40, 80]) / z.scale, atol=1e-3)
    kept, _ = found_in(g, views, boxes, scores)
    assert np.allclose(kept[1], np.array([0, 20, 40, 80]) / z.scale, atol=1e-3)  # clipped to the picture
    assert len(found_in(g, views, boxes, scores, large=10**6)[0]) == 0  # none large enough: none kept
