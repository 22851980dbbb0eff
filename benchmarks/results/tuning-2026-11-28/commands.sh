set -x
B="python benchmarks/bench.py --device cpu --pipelines default --val 10000 --seeds 1 2 --evals-per-epoch 8"
$B --epochs 0.6 --batch-size 128 --lr 0.002 --out /tmp/sw-a.json
$B --epochs 0.8 --batch-size 128 --lr 0.002 --out /tmp/sw-b.json
$B --epochs 1 --batch-size 128 --lr 0.002 --out /tmp/sw-c.json
$B --epochs 1 --batch-size 256 --out /tmp/sw-d.json
