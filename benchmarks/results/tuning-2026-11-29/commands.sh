# The val sweeps of 2026-11-29 (choosing fast99, fast994, best), in the order run. Each line wrote one JSON here.
# Machine: this project's 2-core Intel Xeon (AMX), torch 2.14.1; shared with other work during most of them, so
# read accuracy from these files, not speed. thru.py compared throughput and evaluation batch sizes.
# sweep 1 ran bench.py as it was before --recipes replaced --pipelines (same measurements)
B="python benchmarks/bench.py --device cpu --pipelines default --val 10000 --seeds 1 2 --evals-per-epoch 1 --epochs 0.6"
$B --batch-size 128 --lr 0.002 --out benchmarks/results/tuning-2026-11-29/s1-base.json
$B --batch-size 128 --lr 0.003 --out benchmarks/results/tuning-2026-11-29/s1-lr3.json
$B --batch-size 128 --lr 0.002 --set label_smoothing=0 --out benchmarks/results/tuning-2026-11-29/s1-ls0.json
$B --batch-size 128 --lr 0.002 --set aug_degrees=8 --set aug_scale=0.05 --set aug_translate=1 --out benchmarks/results/tuning-2026-11-29/s1-auglight.json
$B --batch-size 128 --lr 0.002 --set aug_degrees=0 --set aug_scale=0 --set aug_translate=0 --out benchmarks/results/tuning-2026-11-29/s1-augoff.json
$B --batch-size 64 --lr 0.0015 --out benchmarks/results/tuning-2026-11-29/s1-b64.json
$B --batch-size 256 --lr 0.004 --out benchmarks/results/tuning-2026-11-29/s1-b256lr4.json
B="python benchmarks/bench.py --device cpu --recipes default --val 10000 --seeds 1 2"
$B --epochs 0.6 --batch-size 64 --lr 0.002 0.003 --out benchmarks/results/tuning-2026-11-29/s2-b64.json
# (stopped after its seed 1: 98.97%, no JSON) $B --epochs 0.6 --batch-size 128 --lr 0.004
B="python benchmarks/bench.py --device cpu --recipes default --val 10000 --seeds 1 2"
$B --epochs 0.6 --batch-size 128 --lr 0.006 --out benchmarks/results/tuning-2026-11-29/s3-b128lr6.json
$B --epochs 0.6 --batch-size 64 --lr 0.005 --out benchmarks/results/tuning-2026-11-29/s3-b64lr5.json
$B --epochs 0.5 --batch-size 64 --lr 0.004 --out benchmarks/results/tuning-2026-11-29/s3-b64lr4-05.json
$B --epochs 0.5 --batch-size 128 --lr 0.006 --out benchmarks/results/tuning-2026-11-29/s3-b128lr6-05.json
B="python benchmarks/bench.py --device cpu --recipes default --val 10000 --seeds 1 2"
$B --epochs 0.6 --batch-size 128 --lr 0.01 --out benchmarks/results/tuning-2026-11-29/s4-b128lr10.json
$B --epochs 0.6 --batch-size 256 --lr 0.01 --out benchmarks/results/tuning-2026-11-29/s4-b256lr10.json
$B --epochs 0.6 --batch-size 128 --lr 0.008 --set pct_start=0.15 --out benchmarks/results/tuning-2026-11-29/s4-b128lr8-p15.json
# calibration: the default recipe (chosen before this tuning) at 1 epoch, on the test set; its val figures are in val-sweep-d.json
python benchmarks/bench.py --device cpu --recipes default --seeds 1 2 --epochs 1 --out benchmarks/results/tuning-2026-11-29/s5-calib-test.json
B="python benchmarks/bench.py --device cpu --recipes default --val 10000 --seeds 1 2"
$B --epochs 0.4 --batch-size 64 --lr 0.005 --out benchmarks/results/tuning-2026-11-29/s5-b64lr5-04.json
B="python benchmarks/bench.py --device cpu --recipes default --val 10000 --seeds 1 2"
$B --epochs 1 --batch-size 128 --lr 0.006 --out benchmarks/results/tuning-2026-11-29/s6-b128lr6-1.json
$B --epochs 0.8 --batch-size 128 --lr 0.006 --out benchmarks/results/tuning-2026-11-29/s9-b128lr6-08.json
$B --epochs 0.4 --batch-size 128 --lr 0.006 --out benchmarks/results/tuning-2026-11-29/s9-b128lr6-04.json
$B --epochs 0.3 --batch-size 64 --lr 0.005 --out benchmarks/results/tuning-2026-11-29/s9-b64lr5-03.json
python benchmarks/bench.py --device cpu --recipes default --val 10000 --seeds 1 --epochs 10 --out benchmarks/results/tuning-2026-11-29/s9-best-default10.json
python benchmarks/results/tuning-2026-11-29/thru.py 4 > benchmarks/results/tuning-2026-11-29/thru.json 2>&1
python benchmarks/bench.py --device cpu --recipes default --val 10000 --seeds 1 --epochs 10 --batch-size 128 --lr 0.004 --out benchmarks/results/tuning-2026-11-29/s10-best-b128lr4.json
