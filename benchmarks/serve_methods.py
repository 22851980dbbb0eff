"""Issue 28 row 2: N requests against `mnistlab serve`, each with its own long HTTP method; the server's RSS and
/metrics' size and scrape time before and after.

    python benchmarks/serve_methods.py 1000 60000      # 1,000 requests, methods of 60,000 bytes
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import psutil


def main() -> None:
    n, size = int(sys.argv[1]), int(sys.argv[2])
    cmd = [sys.executable, "-m", "mnistlab", "serve", "--port", "0", "--engine", "onnx"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    host, port = re.search(r"http://([\d.]+):(\d+)/", p.stderr.readline()).groups()
    addr = (host, int(port))

    def ask(raw: bytes) -> bytes:
        with socket.create_connection(addr, timeout=60) as s:
            s.sendall(raw)
            data = []
            while chunk := s.recv(1 << 16):
                data.append(chunk)
        return b"".join(data)

    def get(path: str) -> bytes:
        return ask(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())

    try:
        while b"200 OK" not in get("/readyz"):
            time.sleep(0.1)
        rss0, size0 = psutil.Process(p.pid).memory_info().rss / 2**20, len(get("/metrics"))
        statuses: dict[str, int] = {}
        for i in range(n):
            method = f"M{i:06d}" + "X" * (size - 7)
            status = ask(f"{method} /x{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())[9:12].decode()
            statuses[status] = statuses.get(status, 0) + 1
        t = time.perf_counter()
        body = get("/metrics")
        scrape = time.perf_counter() - t
        rss1 = psutil.Process(p.pid).memory_info().rss / 2**20
    finally:
        p.terminate()
        p.wait(30)
    print(f"n={n} method={size} B statuses={statuses} rss {rss0:.0f} -> {rss1:.0f} MB (+{rss1 - rss0:.0f}); "
          f"/metrics {size0:,} -> {len(body):,} bytes, scrape {scrape * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
