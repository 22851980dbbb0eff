#!/usr/bin/env bash
# Interleaved: HEAD with the /metrics recording made no-ops (/tmp/nometrics) and HEAD as it is, 3 times, torch.
. /work/main/.venv/bin/activate
export MNISTLAB_MIRROR=/work/shared/data/MNIST/raw
for i in 1 2 3; do
  (cd /tmp/nometrics && PYTHONPATH=$PWD/src python benchmarks/serve_load.py --clients 8 --seconds 8 --engine torch --out /tmp/exp/pn-off-$i.json >/dev/null 2>&1)
  (cd /work/main && PYTHONPATH=$PWD/src python benchmarks/serve_load.py --clients 8 --seconds 8 --engine torch --scrape paired --out /tmp/exp/pn-on-$i.json >/dev/null 2>&1)
  echo "$i $(cat /proc/loadavg)"
done
echo done
