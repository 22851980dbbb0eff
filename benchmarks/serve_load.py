"""Load benchmark of `mnistlab serve` on loopback: N concurrent clients posting real MNIST test digits for a bounded
time, with batching on and off; requests/s, p50/p99 latency, errors, and the server's RSS before and after. With
`--scrape paired`, each row is run twice on the same server, without and with GET /metrics every `--scrape-s`
(as Prometheus would scrape it), to show what the metrics cost. `--engine onnx torch` runs every row on each engine
(the server's --engine: onnxruntime or torch for the batches).

Each configuration starts its own server (`mnistlab serve --port 0`), warms it up, then runs `--seconds` of load
from one asyncio client process (one keep-alive HTTP/1.1 connection per simulated client, on asyncio streams), each
posting the next test digit (a 28x28 PNG) as soon as its previous answer came back.

    python benchmarks/serve_load.py --clients 1 8 64 --seconds 20          # writes benchmarks/results/serve-DATE.json
    python benchmarks/serve_load.py --clients 1 8 --seconds 2 --out /tmp/smoke.json   # smoke
    python benchmarks/serve_load.py --clients 8 --seconds 10 --scrape paired           # /metrics off, then on
    python benchmarks/serve_load.py --clients 8 --seconds 8 --engine onnx torch         # onnxruntime vs torch
    python benchmarks/serve_load.py --trickle 256 --seconds 45                          # slow bodies (issue 28)

`--trickle N` measures instead what N clients trickling their bodies (1 byte a second, reconnecting whenever the
server answers them, e.g. 408) leave to a normal client: one fresh connection posting a digit every second, its
answers counted by status.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import itertools
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

    from mnistlab.data.download import load_tensors

    images, _ = load_tensors(False, limit=n)
    out = []
    for a in images.numpy():
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def start(
    max_batch: int, max_wait_ms: float, device: str, engine: str = "auto", max_queue: int = 1024
) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "mnistlab", "serve", "--port", "0", "--max-batch", str(max_batch)]
    cmd += ["--max-wait-ms", str(max_wait_ms), "--max-queue", str(max_queue), "--device", device, "--engine", engine]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    m = re.search(r"(http://\S+/)", line)
    if not m:
        p.kill()
        raise SystemExit(f"the server did not start: {line.strip()}")
    return p, m.group(1)


def model_info(url: str) -> dict:
    """The server's GET /v1/model: its engine and batching counters (on the onnx engine it imports no torch)."""
    import httpx

    return httpx.get(url + "v1/model", timeout=30).json()


def batching(url: str) -> dict:
    """The server's batching counters (GET /v1/model)."""
    return model_info(url)["batching"]


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


class Connection:
    """One keep-alive HTTP/1.1 connection that posts a body and reads the answer: a few lines on asyncio streams.

    Not httpx: under 64 concurrent clients on 2 cores its connection pool cost the client about 13 ms of CPU per
    request (against about 5 ms of the server's), so the clients, not the server, set the pace."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes, method: str = "POST") -> int:
        """The status of POST `path` with `body` (its answer read whole); reconnects when the server closed."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: image/png\r\n"
        self.writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        try:
            status_line = await self.reader.readuntil(b"\r\n")
            headers = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
            m = re.search(r"^content-length: *(\d+)", headers, re.M)
            await self.reader.readexactly(int(m.group(1)) if m else 0)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise
        if "connection: close" in headers:
            self.close()
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def scrape(host: str, port: int, every_s: float, stop: float) -> int:
    """GET /metrics every `every_s` until `stop` (perf_counter time), on a connection of its own: how many."""
    conn, n = Connection(host, port), 0
    try:
        while time.perf_counter() < stop:
            assert await conn.post("/metrics", b"", method="GET") == 200
            n += 1
            await asyncio.sleep(every_s)
    finally:
        conn.close()
    return n


async def load(url: str, images: list[bytes], clients: int, seconds: float, scrape_s: float | None = None) -> dict:
    host, port = re.match(r"http://([^/:]+):(\d+)/", url).groups()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop = time.perf_counter() + seconds
    connections = [Connection(host, int(port)) for _ in range(clients)]
    try:

        async def client(k: int) -> None:
            i = k
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    status = await asyncio.wait_for(connections[k].post("/v1/predict", images[i % len(images)]), 60)
                    ok, what = status == 200, str(status)
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
                    ok, what = False, type(e).__name__
                latencies.append(time.perf_counter() - t)
                if not ok:
                    errors[what] = errors.get(what, 0) + 1
                i += clients

        t0 = time.perf_counter()
        scraper = [scrape(host, int(port), scrape_s, stop)] if scrape_s else []
        done = await asyncio.gather(*(client(k) for k in range(clients)), *scraper)
        scrapes = done[-1] if scrape_s else 0
        elapsed = time.perf_counter() - t0
    finally:
        for c in connections:
            c.close()
    lat = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "errors": errors,
        "scrape_s": scrape_s,
        "scrapes": scrapes,
    }


async def trickler(host: str, port: int, stop: float, every_s: float = 1.0) -> int:
    """A client announcing a 100 KB body and sending a byte of it every `every_s` until `stop`, on a new connection
    whenever the server answers or closes this one: how many connections it opened."""
    opened = 0
    while time.perf_counter() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(every_s)
            continue
        opened += 1
        try:
            writer.write(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx")
            while time.perf_counter() < stop:
                try:
                    await asyncio.wait_for(reader.read(1), every_s)
                    break  # answered (408) or closed: reconnect
                except asyncio.TimeoutError:
                    writer.write(b"x")
        except OSError:
            pass
        finally:
            writer.close()
    return opened


async def trickled(url: str, image: bytes, slow: int, seconds: float) -> dict:
    """A normal client's answers, one fresh connection a second, while `slow` clients trickle their bodies."""
    host, port = re.match(r"http://([^/:]+):(\d+)/", url).groups()
    stop = time.perf_counter() + seconds
    statuses: dict[str, int] = {}

    async def probe() -> None:
        await asyncio.sleep(min(5.0, seconds / 4))  # the slow clients connect first
        while time.perf_counter() < stop:
            conn = Connection(host, int(port))
            try:
                what = str(await asyncio.wait_for(conn.post("/v1/predict", image), 30))
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
                what = type(e).__name__
            finally:
                conn.close()
            statuses[what] = statuses.get(what, 0) + 1
            await asyncio.sleep(1.0)

    opened = await asyncio.gather(probe(), *(trickler(host, int(port), stop) for _ in range(slow)))
    probes = sum(statuses.values())
    ok = statuses.get("200", 0)
    return {"trickling": slow, "seconds": seconds, "probes": probes, "statuses": statuses,
            "success_rate": round(ok / max(probes, 1), 3), "slow_connections": sum(opened[1:])}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-batch", type=int, default=32, help="batching on: this max batch (off is always 1)")
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--images", type=int, default=1000, help="distinct test digits cycled through")
    ap.add_argument("--device", default="cpu", help="the server's --device (cpu, cuda, auto)")
    ap.add_argument(
        "--engine", nargs="+", default=["torch"], choices=("auto", "onnx", "torch"), help="the server's --engine(s)"
    )
    ap.add_argument("--note", default="", help="a word on the machine (e.g. shared with other jobs)")
    ap.add_argument(
        "--scrape", choices=("off", "paired"), default="off", help="paired: each row without and with /metrics"
    )
    ap.add_argument("--scrape-s", type=float, default=1.0, help="with --scrape paired: seconds between scrapes")
    ap.add_argument("--out", help="JSON file (default: benchmarks/results/serve-DATE.json)")
    ap.add_argument("--trickle", type=int, nargs="+", help="instead: a normal client's answers under N slow bodies")
    args = ap.parse_args()
    if args.trickle:
        return trickle_rows(args)

    images = digits(args.images)
    scrapes = (None, args.scrape_s) if args.scrape == "paired" else (None,)  # without, then with /metrics scraped
    rows = []
    for engine, (label, batch) in itertools.product(
        args.engine, (("batching on", args.max_batch), ("batching off", 1))
    ):
        p, url = start(batch, args.max_wait_ms, args.device, engine)
        try:
            served = model_info(url)["engine"]
            asyncio.run(load(url, images, 4, 1.0))  # warm-up, not recorded
            before = rss_mb(p.pid)
            for n, scrape_s in itertools.product(args.clients, scrapes):
                stats = batching(url)
                result = asyncio.run(load(url, images, n, args.seconds, scrape_s))
                after = batching(url)
                forward = after["batches"] - stats["batches"]
                done = after["batched_requests"] - stats["batched_requests"]
                row = {"engine": served, "config": label, "max_batch": batch, "clients": n, **result}
                row["forward_passes"], row["mean_batch"] = forward, round(done / max(forward, 1), 2)
                row["rss_mb_before"], row["rss_mb_after"] = round(before, 1), round(rss_mb(p.pid), 1)
                row["load_average"] = os.getloadavg()
                print(json.dumps(row), flush=True)
                rows.append(row)
        finally:
            p.terminate()
            p.wait(30)

    write(args, rows)


def trickle_rows(args) -> None:
    """One row per `--trickle N`: a normal client's success rate while N clients trickle their bodies."""
    image = digits(1)[0]
    rows = []
    for slow in args.trickle:
        p, url = start(args.max_batch, args.max_wait_ms, args.device, args.engine[0], max_queue=256)  # its default
        try:
            asyncio.run(load(url, [image], 1, 1.0))  # warm-up, not recorded
            row = {"engine": model_info(url)["engine"], **asyncio.run(trickled(url, image, slow, args.seconds))}
            row["load_average"] = os.getloadavg()
            print(json.dumps(row), flush=True)
            rows.append(row)
        finally:
            p.terminate()
            p.wait(30)
    write(args, rows)


def write(args, rows: list[dict]) -> None:
    import torch
    from bench import machine

    report = {
        "date": datetime.date.today().isoformat(),
        "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]),
        "machine": machine(),
        "torch": torch.__version__,
        "max_wait_ms": args.max_wait_ms,
        "device": args.device,
        "note": args.note,
        "load_average": os.getloadavg(),  # at the end: other jobs on the machine show here
        "rows": rows,
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"serve-{report['date']}.json")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
