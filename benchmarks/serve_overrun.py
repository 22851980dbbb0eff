"""What images that overrun their preparation deadline leave of `mnistlab serve` (issue 28 row 1), and what its
preparation workers cost: start-up time to /readyz, the server's and its workers' memory (RSS, and USS: what each
process holds alone), whether a worker imported torch.

It starts `mnistlab serve --port 0 --prepare-timeout-s T`, posts K slow images at once (512x512 white with 1-px
dots every 3 px in its central 70%: a picture issue 28 found to take 50 s to read), then probes /healthz and a
normal digit once a second for `--seconds`, counting their statuses.

    python benchmarks/serve_overrun.py --engine onnx --slow 4 --seconds 40 --out /tmp/overrun.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

SEVEN = (Path(__file__).resolve().parents[1] / "examples" / "digits" / "seven_pen.png").read_bytes()


def dotted(size: int = 512, step: int = 3, share: float = 0.7) -> bytes:
    a = np.full((size, size), 255, np.uint8)
    lo, hi = int(size * (1 - share) / 2), int(size * (1 + share) / 2)
    a[lo:hi:step, lo:hi:step] = 0
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def memory(pid: int) -> dict:
    """RSS and USS (MB) of the server and of each process under it, and which of them mapped torch."""
    main = psutil.Process(pid)
    out = {}
    for p in [main, *main.children(recursive=True)]:
        try:
            info = p.memory_full_info()
            maps = Path(f"/proc/{p.pid}/maps").read_text() if sys.platform == "linux" else ""
        except (psutil.Error, OSError):
            continue
        name = "server" if p.pid == pid else f"child {p.pid}"
        out[name] = {"rss_mb": round(info.rss / 2**20, 1), "uss_mb": round(info.uss / 2**20, 1),
                     "torch": "libtorch" in maps}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default="onnx", choices=("onnx", "torch"))
    ap.add_argument("--slow", type=int, default=4, help="slow images posted at once (default: 4, the workers)")
    ap.add_argument("--prepare-timeout-s", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=40.0, help="probing time after the slow images are posted")
    ap.add_argument("--out", help="JSON file")
    args = ap.parse_args()

    cmd = [sys.executable, "-m", "mnistlab", "serve", "--port", "0", "--engine", args.engine]
    cmd += ["--prepare-timeout-s", str(args.prepare_timeout_s)]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    url = re.search(r"(http://\S+/)", p.stderr.readline()).group(1)
    try:
        with httpx.Client(base_url=url, timeout=120) as c:
            while c.get("/readyz").status_code != 200:
                time.sleep(0.05)
            ready_s = time.perf_counter() - t0
            assert c.post("/v1/predict", content=SEVEN).status_code == 200
            time.sleep(1)
            idle = memory(p.pid)
            slow, answers = dotted(), []
            threads = [
                threading.Thread(target=lambda: answers.append(c.post("/v1/predict", content=slow).status_code))
                for _ in range(args.slow)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            probes: dict[str, dict[str, int]] = {"healthz": {}, "predict": {}}
            first_ok = None
            stop = time.perf_counter() + args.seconds
            while time.perf_counter() < stop:
                h = str(c.get("/healthz").status_code)
                r = str(c.post("/v1/predict", content=SEVEN).status_code)
                probes["healthz"][h] = probes["healthz"].get(h, 0) + 1
                probes["predict"][r] = probes["predict"].get(r, 0) + 1
                if first_ok is None and h == r == "200":
                    first_ok = round(args.seconds - (stop - time.perf_counter()), 1)
                time.sleep(1)
            after = memory(p.pid)
    finally:
        p.terminate()
        p.wait(30)
    row = {"engine": args.engine, "ready_s": round(ready_s, 2), "slow_answers": sorted(answers),
           "probes_after_slow": probes, "first_both_200_after_s": first_ok, "memory_idle": idle,
           "memory_after": after, "load_average": os.getloadavg()}  # fmt: skip
    print(json.dumps(row, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
