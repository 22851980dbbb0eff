"""Draw 16 synthetic scenes (`mnistlab.synth.scenes`) with their digits' boxes and classes: a contact sheet to
look at what the finder trains on.

    python scripts/scenes_sheet.py --out images/scenes.png --seed 3
    python scripts/scenes_sheet.py --out /tmp/found.png --wide --seed 9 --finder src/mnistlab/weights/finder.safetensors

With --finder, each scene is also read (`reading.read`): found boxes in green, the number read at the bottom.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mnistlab.synth import scenes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("images/scenes.png"))
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--wide", action="store_true", help="the validation ranges (scenes.WIDE)")
    p.add_argument("--finder", type=Path, default=None, help="read each scene with this finder too")
    a = p.parse_args()
    reader = None
    if a.finder:
        import mnistlab
        from mnistlab.reading.read import Reader, load_finder

        reader = Reader(mnistlab.load(device="cpu"), load_finder(a.finder)[0])
    made = scenes.make_scenes(
        scenes.load_sprites(), 16, np.random.default_rng(a.seed), r=scenes.WIDE if a.wide else scenes.TRAIN
    )
    S = scenes.SIZE
    sheet = Image.new("RGB", (4 * S + 12, 4 * S + 12), (255, 255, 255))
    for i, s in enumerate(made):
        tile = Image.fromarray((s.image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        draw = ImageDraw.Draw(tile)
        for box, label in zip(s.boxes.tolist(), s.labels.tolist()):
            draw.rectangle(box, outline=(255, 0, 200))
            draw.text((box[0] + 1, max(0, box[1] - 11)), str(label), fill=(255, 0, 200))
        if reader is not None:
            r = reader.read(s.image)
            for d in r.digits:
                draw.rectangle(d.box, outline=(0, 220, 0))
            draw.rectangle((0, S - 14, S, S), fill=(0, 0, 0))
            draw.text((3, S - 13), f"read: {r.number}", fill=(0, 255, 0))
        sheet.paste(tile, ((i % 4) * (S + 4), (i // 4) * (S + 4)))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
