#!/usr/bin/env bash
# Interleaved: the server before /metrics existed (628d1aa) and now (main), 3 times each, 8 clients, 8 s a row.
. /work/main/.venv/bin/activate
export MNISTLAB_MIRROR=/work/shared/data/MNIST/raw
for i in 1 2 3; do
  (cd /tmp/before-metrics && PYTHONPATH=$PWD/src python benchmarks/serve_load.py --clients 8 --seconds 8 --out /tmp/exp/pm-before-$i.json >/dev/null 2>&1)
  (cd /work/main && PYTHONPATH=$PWD/src python benchmarks/serve_load.py --clients 8 --seconds 8 --engine torch onnx --out /tmp/exp/pm-after-$i.json >/dev/null 2>&1)
  echo "$i $(cat /proc/loadavg)"
done
