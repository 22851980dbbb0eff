#!/usr/bin/env bash
# Every GPU measurement in one call (a few minutes on an H100/H200): the CUDA tests, the named recipes over 5 seeds
# with the seed recipe in the same invocation for the throughput ratio, img/s at larger batch sizes, and DDP's
# overhead (1 nccl rank against a plain process), and mnistlab serve under load.
# Writes logs and JSON under $OUT (or benchmarks/results/gpu-run). Needs the four MNIST .gz files in $MNISTLAB_MIRROR (default: .dev/mnist).
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
$PY -c "from mnistlab.data import download; download.load_tensors(True); download.load_tensors(False)"  # fetch once from the mirror

step() { local name=$1; shift; echo "=== $name: $*"; local t=$SECONDS; timeout "${LIMIT:-240}" "$@" 2>&1 | tee "$OUT/$name.log"; echo "=== $name took $((SECONDS - t)) s"; }

# 1. correctness on CUDA: cpu vs cuda agreement, the graphed step against eager, the Run API on the GPU
step tests $PY -m pytest -q -p no:cacheprovider tests/train/test_train.py -k "cuda or run_" -rA
# 2. the named recipes over 5 seeds, with the seed recipe (1 epoch, 1 seed) in the same invocation for the ratio
step recipes $PY benchmarks/bench.py --device cuda --recipes seed,fast99,fast994,best --seeds 1 2 3 4 5 \
  --seed-pipeline-seeds 1 --seed-epochs 1 --out "$OUT/gpu-recipes.json"
# 3. throughput of the default recipe's step at larger batches (1 epoch, 1 seed: read img/s, not accuracy)
step batches $PY benchmarks/bench.py --device cuda --recipes default --epochs 1 --seeds 1 --batch-size 256 512 1024 \
  --out "$OUT/gpu-batch-sizes.json"
# 4. DistributedDataParallel's overhead on one card: torchrun with 1 nccl rank in DDP against a plain process
step scale $PY benchmarks/scale.py --device cuda --recipe default --epochs 2 --out "$OUT/gpu-scale.json"
# 5. mnistlab serve on the GPU under load (1, 8, 64 clients; batching on and off): needs the serve extra
step serve $PY benchmarks/serve_load.py --device cuda --clients 1 8 64 --seconds 10 --out "$OUT/gpu-serve.json"
echo "done"
