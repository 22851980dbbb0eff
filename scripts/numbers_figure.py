"""Make the README's picture of whole numbers read: six generated photos of numbers, each digit found boxed and read.

    python scripts/numbers_figure.py                 # examples/numbers/*.png (once) and images/numbers.png
    python scripts/numbers_figure.py --model runs/mine --out /tmp/numbers.png

The photos are scenes from `mnistlab.synth.scenes` (seed 2026, 480 px, one number of 4-6 digits, 40-110 px tall)
written with MNIST's TEST digits, which no finder or classifier trained on; they are made once and kept in
examples/numbers/, named by the number written. Each is read as `mnistlab predict` reads it (the bundled finder and
the model, on onnxruntime for the bundled one); the caption gives what was written and what was read. The first
six scenes of the seed are shown, whatever they read as: they are not chosen.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import mnistlab  # noqa: E402
from mnistlab.infer import output
from mnistlab.reading.read import Reader  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "examples" / "numbers"
SEED, COUNT, SIDE = 2026, 6, 480


def make_photos() -> list[Path]:
    """The example photos (made once, then read from examples/numbers/): examples/numbers/<k>-<number>.png."""
    done = sorted(FOLDER.glob("*.png"))
    if len(done) == COUNT:
        return done
    from mnistlab.data.download import load_tensors
    from mnistlab.synth import scenes

    images, labels = load_tensors(train=False)  # MNIST's test split: for showing, never for training
    sprites = scenes.load_sprites(images, labels, fonts=[])
    ranges = scenes.Ranges(
        **{**scenes.TRAIN.__dict__, "empty": 0.0, "numbers": 1, "fewest": 4, "big": 0.0}
        | {"min_height": 40.0, "max_height": 110.0}
    )
    FOLDER.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, s in enumerate(scenes.make_scenes(sprites, COUNT, np.random.default_rng(SEED), size=SIDE, r=ranges)):
        written = "".join(str(int(d)) for d in s.labels[np.argsort(s.boxes[:, 0], kind="stable")])
        path = FOLDER / f"{k}-{written}.png"
        Image.fromarray(np.rint(s.image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="a run folder or weights file (default: the bundled model)")
    p.add_argument("--out", type=Path, default=REPO / "images" / "numbers.png")
    args = p.parse_args()
    classifier = mnistlab.load(args.model, device="cpu", engine="auto")
    reader = Reader(classifier)
    paths = make_photos()
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4))
    right = 0
    for ax, path in zip(axes.flat, paths):
        reading = reader.read(path)
        written = path.stem.split("-", 1)[1]
        right += reading.number.replace(" ", "") == written
        ax.imshow(output.boxed(path, output.reading_fields(reading, classifier.classes)["digits"]))
        ax.set_title(f"written {written}  ·  read {reading.number or '(none)'}", fontsize=12)
        ax.axis("off")
    fig.suptitle(f"mnistlab predict on generated photos of MNIST test digits: {right} of {len(paths)} read whole")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"{right} of {len(paths)} read whole; wrote {args.out}")


if __name__ == "__main__":
    main()
