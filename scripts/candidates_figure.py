"""Draw the README's picture of the candidate readings: for a few images, each candidate the preparation proposed,
its digit score and answer, and which one won.

    python scripts/candidates_figure.py            # images/candidates.png, with the bundled model
    python scripts/candidates_figure.py --model runs/mine --out /tmp/candidates.png

The images are rendered from MNIST test digits (tests/realsets.py, tests/photos.py) and two pen-drawn shapes that
the training never saw (a tick, an R).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import photos  # noqa: E402
import realsets  # noqa: E402

import mnistlab  # noqa: E402
from mnistlab.calibration import digit_score  # noqa: E402
from mnistlab.data.download import default_data_dir, load_tensors  # noqa: E402
from mnistlab.images.gray import array_to_gray  # noqa: E402
from mnistlab.images.preprocess import candidates  # noqa: E402


def examples(x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    return [
        ("tight crop", realsets.tight(x[0], rng)),
        ("squared paper", realsets.notebook(x[1], rng, "squared")),
        ("ruled + margin", realsets.notebook(x[2], rng, "ruled", margin=True)),
        ("photo", photos.photo_like(x[3], np.random.default_rng(7))),
        ("soft scan", realsets.soft_scan(x[4], rng)),
        ("drawn tick", realsets.draw_strokes(realsets.HELD_OUT_DRAWN["tick"], rng)),
        ("drawn 'R'", realsets.draw_strokes(realsets.HELD_OUT_DRAWN["R"], rng)),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="run folder or .safetensors (default: the bundled weights)")
    p.add_argument("--out", default=str(REPO / "images" / "candidates.png"), help="where to write the PNG")
    args = p.parse_args()
    clf = mnistlab.load(args.model, device="cpu")
    x, _ = load_tensors(False, default_data_dir(), limit=8)
    rows = examples(x.numpy())
    found = [candidates(img) for _, img in rows]
    cols = 1 + max(len(f) for f in found)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols, 1.75 * len(rows)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for (name, img), cands, ax in zip(rows, found, axes):
        probs = clf.probabilities(np.stack([c.seen for c in cands]))
        winner = clf.prediction(probs, cands)
        ax[0].imshow(array_to_gray(np.asarray(img), name), cmap="gray", vmin=0, vmax=1)
        answer = winner.label if winner.is_digit else "not a digit"
        ax[0].set_title(f"{name}\n→ {answer}", fontsize=8)
        for j, (c, score, row) in enumerate(zip(cands, digit_score(probs), probs), start=1):
            ax[j].imshow(c.seen, cmap="gray", vmin=0, vmax=1)
            won = c.kind == winner.candidate and np.array_equal(c.seen, winner.seen)
            label = clf.classes[int(row.argmax())]
            ax[j].set_title(f"{c.kind}\n{label}, score {float(score):.2f}", fontsize=7, color="C2" if won else "k",
                            fontweight="bold" if won else "normal")  # fmt: skip
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
