"""Load benchmark of `mnistlab serve` on loopback: N concurrent clients posting real MNIST test digits for a bounded
time, with batching on and off; requests/s, p50/p99 latency, errors, and the server's RSS before and after.

Each configuration starts its own server (`mnistlab serve --port 0`), warms it up, then runs `--seconds` of load
from one asyncio client process (httpx, keep-alive connections), one task per simulated client, each posting the
next test digit (a 28x28 PNG) as soon as its previous answer came back.

    python benchmarks/serve_load.py --clients 1 8 64 --seconds 20          # writes benchmarks/results/serve-DATE.json
    python benchmarks/serve_load.py --clients 1 8 --seconds 2 --out /tmp/smoke.json   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def digits(n: int) -> list[bytes]:
    """The first `n` MNIST test digits as PNG files (from $MNISTLAB_DATA / $MNISTLAB_MIRROR, as training gets them)."""
    from PIL import Image

    from mnistlab.data import load_tensors

    images, _ = load_tensors(False, limit=n)
    out = []
    for a in images.numpy():
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def start(max_batch: int, max_wait_ms: float) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "mnistlab", "serve", "--port", "0", "--max-batch", str(max_batch)]
    cmd += ["--max-wait-ms", str(max_wait_ms), "--max-queue", "1024"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    m = re.search(r"(http://\S+/)", line)
    if not m:
        p.kill()
        raise SystemExit(f"the server did not start: {line.strip()}")
    return p, m.group(1)


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


async def load(url: str, images: list[bytes], clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

        async def client(k: int) -> None:
            i = k
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    r = await http.post("/v1/predict", content=images[i % len(images)])
                    ok = r.status_code == 200
                    what = str(r.status_code)
                except httpx.HTTPError as e:
                    ok, what = False, type(e).__name__
                latencies.append(time.perf_counter() - t)
                if not ok:
                    errors[what] = errors.get(what, 0) + 1
                i += clients

        t0 = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-batch", type=int, default=32, help="batching on: this max batch (off is always 1)")
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--images", type=int, default=1000, help="distinct test digits cycled through")
    ap.add_argument("--out", help="JSON file (default: benchmarks/results/serve-DATE.json)")
    args = ap.parse_args()

    images = digits(args.images)
    rows = []
    for label, batch in (("batching on", args.max_batch), ("batching off", 1)):
        p, url = start(batch, args.max_wait_ms)
        try:
            asyncio.run(load(url, images, 4, 1.0))  # warm-up, not recorded
            before = rss_mb(p.pid)
            for n in args.clients:
                result = asyncio.run(load(url, images, n, args.seconds))
                row = {"config": label, "max_batch": batch, "clients": n, **result}
                row["rss_mb_before"], row["rss_mb_after"] = round(before, 1), round(rss_mb(p.pid), 1)
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            p.terminate()
            p.wait(30)

    import torch
    from bench import machine

    report = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]),
        "machine": machine(),
        "torch": torch.__version__,
        "max_wait_ms": args.max_wait_ms,
        "rows": rows,
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"serve-{report['date']}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
