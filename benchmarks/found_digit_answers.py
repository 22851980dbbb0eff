"""How often `mnistlab predict` answers a single-digit picture with a digit the finder found instead of the picture's
own reading (the "found digit" rule of cli/predict.py), on the rendered single-digit sets of benchmarks/robustness.py.

    python benchmarks/found_digit_answers.py [-n 100] [--json FILE]

Each set's first N MNIST test digits (measurement only) are rendered as robustness.py renders them (tests/realsets.py's
makers, tests/photos.py's photos, tight crops with and without a 12 px margin), written as image files, and read by
`mnistlab predict DIR --json` in one process; a row whose candidate is "found digit" is an answer the finder changed.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import photos  # noqa: E402
import realsets  # noqa: E402

from mnistlab.data.download import load_tensors  # noqa: E402


def rendered(n: int) -> tuple[dict[str, list], np.ndarray]:
    x, y = load_tensors(False, None, limit=n)  # MNIST's test split: measurement only
    x, y = x.numpy(), y.numpy()
    sets = {name: [make(d, np.random.default_rng(1)) for d in x] for name, make in realsets.MAKERS.items()}
    sets["photos (tests/photos.py)"] = [photos.numbered_photo(d, 0, i)[0] for i, d in enumerate(x)]
    crops = [realsets.tight(d, np.random.default_rng(i)) for i, d in enumerate(x)]
    sets["dark on light, cropped to the box"] = crops
    sets["the same with a 12 px margin"] = [np.pad(c, 12, constant_values=245) for c in crops]
    return sets, y


def write(sets: dict[str, list], folder: Path) -> dict[str, str]:
    """Each picture as a file in `folder`; {file name: its set}."""
    names = {}
    for s, (name, items) in enumerate(sets.items()):
        for i, im in enumerate(items):
            file = folder / f"{s:02d}-{i:04d}"
            if isinstance(im, bytes):
                file = file.with_suffix(".jpg")
                file.write_bytes(im)
            else:
                file = file.with_suffix(".png")
                Image.fromarray(np.asarray(im).astype(np.uint8)).save(file)
            names[file.name] = name
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=100, help="digits per rendered set (default: 100)")
    p.add_argument("--json", type=Path, default=None, help="write the counts here")
    args = p.parse_args()
    sets, y = rendered(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        names = write(sets, Path(tmp))
        out = subprocess.run(
            [sys.executable, "-m", "mnistlab", "predict", tmp, "--json"], capture_output=True, text=True
        )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == len(names), out.stderr[-2000:]
    changed: collections.Counter = collections.Counter()
    right: collections.Counter = collections.Counter()
    for r in rows:
        name = Path(r["file"]).name
        changed[names[name]] += r.get("candidate") == "found digit"
        right[names[name]] += r.get("digit") == int(y[int(name[3:7])])
    report = {s: {"pictures": args.n, "found-digit answers": changed[s], "read right": right[s]} for s in sets}
    print(f"{'set':42s} {'pictures':>8s} {'found digit':>11s} {'right':>6s}")
    for s, r in report.items():
        print(f"{s:42s} {r['pictures']:8d} {r['found-digit answers']:11d} {r['read right']:6d}")
    print(f"{'all':42s} {len(rows):8d} {sum(changed.values()):11d} {sum(right.values()):6d}")
    if args.json:
        args.json.write_text(json.dumps({"n": args.n, "sets": report}, indent=1) + "\n")


if __name__ == "__main__":
    main()
