"""Scale-out benchmark: the same run with 1, 2, ... processes under torchrun (DistributedDataParallel), and on CUDA
DDP on one GPU (nccl, 1 rank) against the plain single process on the same card.

Every configuration is one `mnistlab train` command (its own processes, a fresh run folder); img/s are the run's
own records (training images of all ranks per second of synchronised training time, evaluation excluded), the
time is training plus evaluation of all epochs, and the wall time includes process start and data loading.

    python benchmarks/scale.py --device cpu --nproc 1 2 --epochs 1          # this CPU, gloo
    python benchmarks/scale.py --device cuda --epochs 2                      # one GPU: plain vs DDP(nccl) 1 rank
    python benchmarks/scale.py --device cpu --nproc 1 2 --limit-train 2048 --limit-test 500 --epochs 1  # smoke
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def machine() -> dict:
    """bench.py's machine description (this script's folder is on sys.path), with the GPU count."""
    from bench import machine as describe

    info = describe()
    import torch

    if torch.cuda.is_available():
        info["gpus"] = torch.cuda.device_count()
    return info


def configs(args) -> list[tuple[str, list[str], dict]]:
    """(label, command prefix, extra environment) per configuration."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    plain = [sys.executable, "-m", "mnistlab"]
    out = []
    if args.device == "cuda":
        out.append(("plain, 1 process", plain, {}))
        out.append(
            ("torchrun DDP nccl, 1 rank", [*torchrun, "--nproc-per-node", "1", "-m", "mnistlab"], {"MNISTLAB_DDP": "1"})
        )
    for n in args.nproc:
        if args.device == "cuda" and n == 1:
            continue  # above
        label = f"torchrun, {n} rank{'s' * (n > 1)}" + (" (DDP gloo)" if args.device == "cpu" and n > 1 else "")
        threads = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n))} if args.device == "cpu" else {}
        out.append((label, [*torchrun, "--nproc-per-node", str(n), "-m", "mnistlab"], threads))
    return out


def run_one(label: str, prefix: list[str], env_extra: dict, train_args: list[str], folder: Path) -> dict:
    env = dict(os.environ, **env_extra)
    cmd = [*prefix, "train", *train_args, "--out", str(folder)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"[{label}] failed (status {proc.returncode}): {tail}", file=sys.stderr)
        return {"label": label, "failed": tail}
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    recipe = json.loads((folder / "recipe.json").read_text())
    train_s = sum(r["train_time_s"] for r in records)
    images = sum(r["imgs_per_s"] * r["train_time_s"] for r in records)
    return {
        "label": label,
        "world_size": recipe["world_size"],
        "batch_size": recipe["batch_size"],
        "epochs": records[-1]["epoch"],
        "final_acc": records[-1]["test_acc"],
        "imgs_per_s": images / train_s if train_s > 0 else 0.0,
        "train_s": train_s,
        "time_s": train_s + sum(r["eval_time_s"] for r in records),
        "wall_s": wall,
        "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)),
        "env": env_extra,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="processes per configuration (default 1 2)")
    p.add_argument("--recipe", default="default")
    p.add_argument("--epochs", default="1")
    p.add_argument("--batch-size", default=None, help="the global batch (default: the recipe's)")
    p.add_argument("--amp", default=None, choices=["auto", "bf16", "off"])
    p.add_argument("--limit-train", default=None)
    p.add_argument("--limit-test", default=None)
    p.add_argument("--seed", default="1")
    p.add_argument("--out", default=None, help="JSON file (default: benchmarks/results/scale-<device>-<date>.json)")
    args = p.parse_args(argv)
    train_args = ["--device", args.device, "--quiet", "--no-plots", "--recipe", args.recipe, "--epochs", args.epochs]
    train_args += ["--seed", args.seed]
    for flag in ("batch_size", "amp", "limit_train", "limit_test"):
        if getattr(args, flag) is not None:
            train_args += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    runs = []
    with tempfile.TemporaryDirectory(prefix="mnistlab-scale-") as tmp:
        for i, (label, prefix, env_extra) in enumerate(configs(args)):
            r = run_one(label, prefix, env_extra, train_args, Path(tmp) / f"run{i}")
            runs.append(r)
            if "failed" not in r:
                print(
                    f"[{label}] {r['imgs_per_s']:,.0f} img/s, final {100 * r['final_acc']:.2f}%, "
                    f"{r['time_s']:.1f} s train+eval, {r['wall_s']:.1f} s wall",
                    flush=True,
                )
    ok = [r for r in runs if "failed" not in r]
    if not ok:
        print("no run finished", file=sys.stderr)
        return 1
    base = ok[0]["imgs_per_s"]
    print()
    print(
        "| configuration | processes | global batch | epochs | img/s | speed-up | final acc | train+eval s | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in ok:
        print(
            f"| {r['label']} | {r['world_size']} | {r['batch_size']} | {r['epochs']} | {r['imgs_per_s']:,.0f} | "
            f"{r['imgs_per_s'] / base:.2f}x | {100 * r['final_acc']:.2f}% | {r['time_s']:.1f} | {r['wall_s']:.1f} |"
        )
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "runs": runs,
    }
    out = (
        Path(args.out)
        if args.out
        else Path(__file__).parent / "results" / f"scale-{args.device}-{datetime.date.today()}.json"
    )
    from bench import write_result

    write_result(out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
