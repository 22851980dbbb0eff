"""The `robust` recipe's on-device augmentation: what real inputs do to a digit, and not-digits to say "no" to.

`RobustAugment` works on a whole batch with tensor ops only (no Python loop over images, no host sync), so it
runs inside the CUDA graph as `Augment` does. Each image gets a random affine plus elastic distortion (larger
shifts, so that some digits are cut by the image's edge), and each of the corruptions below with its own
probability, so that part of every batch stays close to clean MNIST (which keeps the clean accuracy):

- stroke width: a 3x3 max-pool (thicker) or min-pool (thinner);
- occlusion: a rectangle erased to the background; marks: straight lines crossing or touching the digit, ruled
  lines and grids;
- blur (a Gaussian of random width), low contrast, uneven light (a ramp), sensor noise (Gaussian) and impulse
  noise (salt and pepper).

Outlier exposure: the last `outliers` fraction of every batch is replaced by images that are not one digit, with
the label -1; `criterion` gives them a uniform target, so the network learns to spread its probability over them.
They are letters and symbols rendered from fonts (none shaped like a digit) or drawn with a pen, textures and
noise, blank paper, ruled lines alone, fragments of digits (a quarter of one, enlarged) and pairs of digits side
by side, and they get the same corruptions as the digits.

The corruption suite of `benchmarks/robustness.py` is deliberately not this: it uses other kinds (shot noise,
motion blur, fog, zig-zags, edges only...) or other strengths, so that it measures how the model generalises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from mnistlab.data.notdigits import not_digit_bank


def _gauss_kernel(sigma: float) -> torch.Tensor:
    r = torch.arange(-2, 3, dtype=torch.float32)
    k = torch.exp(-(r**2) / (2 * sigma**2))
    k = torch.outer(k, k)
    return (k / k.sum()).view(1, 1, 5, 5)


@dataclass(frozen=True)
class RobustAugment:
    """The robust recipe's augmentation (see the module's docstring). Call it with a normalised batch and its
    labels; it returns both, the last `outliers` fraction of rows replaced by not-digits labelled -1."""

    mean: float
    std: float
    degrees: float = 20.0
    scale: float = 0.2
    translate: float = 3.0
    outliers: float = 0.125
    corrupt: bool = True  # False: the plain affine and the not-digits only (no elastic, strokes, marks, noise...)
    glyphs: torch.Tensor = field(default_factory=not_digit_bank, repr=False)

    def __call__(self, x, y, generator=None, *, rank: int = 0, world_size: int = 1):
        b = x.shape[0]
        dev = x.device
        bank = self.glyphs.to(dev)

        def rand(*shape):
            return torch.rand(*shape, device=dev, generator=generator, dtype=torch.float32)

        v = (x.float() * self.std + self.mean).clamp(0, 1)
        k = min(b - 1, round(self.outliers * b)) if b > 1 else 0
        if k > 0:
            v = torch.cat([v[: b - k], self._outliers(v, k, bank, rand)])
            y = torch.cat([y[: b - k], torch.full((k,), -1, dtype=y.dtype, device=dev)])
        v = self._geometry(v, rand)
        if self.corrupt:
            v = self._marks(v, rand)
            v = self._photometric(v, rand)
        return ((v.clamp(0, 1) - self.mean) / self.std).to(x.dtype), y

    # ----------------------------------------------------------------------------------------------------------

    def _geometry(self, v, rand):
        """Affine (rotation, scale, shear, shift: 1 in 8 shifted far enough to cut the digit) + elastic."""
        b = v.shape[0]
        r = rand(b, 8) * 2 - 1
        if not self.corrupt:  # rotation, scale and shift only: no shear, elastic field, stroke change or far shift
            keep = torch.tensor([1, 1, 0, 1, 1, 0, 0, 0], device=v.device)
            r = r * keep + torch.tensor([0, 0, 0, 0, 0, -1, 1, -1], device=v.device) * (1 - keep)
        angle = r[:, 0] * math.radians(self.degrees)
        s = 1 + r[:, 1] * self.scale
        shear = r[:, 2] * 0.3
        far = (r[:, 7] > 0.75).float() * 2 + 1  # a few shifts 3x as far: part of the digit leaves the field
        tx, ty = r[:, 3] * self.translate / 14 * far, r[:, 4] * self.translate / 14 * far
        cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
        theta = torch.stack([torch.stack([cos, -sin + shear, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(v.shape), align_corners=False)
        # elastic: a smooth random displacement field (4x4 knots, bicubic), on half the images
        field_ = (rand(b, 2, 4, 4) * 2 - 1) * 0.12 * (r[:, 5] > 0).float().view(b, 1, 1, 1)
        grid = grid + F.interpolate(field_, size=v.shape[-2:], mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
        v = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # stroke width: thicker (dilation) on 1 in 5, thinner (erosion, half strength) on 1 in 8
        u = (r[:, 6] + 1) / 2
        thick = F.max_pool2d(v, 3, 1, 1)
        thin = 0.5 * v + 0.5 * -F.max_pool2d(-v, 3, 1, 1)
        u = u.view(b, 1, 1, 1)
        return torch.where(u < 0.2, thick, torch.where(u < 0.325, thin, v))

    def _marks(self, v, rand):
        """Erasing, lines crossing or touching the digit, ruled lines and grids."""
        b, _, h, w = v.shape
        r = rand(b, 12)
        yy = torch.arange(h, device=v.device, dtype=torch.float32).view(1, h, 1)
        xx = torch.arange(w, device=v.device, dtype=torch.float32).view(1, 1, w)
        # erase a rectangle of 4-12 px (1 in 5)
        cy, cx = r[:, 0:1, None] * h, r[:, 1:2, None] * w
        hh, hw = 2 + r[:, 2:3, None] * 4, 2 + r[:, 3:4, None] * 4
        box = ((yy - cy).abs() < hh) & ((xx - cx).abs() < hw) & (r[:, 4:5, None] < 0.2)
        v = v.masked_fill(box.unsqueeze(1), 0.0)
        # one straight line through the field (1 in 4), 1-3 px wide, any angle, through the middle region
        ang = r[:, 5:6, None] * math.pi
        rho = (r[:, 6:7, None] - 0.5) * 16
        d = ((xx - 13.5) * torch.cos(ang) + (yy - 13.5) * torch.sin(ang) - rho).abs()
        width = 0.5 + r[:, 7:8, None] * 1.2
        line = (1 - (d - width).clamp(min=0)).clamp(0, 1) * (0.5 + 0.5 * r[:, 8:9, None])
        v = torch.maximum(v, (line * (r[:, 9:10, None] < 0.25)).unsqueeze(1))
        # ruled lines (1 in 10) or a grid (1 in 20): thin, faint, periodic
        period = 5 + r[:, 10:11, None] * 6
        phase = r[:, 11:12, None] * period
        rows = ((yy + phase) % period < 1).float()
        cols = ((xx + phase) % period < 1).float()
        sel = r[:, 4:5, None]  # reused draw, from the erase's unused range
        ruled = rows * ((sel > 0.6) & (sel < 0.7)) + torch.maximum(rows, cols) * ((sel >= 0.7) & (sel < 0.75))
        return torch.maximum(v, (0.4 * ruled).unsqueeze(1))

    def _photometric(self, v, rand):
        """Blur, low contrast, uneven light, Gaussian and impulse noise, each on part of the batch."""
        b, _, h, w = v.shape
        dev = v.device
        r = rand(b, 9).view(b, 9, 1, 1)
        soft = F.conv2d(F.pad(v, (2, 2, 2, 2), mode="replicate"), _gauss_kernel(1.0).to(dev))
        softer = F.conv2d(F.pad(soft, (2, 2, 2, 2), mode="replicate"), _gauss_kernel(1.0).to(dev))
        amount = r[:, 0:1] * (r[:, 1:2] < 0.3)
        v = torch.lerp(v, torch.where(r[:, 2:3] < 0.5, soft, softer), amount)
        # low contrast: ink to 30-100% of its level over a background of 0-40% (1 in 4)
        low = r[:, 3:4] < 0.25
        contrast = torch.where(low, 0.3 + 0.7 * r[:, 4:5], torch.ones_like(r[:, 4:5]))
        floor = torch.where(low, 0.4 * r[:, 5:6], torch.zeros_like(r[:, 5:6]))
        v = floor + v * contrast * (1 - floor)
        # uneven light: a linear ramp of up to 30% across the field (1 in 4)
        yy = torch.linspace(-1, 1, h, device=dev).view(1, 1, h, 1)
        xx = torch.linspace(-1, 1, w, device=dev).view(1, 1, 1, w)
        a = r[:, 6:7] * 2 * math.pi
        ramp = (torch.cos(a) * xx + torch.sin(a) * yy) * 0.15 * (r[:, 7:8] < 0.25)
        v = v + ramp
        # noise: Gaussian of sigma 0-0.25 (1 in 3), or salt and pepper at 0-6% (1 in 8)
        kind = r[:, 8:9]
        sigma = 0.25 * rand(b, 1, 1, 1) * (kind < 0.33)
        v = v + sigma * _normal(v, rand)
        density = 0.06 * rand(b, 1, 1, 1) * ((kind >= 0.33) & (kind < 0.455))
        u = rand(*v.shape)
        v = torch.where(u < density / 2, torch.zeros_like(v), v)
        v = torch.where(u > 1 - density / 2, torch.ones_like(v), v)
        return v

    def _outliers(self, v, k, bank, rand):
        """k not-digits, [k, 1, 28, 28] in [0, 1], made from the bank and from the batch's own digits."""
        b = v.shape[0]
        dev = v.device
        r = rand(k, 6)
        kind = (r[:, 0] * 6).long()  # 0 glyph, 1 texture, 2 blank or lines, 3 fragment, 4 and 5 a pair
        glyph = bank[(r[:, 1] * bank.shape[0]).long().clamp(max=bank.shape[0] - 1)].unsqueeze(1)
        # texture: smooth noise at a random scale, sometimes thresholded into blobs
        coarse = F.interpolate(rand(k, 1, 7, 7), size=(28, 28), mode="bicubic", align_corners=False)
        fine = F.interpolate(rand(k, 1, 14, 14), size=(28, 28), mode="bilinear", align_corners=False)
        tex = torch.where(r[:, 2:3, None, None] < 0.5, coarse, fine)
        tex = torch.where(r[:, 3:4, None, None] < 0.5, (tex > 0.6).float(), tex * r[:, 4:5, None, None])
        # blank paper, or ruled lines alone
        yy = torch.arange(28, device=dev, dtype=torch.float32).view(1, 1, 28, 1)
        period = 5 + (r[:, 5:6, None, None] * 8)
        lines = ((yy % period) < 1.2).float().expand(k, 1, 28, 28) * (r[:, 4:5, None, None] > 0.5)
        # fragments: a quarter of a digit from the batch, enlarged 2x
        src = v[(r[:, 1] * b).long().clamp(max=b - 1)]
        off = (rand(k, 2) - 0.5) * 1.0
        one = torch.ones(k, device=dev)
        zero = torch.zeros(k, device=dev)
        theta = torch.stack(
            [torch.stack([one * 0.5, zero, off[:, 0]], 1), torch.stack([zero, one * 0.5, off[:, 1]], 1)], 1
        )
        frag = F.grid_sample(src, F.affine_grid(theta, [k, 1, 28, 28], align_corners=False), align_corners=False)
        # pairs: two digits side by side, as a two-digit number's ink box is scaled to 20 px wide
        other = v[(r[:, 2] * b).long().clamp(max=b - 1)]
        sx = one * 2.0
        left = torch.stack([torch.stack([sx, zero, one * 1.0], 1), torch.stack([zero, one * 1.6, zero], 1)], 1)
        right = torch.stack([torch.stack([sx, zero, -one * 1.0], 1), torch.stack([zero, one * 1.6, zero], 1)], 1)
        grid = F.affine_grid
        pair = torch.maximum(
            F.grid_sample(src, grid(left, [k, 1, 28, 28], align_corners=False), align_corners=False),
            F.grid_sample(other, grid(right, [k, 1, 28, 28], align_corners=False), align_corners=False),
        )
        kind = kind.view(k, 1, 1, 1)
        out = torch.where(kind == 0, glyph, tex)
        out = torch.where(kind == 2, lines, out)
        out = torch.where(kind == 3, frag, out)
        return torch.where(kind >= 4, pair, out)


def _normal(v, rand):
    """Standard normal noise shaped like `v`, from the same uniform draws (Box-Muller), so that one generator
    (or the CUDA graph's default one) gives every random number of the batch."""
    u1, u2 = rand(*v.shape).clamp(min=1e-7), rand(*v.shape)
    return torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)


def criterion(output, y, *, smoothing: float = 0.1, weight: float = 0.5):
    """Cross-entropy (label-smoothed) on the digits; on the not-digits (label -1), `weight` times the
    cross-entropy against the uniform distribution, i.e. minus the mean log-probability. No boolean indexing, so
    the shape never depends on the data (CUDA graphs)."""
    digit = y >= 0
    ce = F.cross_entropy(output, y.clamp(min=0), label_smoothing=smoothing, reduction="none")
    uniform = -output.log_softmax(1).mean(1)
    return torch.where(digit, ce, weight * uniform).mean()
