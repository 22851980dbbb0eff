"""The digit finder: a small fully convolutional CenterNet (torch) that gives every digit's box in a picture.

It reads a picture as `frame.prepare` makes it (grey less its median, and the picture's mask, on an INPUT x INPUT
field). Five strided stages (to stride 32) and a light top-down path back to stride 4 give, on a 64 x 64 grid: a
"digit centre here" heatmap, the box's log width and height, and the centre's sub-cell offset, which
`frame.decode` turns into boxes. Trained on `scenes` by `scripts/train_finder.py` with `targets` and `loss` (focal
loss on the heatmap, L1 on the rest); `export.onnx_export.export_finder` writes the copy that onnxruntime runs
(`finder_onnx`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnistlab.reading.frame import STRIDE


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
