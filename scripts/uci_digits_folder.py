"""Write the UCI handwritten digits that scikit-learn ships (1,797 scans, 8x8) as a folder dataset: OUT/<digit>/N.png.

A real dataset that is not MNIST (other writers, other scanner, 8x8 at 17 grey levels), for trying
`mnistlab train --dataset folder:OUT` and fine-tuning with `--init`. Needs `pip install scikit-learn` (not a
mnistlab dependency). Each image is saved 4x larger (32x32, bilinear) as dark ink on white paper, as a scan would be.

    python scripts/uci_digits_folder.py /tmp/uci-digits
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder to write (one sub-folder per digit)")
    parser.add_argument("--scale", type=int, default=4, help="upscaling factor of the 8x8 scans (default: 4)")
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = args.out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        paper = (255 - image * (255 / 16)).astype(np.uint8)  # 0..16 ink -> dark ink on white
        side = 8 * args.scale
        Image.fromarray(paper).resize((side, side), Image.Resampling.BILINEAR).save(folder / f"{i:04d}.png")
    print(f"wrote {len(digits.target)} images in 10 classes to {args.out}")


if __name__ == "__main__":
    main()
