#!/usr/bin/env bash
# Every GPU measurement in one call (about 4 minutes on an H100/H200): the CUDA tests, time to accuracy over 5 seeds
# at a fixed budget (2 epochs, 4 evaluations per epoch), final accuracy over 5 seeds after the full 5 epochs, and the
# seed pipeline on the same card for the throughput ratio. Writes logs and JSON under $OUT (or
# benchmarks/results/gpu-run). Needs the four MNIST .gz files in $MNISTLAB_MIRROR (default: .dev/mnist).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu-run}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export MNISTLAB_MIRROR=${MNISTLAB_MIRROR:-$PWD/.dev/mnist} MNISTLAB_DATA=${MNISTLAB_DATA:-/tmp/mnistlab-data}
PY=${PYTHON:-python3}
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda)"
} 2>&1 | tee "$OUT/env.txt"
$PY -c "from mnistlab import data; data.load_tensors(True); data.load_tensors(False)"  # fetch once from the mirror

step() { local name=$1; shift; echo "=== $name: $*"; local t=$SECONDS; timeout "${LIMIT:-240}" "$@" 2>&1 | tee "$OUT/$name.log"; echo "=== $name took $((SECONDS - t)) s"; }

# 1. correctness on CUDA: cpu vs cuda agreement, the graphed step against eager, the Run API on the GPU
step tests $PY -m pytest -q -p no:cacheprovider tests/test_train.py -k "cuda or run_" -rA
# 2. time to 99.0% / 99.4% over 5 seeds at a fixed budget: 2 epochs, evaluated 4 times per epoch
step time-to-acc $PY benchmarks/bench.py --device cuda --pipelines default --epochs 2 --seeds 1 2 3 4 5 \
  --out "$OUT/gpu-time-to-acc.json"
# 3. final accuracy over 5 seeds after the default recipe's 5 epochs
step seeds $PY benchmarks/bench.py --device cuda --pipelines default --epochs 5 --seeds 1 2 3 4 5 \
  --evals-per-epoch 1 --out "$OUT/gpu-seeds.json"
# 4. the seed pipeline on the same card, next to the default recipe (for the throughput ratio and memory)
step seedpipe $PY benchmarks/bench.py --device cuda --pipelines seed,default --seed-epochs 2 --epochs 2 \
  --out "$OUT/gpu-vs-seed.json"
echo "done"
