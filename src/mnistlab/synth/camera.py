"""What paper, light and a camera do to a scene's ink, on the whole batch with tensor ops: the background (paper of
any colour and texture, squared and ruled pages with a margin line, the sheet's edge on a desk, whiteboard,
cardboard, chalkboard), the ink's colour, soft and hard shadows, light falling off, a perspective (boxes mapped
through it), motion and defocus blur, JPEG."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

MIN_CONTRAST = 0.3  # the least grey-level difference of ink and paper (a faint pencil on paper is about that)


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 matrix taking the 4 points `src` to `dst`."""
    a = []
    for (x, y), (u, v) in zip(src, dst):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    h = np.linalg.solve(np.array(a, float), dst.reshape(-1).astype(float))
    return np.append(h, 1).reshape(3, 3)


def perspective(img: torch.Tensor, boxes: list[np.ndarray], rng: np.random.Generator, amount: float):
    """Each picture seen from a little aside: its corners moved by up to `amount` of the side; boxes mapped."""
    n, _, S, _ = img.shape
    corners = np.array([[0, 0], [S, 0], [S, S], [0, S]], float)
    hs, out = [], []
    for i in range(n):
        moved = corners + rng.uniform(-amount, amount, (4, 2)) * S * (rng.random() < 0.6)
        h_out_in = homography(corners, moved)  # an output pixel -> where it is read in the scene
        b = boxes[i]
        if len(b):
            pts = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], 1).reshape(-1, 2)
            q = np.c_[pts, np.ones(len(pts))] @ np.linalg.inv(h_out_in).T
            q = (q[:, :2] / q[:, 2:]).reshape(-1, 4, 2)
            b = np.concatenate([q.min(1), q.max(1)], 1).clip(0, S).astype(np.float32)
        out.append(b)
        hs.append(h_out_in)
    c = torch.arange(S, dtype=torch.float32) + 0.5
    p = torch.stack([c.view(1, S).expand(S, S), c.view(S, 1).expand(S, S), torch.ones(S, S)], -1).view(1, -1, 3)
    q = p @ torch.from_numpy(np.stack(hs)).float().transpose(1, 2)
    grid = (q[..., :2] / q[..., 2:] / S * 2 - 1).view(n, S, S, 2)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False), out


def noise(n: int, S: int, g: torch.Generator, cells: int) -> torch.Tensor:
    """Smooth noise in [0, 1]: `cells` random values across, upsampled bilinearly."""
    return F.interpolate(torch.rand(n, 1, cells, cells, generator=g), size=(S, S), mode="bilinear").clamp(0, 1)


def background(n: int, S: int, g: torch.Generator, kind: torch.Tensor, edges: torch.Tensor):
    """Paper, pages, desk, boards: (RGB [n, 3, S, S], whether the ink is light on it [n])."""
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    k = kind.view(n, 1, 1, 1)
    white = 0.82 + 0.18 * u(n, 1, 1, 1) - 0.06 * u(n, 3, 1, 1)
    colour = 0.45 + 0.5 * u(n, 3, 1, 1)
    card = torch.tensor([0.66, 0.52, 0.36]).view(1, 3, 1, 1) * (0.8 + 0.35 * u(n, 1, 1, 1))
    board = torch.tensor([0.16, 0.24, 0.2]).view(1, 3, 1, 1) * (0.4 + 0.9 * u(n, 1, 1, 1))
    base = torch.where(k == 5, card, torch.where(k == 6, board, torch.where(k == 7, colour, white)))
    tex = noise(n, S, g, 4) - 0.5
    fine = noise(n, S, g, 64) - 0.5
    amp = torch.where(k == 5, 0.12, torch.where(k == 6, 0.1, 0.04 * u(n, 1, 1, 1)))
    bg = base * (1 + amp * tex + amp * fine)
    ys = torch.arange(S, dtype=torch.float32).view(1, 1, S, 1)
    xs = torch.arange(S, dtype=torch.float32).view(1, 1, 1, S)
    period = 7 + 16 * u(n, 1, 1, 1)
    line = lambda c: ((c + period * u(n, 1, 1, 1)) % period < 0.6 + 0.8 * u(n, 1, 1, 1)).float()  # noqa: E731
    ink_blue = torch.tensor([0.45, 0.6, 0.85]).view(1, 3, 1, 1)
    grid = torch.maximum(line(ys), line(xs) * (k == 1)) * ((k == 1) | (k == 2))
    bg = torch.lerp(bg, ink_blue * bg, grid * (0.3 + 0.5 * u(n, 1, 1, 1)))
    margin = ((xs - S * (0.05 + 0.25 * u(n, 1, 1, 1))).abs() < 0.8).float() * (k == 2) * (u(n, 1, 1, 1) < 0.7)
    bg = torch.lerp(bg, torch.tensor([0.9, 0.3, 0.3]).view(1, 3, 1, 1), margin * 0.7)
    glare = (1 - ((xs / S - u(n, 1, 1, 1)) ** 2 + (ys / S - u(n, 1, 1, 1)) ** 2)).clamp(0, 1) ** 4 * 0.15
    bg = bg + glare * (k == 4)
    desk = torch.where(u(n, 1, 1, 1) < 0.5, 0.1 + 0.3 * u(n, 3, 1, 1), card * 0.6) * (1 + 0.3 * noise(n, S, g, 24))
    c, s_, rho = edges[:, 0].view(n, 1, 1, 1), edges[:, 1].view(n, 1, 1, 1), edges[:, 2].view(n, 1, 1, 1)
    off = ((xs * c + ys * s_ - rho) / 0.8).sigmoid() * (edges[:, 3].view(n, 1, 1, 1) > 0)
    bg = torch.lerp(bg, desk, off)
    return bg.clamp(0, 1), kind == 6


def sheet_edges(boxes: list[np.ndarray], S: int, rng: np.random.Generator, kind: np.ndarray) -> torch.Tensor:
    """Where the sheet ends (kind 3): a line beyond every digit; [n, 4] = (cos, sin, offset, on)."""
    out = np.zeros((len(boxes), 4), np.float32)
    for i, b in enumerate(boxes):
        a = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(a), math.sin(a)
        pts = np.array([[0, 0], [S, 0], [0, S], [S, S]]) if not len(b) else np.r_[b[:, :2], b[:, 2:]]
        lo = float((pts @ [c, s]).max()) + 4
        hi = float((np.array([[0, 0], [S, 0], [0, S], [S, S]]) @ [c, s]).max())
        if kind[i] == 3 and hi > lo + 4:
            out[i] = (c, s, rng.uniform(lo, hi), 1)
    return torch.from_numpy(out)


def ink(n: int, g: torch.Generator, light: torch.Tensor) -> torch.Tensor:
    """The ink's colour [n, 3, 1, 1]: black, blue, red, green, pencil grey on paper; chalk's white or yellow."""
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    palette = torch.tensor(
        [[0.05, 0.05, 0.08], [0.1, 0.15, 0.55], [0.7, 0.1, 0.12], [0.1, 0.4, 0.2], [0.35, 0.35, 0.37], [0.2, 0.1, 0.4]]
    )
    pick = palette[(u(n) * len(palette)).long().clamp(max=len(palette) - 1)] * (0.6 + 0.6 * u(n, 1))
    chalk = torch.where(u(n, 1) < 0.7, torch.tensor([0.95, 0.95, 0.92]), torch.tensor([0.95, 0.9, 0.5]))
    return torch.where(light.view(n, 1), chalk * (0.8 + 0.2 * u(n, 1)), pick).view(n, 3, 1, 1).clamp(0, 1)


def legible(ink: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """The ink colour, replaced by black or white where its grey level is within MIN_CONTRAST of the paper's."""
    grey = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    paper = (bg * grey).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    level = (ink * grey).sum(1, keepdim=True)
    fix = torch.where(paper > 0.5, torch.zeros_like(ink), torch.ones_like(ink))
    return torch.where((level - paper).abs() < MIN_CONTRAST, fix, ink)


def light(n: int, S: int, g: torch.Generator) -> torch.Tensor:
    """Light falling off across the picture times a hard or soft shadow: [n, 1, S, S] factors in (0, 1]."""
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    ys = torch.linspace(0, 1, S).view(1, 1, S, 1)
    xs = torch.linspace(0, 1, S).view(1, 1, 1, S)
    d2 = (xs - u(n, 1, 1, 1)) ** 2 + (ys - u(n, 1, 1, 1)) ** 2
    fall = 1 - 0.5 * u(n, 1, 1, 1) * d2 * (u(n, 1, 1, 1) < 0.5)
    a = u(n, 1, 1, 1) * 2 * math.pi
    dist = xs * torch.cos(a) + ys * torch.sin(a) - (u(n, 1, 1, 1) * 1.4 - 0.2)
    soft = torch.where(u(n, 1, 1, 1) < 0.5, 0.002 + 0.006 * u(n, 1, 1, 1), 0.02 + 0.1 * u(n, 1, 1, 1))
    depth = (0.15 + 0.5 * u(n, 1, 1, 1)) * (u(n, 1, 1, 1) < 0.35)
    shadow = 1 - depth * (dist / soft).sigmoid()
    return fall * shadow


def blur(img: torch.Tensor, g: torch.Generator, most: float) -> torch.Tensor:
    """Defocus (a disc) or motion (a line) blur on part of the batch, up to `most` px."""
    n = img.shape[0]
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    k = 2 * math.ceil(3 * most) + 1
    r = torch.arange(k, dtype=torch.float32) - k // 2
    yy, xx = r.view(1, k, 1), r.view(1, 1, k)
    rad = (most * u(n, 1, 1)).clamp(min=0.5)
    disc = (rad + 0.5 - (xx**2 + yy**2).sqrt()).clamp(0, 1)
    a = u(n, 1, 1) * math.pi
    length = 3 * most * u(n, 1, 1)
    along, across = xx * torch.cos(a) + yy * torch.sin(a), -xx * torch.sin(a) + yy * torch.cos(a)
    motion = (1 - across.abs()).clamp(0, 1) * (along.abs() <= length / 2 + 0.5)
    which = u(n, 1, 1)
    centre = (xx == 0) & (yy == 0)
    kern = torch.where(which < 0.2, disc, torch.where(which < 0.35, motion, centre.float()))
    kern = kern / kern.sum((1, 2), keepdim=True)
    picked = torch.nonzero(which.view(n) < 0.35).view(-1)
    if picked.numel() == 0:
        return img
    sub = img[picked]
    m, c, S, _ = sub.shape
    w = kern[picked].repeat_interleave(c, 0).unsqueeze(1)
    out = F.conv2d(F.pad(sub.reshape(1, m * c, S, S), (k // 2,) * 4, mode="replicate"), w, groups=m * c)
    img = img.clone()
    img[picked] = out.view(m, c, S, S)
    return img


def jpeg(img: torch.Tensor, rng: np.random.Generator, share: float = 0.3) -> torch.Tensor:
    """Part of the batch through JPEG at a quality from 15 to 85."""
    for i in np.flatnonzero(rng.random(img.shape[0]) < share):
        a = (img[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=int(rng.integers(15, 86)))
        img[i] = torch.from_numpy(np.asarray(Image.open(buf), np.float32) / 255).permute(2, 0, 1)
    return img
