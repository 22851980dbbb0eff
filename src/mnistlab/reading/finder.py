"""The digit finder: a small fully convolutional CenterNet that gives every digit's box in a picture.

Any picture is made grey, scaled so that its longer side is INPUT px and padded to INPUT x INPUT (`prepare`); the
network sees two channels: the grey level less the picture's median (ink is then signed: dark ink on paper below
zero, chalk on a board above, both polarities alike) and a mask of where the picture is (1) or padding (0). Five
strided stages (to stride 32) and a light top-down path back to stride 4 give, on a 64 x 64 grid: a "digit centre
here" heatmap, the box's log width and height, and the centre's sub-cell offset. Decoding keeps the peaks of the
heatmap (a 3x3 max-pool), the best MAX_FOUND of them: its cost is fixed by the input size, whatever the picture
holds. Trained on `scenes` by `scripts/train_finder.py` with `loss` (focal loss on the heatmap, L1 on the rest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INPUT = 256  # the finder's input side: a picture's longer side is scaled to it (a digit under ~10 px is then lost)
STRIDE = 4  # output cells per input px (a 64 x 64 grid at INPUT 256): two cells across the narrowest digit kept
MAX_FOUND = 64  # the most peaks decoded per picture: more digits than any page of numbers holds at INPUT px
# The least heatmap peak called a digit: the best F1 (P 0.81, R 0.86) of 0.30-0.60 on the generated validation
# scenes (scenes.WIDE, seed 1001; never MNIST's test split)
DETECT = 0.45
GREY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as Pillow's convert("L")


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )  # fmt: skip


class Finder(nn.Module):
    """[B, 2, H, W] (H, W multiples of 32) -> heatmap logits [B, 1, H/4, W/4], log size [B, 2, ...] (log px of
    the box's width and height at the input's scale), offset [B, 2, ...] (the centre within its cell, in cells)."""

    def __init__(self, widths=(16, 24, 40, 64, 96), head: int = 32):
        super().__init__()
        w = widths
        self.stem = nn.Sequential(nn.Conv2d(2, w[0], 3, 2, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(True))
        self.s4, self.s8 = _block(w[0], w[1], 2), _block(w[1], w[2], 2)
        self.s16, self.s32 = _block(w[2], w[3], 2), _block(w[3], w[4], 2)
        self.lat = nn.ModuleList(nn.Conv2d(c, head, 1) for c in (w[1], w[2], w[3], w[4]))
        self.smooth = nn.Sequential(
            nn.Conv2d(head, head, 3, 1, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU(True),
        )  # fmt: skip
        self.heat, self.size, self.offset = nn.Conv2d(head, 1, 1), nn.Conv2d(head, 2, 1), nn.Conv2d(head, 2, 1)
        assert self.heat.bias is not None and self.size.bias is not None
        nn.init.constant_(self.heat.bias, -4.0)  # start near "no digit" everywhere (the focal loss's prior)
        nn.init.constant_(self.size.bias, 3.0)  # ~20 px

    def forward(self, x: torch.Tensor):
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        f16 = self.s16(f8)
        f32 = self.s32(f16)
        top = self.lat[3](f32)
        for lat, f in ((self.lat[2], f16), (self.lat[1], f8), (self.lat[0], f4)):
            top = lat(f) + F.interpolate(top, size=f.shape[-2:], mode="nearest")
        t = self.smooth(top)
        return self.heat(t), self.size(t), self.offset(t)


def parameter_bytes(model: nn.Module) -> int:
    """The float32 size of the weights (parameters and BatchNorm's running statistics)."""
    return 4 * sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())


@dataclass(frozen=True)
class Framed:
    """A picture as the finder sees it: the input [2, INPUT, INPUT] and how to map boxes back (x / scale)."""

    input: torch.Tensor
    scale: float  # input px per picture px


def grey(image) -> np.ndarray:
    """A picture (HxW or HxWxC array, uint8 or floats in [0, 1]; a CHW tensor) as float32 grey in [0, 1]."""
    a = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if isinstance(image, torch.Tensor) and a.ndim == 3:
        a = a.transpose(1, 2, 0)
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    if a.ndim == 3:
        a = a[..., :3] @ np.array(GREY[: a.shape[2]], np.float32) / sum(GREY[: a.shape[2]])
    return a


def prepare(g: np.ndarray, size: int = INPUT) -> Framed:
    """Grey [H, W] in [0, 1] -> the finder's input: scaled (area-averaged) so the longer side is `size`, at the
    top left of a `size` x `size` field; channels: grey less its median, and the picture's mask."""
    h, w = g.shape
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    t = torch.from_numpy(np.ascontiguousarray(g, np.float32)).view(1, 1, h, w)
    small = F.interpolate(t, size=(nh, nw), mode="area" if scale < 1 else "bilinear")[0, 0]
    x = torch.zeros(2, size, size)
    x[0, :nh, :nw] = small - small.median()
    x[1, :nh, :nw] = 1.0
    return Framed(x, scale)


def decode(heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, k: int = MAX_FOUND):
    """The network's outputs for a batch -> per picture (boxes [k, 4] x0 y0 x1 y1 in input px, scores [k]): the
    top `k` local maxima of the heatmap (3x3 max-pool), whatever their score (filter by DETECT after)."""
    p = heat.sigmoid()
    peaks = p * (F.max_pool2d(p, 3, 1, 1) == p)
    b, _, gh, gw = p.shape
    scores, idx = peaks.view(b, -1).topk(min(k, gh * gw))
    ys, xs = (idx // gw).float(), (idx % gw).float()
    take = lambda t: t.view(b, 2, -1).gather(2, idx.unsqueeze(1).expand(b, 2, idx.shape[1]))  # noqa: E731
    off, wh = take(offset), take(size).exp()
    cx, cy = (xs + off[:, 0]) * STRIDE, (ys + off[:, 1]) * STRIDE
    boxes = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], -1)
    return boxes, scores


def targets(boxes: list[np.ndarray], grid: int):
    """Training targets for a batch of pictures' boxes (input px): heatmap [B, 1, g, g] (an elliptic Gaussian at
    each centre, wide as a sixth of the box), log size and offset [B, 2, g, g], and where they count [B, 1, g, g]."""
    b = len(boxes)
    heat = torch.zeros(b, 1, grid, grid)
    size, off = torch.zeros(b, 2, grid, grid), torch.zeros(b, 2, grid, grid)
    mask = torch.zeros(b, 1, grid, grid)
    r = torch.arange(grid, dtype=torch.float32)
    for i, bx in enumerate(boxes):
        if not len(bx):
            continue
        t = torch.from_numpy(np.asarray(bx, np.float32))
        w, h = (t[:, 2] - t[:, 0]).clamp(min=1), (t[:, 3] - t[:, 1]).clamp(min=1)
        cx, cy = (t[:, 0] + t[:, 2]) / 2 / STRIDE, (t[:, 1] + t[:, 3]) / 2 / STRIDE
        ix, iy = cx.long().clamp(0, grid - 1), cy.long().clamp(0, grid - 1)
        sx, sy = (w / STRIDE / 6).clamp(min=0.5), (h / STRIDE / 6).clamp(min=0.5)
        gx = ((r.view(1, -1) - ix.view(-1, 1).float()) / sx.view(-1, 1)) ** 2
        gy = ((r.view(1, -1) - iy.view(-1, 1).float()) / sy.view(-1, 1)) ** 2
        heat[i, 0] = torch.exp(-(gy.unsqueeze(2) + gx.unsqueeze(1)) / 2).amax(0)
        heat[i, 0, iy, ix] = 1.0
        size[i, :, iy, ix] = torch.stack([w.log(), h.log()])
        off[i, :, iy, ix] = torch.stack([cx - ix, cy - iy])
        mask[i, 0, iy, ix] = 1.0
    return heat, size, off, mask


def loss(outputs, target):
    """CenterNet's loss: the penalty-reduced focal loss on the heatmap (alpha 2, beta 4) per centre, plus L1 on the
    log size and the offset at the centres. Returns (total, parts as floats)."""
    logits, size, off = outputs
    heat, tsize, toff, mask = target
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1).float()
    focal_pos = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    focal_neg = -(torch.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - pos)).sum()
    n = pos.sum().clamp(min=1)
    focal = (focal_pos + focal_neg) / n
    l_size = ((size - tsize).abs() * mask).sum() / n
    l_off = ((off - toff).abs() * mask).sum() / n
    total = focal + l_size + l_off
    return total, {"focal": focal.item(), "size": l_size.item(), "offset": l_off.item()}


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes a [N, 4] and b [M, 4]: [N, M]."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), -1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], -1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def match(found: np.ndarray, truth: np.ndarray, least: float = 0.5) -> list[tuple[int, int]]:
    """Pairs (found i, true j), greedily by IoU (each box in one pair at most), with IoU >= `least`."""
    if not len(found) or not len(truth):
        return []
    m = iou(found, truth)
    pairs: list[tuple[int, int]] = []
    for flat in np.argsort(-m, axis=None):
        i, j = divmod(int(flat), m.shape[1])
        if m[i, j] < least:
            break
        if all(i != p for p, _ in pairs) and all(j != q for _, q in pairs):
            pairs.append((i, j))
    return pairs
