"""Make the example images in examples/digits/ (run once; the PNGs are committed).

- seven_pen.png: a "7" drawn with strokes, dark ink on off-white paper, 240x300, off-centre
- three_mnist_big.png: MNIST test image #18 (a 3), inverted to dark-on-light and scaled to 200x200 with a margin
- two_on_transparent.png: a "2" drawn in black on a transparent RGBA background
- blank.png: an empty sheet (predict must refuse it, not guess)
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mnistlab.data.download import load_tensors

OUT = Path(__file__).parent / "digits"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    img = Image.new("RGB", (240, 300), (236, 232, 220))
    d = ImageDraw.Draw(img)
    d.line([(70, 80), (190, 75), (120, 250)], fill=(30, 30, 40), width=14, joint="curve")
    d.line([(105, 165), (165, 160)], fill=(30, 30, 40), width=10)
    img.save(OUT / "seven_pen.png")

    x, y = load_tensors(False, limit=19)
    assert int(y[18]) == 3
    digit = Image.fromarray(255 - x[18].numpy()).resize((160, 160), Image.Resampling.BICUBIC)
    sheet = Image.new("L", (200, 200), 255)
    sheet.paste(digit, (30, 12))
    sheet.save(OUT / "three_mnist_big.png")

    rgba = Image.new("RGBA", (120, 120), (0, 0, 0, 0))
    d = ImageDraw.Draw(rgba)
    d.arc([(30, 15), (90, 70)], start=180, end=20, fill=(0, 0, 0, 255), width=9)
    d.line([(87, 52), (32, 102), (95, 100)], fill=(0, 0, 0, 255), width=9)
    rgba.save(OUT / "two_on_transparent.png")

    Image.fromarray(np.full((64, 64), 250, np.uint8)).save(OUT / "blank.png")


if __name__ == "__main__":
    main()
