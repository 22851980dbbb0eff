"""What /metrics costs `mnistlab serve`, timed in one process: the recording each answered request makes (its
counter and latency histogram, and with batching off a batch-size observation of its own), the whole observing
middleware around a request (its id made, its answer's header, its timing and recording; no access log), and one
scrape (`generate_latest` of a registry filled with every route and status). End-to-end load runs on 2 cores vary by
more than these costs from run to run (benchmarks/serve_load.py --scrape paired); this gives the bound instead:
the share of one core (the event loop's, which holds the GIL) that the middleware and the scrapes take at a given
request rate.

    python benchmarks/metrics_cost.py                         # writes benchmarks/results/metrics-cost-DATE.json
    python benchmarks/metrics_cost.py --load benchmarks/results/serve-metrics-quiet-2026-12-02/pn-on-1.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

from mnistlab.serve.metrics import Metrics
from mnistlab.serve.observe import Observed

RESULTS = Path(__file__).resolve().parent / "results"
ROUTES = ("/v1/predict", "/v1/explain", "/v1/model", "/healthz", "/readyz", "/metrics", "/", "/static", "other")


def per_request_us(n: int, batching: bool) -> float:
    """Microseconds of metrics work per answered request: `answered`, plus `batch(1)` when batching is off (every
    request its own forward pass; batching on shares one observation among the batch)."""
    m = Metrics(in_flight=lambda: 0.0, queue_depth=lambda: 0.0)
    t0 = time.perf_counter()
    for i in range(n):
        m.answered("/v1/predict", "POST", 200, 0.004 + (i % 7) * 0.01)
        if not batching:
            m.batch(1)
    return (time.perf_counter() - t0) / n * 1e6


def observed_us(n: int, batching: bool) -> float:
    """Microseconds per request of `Observed` (the middleware) around an app that answers at once, plus `batch(1)`
    when batching is off: everything a request pays for being observed, on the event loop."""
    m = Metrics(in_flight=lambda: 0.0, queue_depth=lambda: 0.0)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def nothing(message):
        return None

    observed = Observed(app, m, frozenset(ROUTES))
    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "headers": [(b"content-type", b"image/png")]}

    async def go() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            await observed(dict(scope), None, nothing)
            if not batching:
                m.batch(1)
        return time.perf_counter() - t0

    return asyncio.run(go()) / n * 1e6


def scrape_ms(n: int) -> float:
    """Milliseconds of one GET /metrics body, the registry holding every route x three statuses and refusals."""
    m = Metrics(in_flight=lambda: 3.0, queue_depth=lambda: 1.0)
    for route in ROUTES:
        for status in (200, 413, 503):
            m.answered(route, "POST", status, 0.01)
    for status, reason in ((400, ""), (413, ""), (415, ""), (422, "no_digit"), (503, "")):
        m.refuse(status, reason)
    m.batch(8)
    t0 = time.perf_counter()
    for _ in range(n):
        m.text()
    return (time.perf_counter() - t0) / n * 1e3


def rates(load: Path | None) -> dict[str, float]:
    """Requests/s per configuration: a serve_load.py JSON's (the fastest row of each), or round upper figures."""
    if load is None:
        return {"batching on": 400.0, "batching off": 350.0}  # above every rate measured here (369 on onnx, 2 cores)
    rows = json.loads(load.read_text())["rows"]
    out: dict[str, float] = {}
    for r in rows:
        out[r["config"]] = max(out.get(r["config"], 0.0), r["req_per_s"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200_000, help="recordings timed (default: 200,000)")
    ap.add_argument("--scrapes", type=int, default=2_000, help="scrapes timed (default: 2,000)")
    ap.add_argument("--repeats", type=int, default=5, help="each timing repeated, the median kept (default: 5)")
    ap.add_argument("--scrape-s", type=float, default=1.0, help="seconds between scrapes (default: 1, as serve_load)")
    ap.add_argument("--load", type=Path, default=None, help="a serve_load.py JSON whose request rates to use")
    ap.add_argument("--out", type=Path, default=None, help="JSON (default: benchmarks/results/metrics-cost-DATE.json)")
    args = ap.parse_args()
    scrape = statistics.median(scrape_ms(args.scrapes) for _ in range(args.repeats))
    rows = []
    for config, rps in rates(args.load).items():
        on = config == "batching on"
        us = statistics.median(per_request_us(args.requests, on) for _ in range(args.repeats))
        mid = statistics.median(observed_us(args.requests, on) for _ in range(args.repeats))
        share = (mid * rps / 1e6) + (scrape / 1e3) / args.scrape_s
        rows.append({"config": config, "req_per_s": rps, "us_per_request": round(us, 2), "observed_us": round(mid, 2),
                     "scrape_ms": round(scrape, 3), "share_of_one_core": round(share, 5)})  # fmt: skip
    print(f"/metrics' own work, median of {args.repeats} timings (one scrape every {args.scrape_s:g} s)")
    print(f"{'config':14s} {'req/s':>7s} {'recording us':>13s} {'middleware us':>14s} {'ms/scrape':>10s} "
          f"{'share of one core':>18s}")  # fmt: skip
    for r in rows:
        print(f"{r['config']:14s} {r['req_per_s']:7.1f} {r['us_per_request']:13.2f} {r['observed_us']:14.2f} "
              f"{r['scrape_ms']:10.3f} {100 * r['share_of_one_core']:17.2f}%")  # fmt: skip
    out = args.out or RESULTS / f"metrics-cost-{datetime.date.today()}.json"
    out.write_text(json.dumps({
        "date": str(datetime.date.today()), "command": "python benchmarks/metrics_cost.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "out"),
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "rates_from": str(args.load) if args.load else "upper figures", "rows": rows,
    }, indent=1) + "\n")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
