"""Robustness report: how a model reads corrupted digits, photo-like and real-digit-like images, and not-digits.

    python benchmarks/robustness.py                         # the bundled model
    python benchmarks/robustness.py --model runs/mine -n 300 --json benchmarks/results/robustness-mine.json

Everything is rendered here from the MNIST test set (the first N digits; the corruptions from the first 4N) and
from fonts, so anyone can rerun it. The corruption suite is the project's own and deliberately not what the robust
recipe trains on (robust.py): other kinds, or the same kinds at other strengths. A refused image (no ink found)
or a "not a digit" answer counts as wrong for digits ("read right"; "its best guess right" ignores the verdict, and
the refused and not-a-digit shares are given on their own), and a refusal as rejected (digit score 0) for
not-digits. Works with older mnistlab versions too (no digit score: the top probability stands in, and every image
is a digit).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import photos  # noqa: E402
import realsets  # noqa: E402

import mnistlab  # noqa: E402
from mnistlab.data.download import load_tensors  # noqa: E402
from mnistlab.errors import UserError  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")  # Debian's dataset-fashion-mnist


# --------------------------------------------------------------------------------------------------------------
# The corruption suite, on 28x28 digits in [0, 1] (white on black), as MNIST-C-like kinds of damage


def shot_noise(x, rng):
    return rng.poisson(x * 12) / 12


def impulse_noise(x, rng):
    u = rng.random(x.shape)
    return np.where(u < 0.05, 0.0, np.where(u > 0.95, 1.0, x))


def motion_blur(x, rng):
    k = np.zeros((7, 7))
    k[3] = 1 / 7
    return ndimage.convolve(x, ndimage.rotate(k, rng.uniform(0, 180), reshape=False, order=1) * 1.0, mode="constant")


def fog(x, rng):
    f = ndimage.zoom(rng.random((4, 4)), 7, order=3)[:28, :28]
    return 0.5 * x + 0.45 * np.clip(f, 0, 1)


def stripes(x, rng):
    y, c = x.copy(), int(rng.integers(0, 9))
    y[:, c::9] = 1 - y[:, c::9]  # every 9th column inverted
    return y


def zigzag(x, rng):
    y = x.copy()
    r0 = int(rng.integers(6, 22))
    for c in range(28):
        y[np.clip(r0 + (c % 8 if c % 16 < 8 else 8 - c % 8) - 4, 0, 27), c] = 1.0
    return y


def edges_only(x, rng):
    e = np.hypot(ndimage.sobel(x, 0), ndimage.sobel(x, 1))
    return np.clip(e / max(e.max(), 1e-6), 0, 1)


def dotted_line(x, rng):
    y = x.copy()
    a, b = rng.integers(0, 28, 2), rng.integers(0, 28, 2)
    for t in np.linspace(0, 1, 14):
        r, c = np.round(a + t * (b - a)).astype(int)
        y[r, c] = 1.0
    return y


def low_contrast(x, rng):
    return 0.3 + 0.25 * x


CORRUPTIONS = {f.__name__.replace("_", " "): f for f in (
    shot_noise, impulse_noise, motion_blur, fog, stripes, zigzag, edges_only, dotted_line, low_contrast
)}  # fmt: skip


# --------------------------------------------------------------------------------------------------------------


def read(clf, images) -> list[tuple[int | None, float, bool]]:
    """(digit or None if refused, digit score, is_digit) per image."""
    out = []
    for r in clf.predict_each(list(images)):
        if isinstance(r, UserError):
            out.append((None, 0.0, False))
        else:
            out.append((r.digit, getattr(r, "digit_score", max(r.probabilities)), getattr(r, "is_digit", True)))
    return out


def accuracy(results, labels) -> dict:
    top = [d == int(y) for (d, _, _), y in zip(results, labels)]
    right = [t and ok for t, (_, _, ok) in zip(top, results)]  # "not a digit" is not a right answer
    refused = [d is None for d, _, _ in results]
    rejected = [d is not None and not ok for d, _, ok in results]
    return {
        "accuracy": float(np.mean(right)),
        "top_right": float(np.mean(top)),
        "refused": float(np.mean(refused)),
        "not_digit": float(np.mean(rejected)),
    }


def auroc(pos: list[float], neg: list[float]) -> float:
    """P(a digit scores above a not-digit), ties counted half."""
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float((p > n).mean() + 0.5 * (p == n).mean())


def ece(clf, x, y) -> float | None:
    """The expected calibration error of the classifier's probabilities (None before mnistlab had calibration)."""
    try:
        import torch

        from mnistlab import calibration
    except ImportError:
        return None
    return calibration.ece(clf.probabilities(x), torch.as_tensor(y))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a run folder or .safetensors file (default: the bundled model)")
    p.add_argument("-n", type=int, default=300, help="digits per rendered set (default: 300)")
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    args = p.parse_args(argv)
    t0 = time.time()
    clf = mnistlab.load(args.model, device="cpu")
    x, y = load_tensors(False, None, limit=4 * args.n)
    x, y = x.numpy(), y.numpy()
    report: dict = {
        "model": args.model or "bundled",
        "n": args.n,
        "card": {k: clf.card.get(k) for k in ("test_acc", "temperature", "digit_threshold")},
    }
    x01 = x.astype(np.float32) / 255
    clean = read(clf, list(x01))
    report["clean MNIST test (first 4N)"] = accuracy(clean, y)
    rng = np.random.default_rng(0)
    report["corruptions"] = {
        name: accuracy(read(clf, [np.clip(f(d, rng), 0, 1).astype(np.float32) for d in x01]), y)
        for name, f in CORRUPTIONS.items()
    }
    n = args.n
    sets = {}
    for name, make in realsets.MAKERS.items():
        rng = np.random.default_rng(1)
        sets[name] = accuracy(read(clf, [make(d, rng) for d in x[:n]]), y[:n])
    sets["photos (tests/photos.py)"] = accuracy(
        read(clf, [photos.numbered_photo(d, 0, i)[0] for i, d in enumerate(x[:n])]), y[:n]
    )
    crop6 = [realsets.tight(d, np.random.default_rng(i)) for i, d in enumerate(x[:n])]
    cropped = read(clf, crop6)
    sets["dark on light, cropped to the box"] = accuracy(cropped, y[:n])
    sets["the same with a 12 px margin"] = accuracy(
        read(clf, [np.pad(c, 12, constant_values=245) for c in crop6]), y[:n]
    )
    report["rendered"] = sets
    try:
        from PIL import Image
        from sklearn.datasets import load_digits

        uci = load_digits()
        imgs = [
            np.asarray(Image.fromarray((255 - im * (255 / 16)).astype(np.uint8)).resize((32, 32), Image.BILINEAR))
            for im in uci.images
        ]
        report["UCI digits: 1,797 soft 8x8 scans shown 4x"] = accuracy(read(clf, imgs), uci.target)
    except ImportError:
        report["UCI digits: 1,797 soft 8x8 scans shown 4x"] = "scikit-learn is not installed"
    digit_scores = [s for _, s, _ in cropped + clean[:n]]  # the digits the not-digits are ranked against
    outs = {}
    for name, make in realsets.NOT_DIGITS.items():
        rng = np.random.default_rng(2)
        res = read(clf, [make(rng) for _ in range(n)])
        outs[name] = {
            "auroc": auroc(digit_scores, [s for _, s, _ in res]),
            "called not a digit": float(np.mean([not ok for _, _, ok in res])),
        }
    if FASHION.exists():
        with gzip.open(FASHION) as f:
            fx = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
        res = read(clf, list(fx.astype(np.float32) / 255))
        outs["Fashion-MNIST test"] = {
            "auroc": auroc(digit_scores, [s for _, s, _ in res]),
            "called not a digit": float(np.mean([not ok for _, _, ok in res])),
        }
    report["not digits"] = outs
    report["ece, MNIST test (first 4N)"] = ece(clf, x01, y)
    report["seconds"] = round(time.time() - t0, 1)
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def print_report(r: dict) -> None:
    print("| set | read right | its best guess right | refused | not a digit |\n|---|---|---|---|---|")
    rows = {
        "clean MNIST test": r["clean MNIST test (first 4N)"],
        **{f"corruption: {k}": v for k, v in r["corruptions"].items()},
        **r["rendered"],
    }
    uci = r["UCI digits: 1,797 soft 8x8 scans shown 4x"]
    if isinstance(uci, dict):
        rows["UCI digits (1,797 soft 8x8 scans, 4x)"] = uci
    for k, v in rows.items():
        cells = [v["accuracy"], v.get("top_right", v["accuracy"]), v["refused"], v["not_digit"]]
        print(f"| {k} | " + " | ".join(f"{100 * c:.1f}%" for c in cells) + " |")
    mean_c = np.mean([v["accuracy"] for v in r["corruptions"].values()])
    mean_t = np.mean([v.get("top_right", v["accuracy"]) for v in r["corruptions"].values()])
    n = len(r["corruptions"])
    print(f"\nmean over the {n} corruptions: {100 * mean_c:.1f}% read right, {100 * mean_t:.1f}% best guess right")
    print("\n| not digits | AUROC (digit score) | called not a digit |\n|---|---|---|")
    for k, v in r["not digits"].items():
        print(f"| {k} | {v['auroc']:.3f} | {100 * v['called not a digit']:.1f}% |")
    e = r["ece, MNIST test (first 4N)"]
    print(f"\nECE on the MNIST test digits used: {'-' if e is None else f'{100 * e:.2f}%'}   ({r['seconds']} s)")


if __name__ == "__main__":
    main()
