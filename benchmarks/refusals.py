"""How long refusing hostile images takes: pixel bombs, damaged files, extreme shapes (the figures that used to be
timing assertions in tests/images/test_preprocess.py), and hostile ONNX models (tests/hostile_onnx.py: `mnistlab.load`,
refused before onnxruntime reads them). Prints a table and writes JSON.

    python benchmarks/refusals.py                       # writes benchmarks/results/refusals-DATE.json
    python benchmarks/refusals.py --repeats 3 --out /tmp/r.json

The pictures of many equal ink parts (issue 28, row 1: dots, a checkerboard, salt noise) are read from their PNG
bytes, as `mnistlab predict` reads a file; they come from tests/hostile.py.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import hostile  # noqa: E402
import hostile_onnx  # noqa: E402

import mnistlab  # noqa: E402
from mnistlab.errors import UserError  # noqa: E402
from mnistlab.images.decode import open_image  # noqa: E402
from mnistlab.images.preprocess import candidates  # noqa: E402


def png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def cases(folder: Path) -> dict:
    """name -> a zero-argument call that reads one hostile input (raising UserError or returning)."""
    files = {
        "PNG claiming 20000x20000": png_claiming(20000, 20000),
        "PNG claiming 60000x60000": png_claiming(60000, 60000),
        "text named .png": b"this is not an image\n",
        "PNG header then garbage": b"\x89PNG\r\n\x1a\n" + b"\x00\x01garbage" * 10,
    }
    out = {}
    for i, (name, data) in enumerate(files.items()):
        path = folder / f"{i}.png"
        path.write_bytes(data)
        out[name] = lambda path=path: open_image(path)
    rng = np.random.default_rng(0)
    arrays = {
        "1x200,000 strip": np.full((1, 200_000), 255, np.uint8),
        "3x150 thin stroke on 200x200": np.pad(np.full((150, 3), 255, np.uint8), ((25, 25), (98, 99))),
        "4000x3000 noise": rng.integers(0, 256, (3000, 4000), dtype=np.uint8),
    }
    for name, a in arrays.items():
        out[name] = lambda a=a: candidates(a)
    for name, make in hostile.PICTURES.items():
        data = hostile.png(make())
        out[f"{name} ({len(data):,} B PNG)"] = lambda data=data: candidates(data)
    return out | onnx_cases(folder)


def onnx_cases(folder: Path) -> dict:
    """name -> loading one of tests/hostile_onnx.py's files (issue 28 rows 6 and 7), the first timed call included
    (onnx imported once before, as the checks' own cost, not the file's)."""
    return {f"ONNX: {name}": lambda p=p: mnistlab.load(p) for name, p in hostile_onnx.files(folder).items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="timed calls per case (default: 5)")
    p.add_argument("--out", help="JSON path (default: benchmarks/results/refusals-DATE.json)")
    p.add_argument("--match", default="", help="only the cases whose name holds this text (e.g. ONNX)")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, call in ((n, c) for n, c in cases(Path(tmp)).items() if args.match in n):
            times, outcome = [], ""
            for _ in range(args.repeats):
                t = time.perf_counter()
                try:
                    call()
                    outcome = "read"
                except UserError as e:
                    outcome = f"refused: {str(e)[:60]}"
                times.append(time.perf_counter() - t)
            rows.append({"case": name, "median_ms": 1000 * statistics.median(times), "max_ms": 1000 * max(times),
                         "outcome": outcome})  # fmt: skip
    print(f"| case | median ms | max ms | outcome |  (n={args.repeats} each)\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['median_ms']:.1f} | {r['max_ms']:.1f} | {r['outcome']} |")
    today = datetime.date.today().isoformat()
    out = Path(args.out or Path(__file__).parent / "results" / f"refusals-{today}.json")
    meta = {"date": today, "machine": platform.processor() or platform.machine(), "python": sys.version.split()[0]}
    out.write_text(json.dumps({"meta": meta, "repeats": args.repeats, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
