"""Make the example photos in examples/photos/ (run once; the PNGs are committed), deterministically.

Each photo-D.png is MNIST test digit D rendered by tests/photos.py as a phone photo with the effects listed below,
280 px on its longer side; seen/photo-D.png next to it is the 28x28 image the network sees for it
(`mnistlab.images.preprocess.prepare`), scaled up 4x with nearest-neighbour sampling (112x112) for viewing.

    python scripts/make_example_photos.py
    mnistlab predict examples/photos/*.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from photos import photo_like  # noqa: E402

from mnistlab.data.download import load_tensors  # noqa: E402
from mnistlab.images.preprocess import prepare  # noqa: E402

OUT = ROOT / "examples" / "photos"
SIZE = 280  # the photos' longer side, px
ZOOM = 4  # the seen images are the 28x28 input scaled up this many times (nearest neighbour)
# (MNIST test index, effects, seed): a different digit and a different mix of effects each
EXAMPLES = [
    (0, ("gradient", "shadow", "frame"), 11),  # a 7 in a box, light falling off, a shadow across it
    (1, ("edge", "lines", "blur", "colour"), 12),  # a 2 on lined paper, the table showing, out of focus
    (2, ("texture", "noise", "rotation", "perspective"), 13),  # a 1 on grainy paper, turned and slanted
    (3, ("shadow", "lines", "frame", "colour"), 14),  # a 0 in a box on lined paper, half in shadow
    (4, ("texture", "gradient", "edge", "perspective"), 15),  # a 4 near the sheet's edge
    (7, ("frame", "lines", "blur", "rotation"), 16),  # a 9 in a box across a ruled line
]


def main() -> None:
    (OUT / "seen").mkdir(parents=True, exist_ok=True)
    x, y = load_tensors(False, limit=max(i for i, _, _ in EXAMPLES) + 1)
    for index, effects, seed in EXAMPLES:
        photo = photo_like(x[index].numpy(), np.random.default_rng(seed), size=SIZE, effects=effects)
        name = f"photo-{int(y[index])}.png"
        Image.fromarray(photo).save(OUT / name, optimize=True)
        seen = np.rint(prepare(photo, name=name) * 255).astype(np.uint8)
        Image.fromarray(seen).resize((28 * ZOOM, 28 * ZOOM), Image.Resampling.NEAREST).save(OUT / "seen" / name)
        print(f"{OUT / name}: digit {int(y[index])}, {'+'.join(effects)}, {(OUT / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
