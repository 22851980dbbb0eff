"""Interleaved training throughput of batch 64, 128 and 256 (the same recipe otherwise), to compare time per image
on a noisy shared machine: rounds of ~4,000 images each, alternating, median img/s per batch size; then the time to
evaluate the 10,000 test images at several evaluation batch sizes, interleaved, median of 3."""

import json
import statistics
import sys
import time

from mnistlab.run import Run

from mnistlab import loops
from mnistlab.recipes import get_recipe

sizes = [64, 128, 256]
runs = {
    b: Run.create(get_recipe("default", batch_size=b, epochs=10, device="cpu"), progress=False, echo=False)
    for b in sizes
}
for b, r in runs.items():
    r.train_epoch(batches=max(1, 1024 // b))  # warm-up
rates = {b: [] for b in sizes}
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 4):
    for b, r in runs.items():
        res = r.train_epoch(batches=4096 // b)
        rates[b].append(res.images / res.seconds)
print(json.dumps({b: {"median": statistics.median(v), "all": v} for b, v in rates.items()}, indent=1))

r = runs[128]
test_loader = r.test_loader
times = {}
for _ in range(3):
    for eb in (500, 1000, 2000, 5000, 10000):
        test_loader.batch_size = eb
        t0 = time.perf_counter()
        loops.evaluate(r.model, r.device, test_loader, dtype=r.dtype, verbose=False)
        times.setdefault(eb, []).append(time.perf_counter() - t0)
print(json.dumps({eb: statistics.median(v) for eb, v in times.items()}, indent=1))
