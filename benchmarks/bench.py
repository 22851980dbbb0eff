"""Time-to-accuracy benchmark: the seed pipeline and the default pipeline side by side on one machine.

Each run is a separate process (so peak memory is per run). Prints one table and writes JSON.

    python benchmarks/bench.py --device cpu --epochs 2 --seed-epochs 2 --out benchmarks/results/cpu.json
    python benchmarks/bench.py --device cuda --pipelines default --epochs 5 --seeds 1 2 3 4 5

Time to X% = training time (device-synchronised, evaluation excluded) until the first evaluation at or above X,
plus that evaluation's own time. One-time work (process start, data load, CUDA-graph capture) is reported
separately as setup_s and not counted.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

THRESHOLDS = (0.99, 0.994, 0.996)


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def worker(cfg: dict) -> dict:
    """Run one training in this process and return its measurements."""
    import torch

    from mnistlab.recipes import get_recipe
    from mnistlab.run import fit

    overrides = {k: v for k, v in cfg["overrides"].items() if v is not None}
    recipe = get_recipe(cfg["recipe"], **overrides)
    t0 = time.perf_counter()
    res = fit(
        recipe,
        data_dir=cfg.get("data_dir"),
        mirror=cfg.get("mirror"),
        progress=False,
        echo=False,
        evals_per_epoch=cfg["evals_per_epoch"],
    )
    wall = time.perf_counter() - t0
    recs = res.history.records
    train_s = sum(r["train_time_s"] for r in recs)
    eval_s = sum(r["eval_time_s"] for r in recs)
    images = sum(r["imgs_per_s"] * r["train_time_s"] for r in recs)
    out = {
        "recipe": recipe.name,
        "settings": {
            k: getattr(recipe, k)
            for k in (
                "epochs",
                "batch_size",
                "seed",
                "pipeline",
                "amp",
                "channels_last",
                "compile",
                "cuda_graphs",
                "keep_cpu_buffers",
            )
        },
        "device": str(res.device),
        "records": recs,
        "final_acc": recs[-1]["test_acc"],
        "train_s": train_s,
        "setup_s": wall - train_s - eval_s,
        "imgs_per_s": images / train_s,
        "imgs_per_s_after_epoch1": _after_first_epoch(recs),
        "peak_rss_mb": (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        )
        / 1024,
    }
    if res.device.type == "cuda":
        out["peak_gpu_alloc_mb"] = torch.cuda.max_memory_allocated() / 2**20
    for th in THRESHOLDS:
        out[f"time_to_{th * 100:.1f}"] = time_to(recs, th)
    return out


def _after_first_epoch(recs):
    later = [r for r in recs if r["epoch"] > 1]
    if not later:
        return None
    t = sum(r["train_time_s"] for r in later)
    return sum(r["imgs_per_s"] * r["train_time_s"] for r in later) / t


def time_to(recs: list[dict], threshold: float) -> float | None:
    t = 0.0
    for r in recs:
        t += r["train_time_s"]
        if r["test_acc"] >= threshold:
            return t + r["eval_time_s"]
    return None


def _fmt_t(v):
    return "not reached" if v is None else f"{v:.2f} s"


def table(runs: list[dict]) -> str:
    head = (
        "| run | device | epochs | batch | seed | time to 99.0% | time to 99.4% | final acc | img/s | "
        "img/s after ep. 1 | peak RSS | peak GPU alloc |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in runs:
        s = r["settings"]
        lines.append(
            f"| {r['label']} | {r['device']} | {s['epochs']} | {s['batch_size']} | {s['seed']} | "
            f"{_fmt_t(r['time_to_99.0'])} | {_fmt_t(r['time_to_99.4'])} | {100 * r['final_acc']:.2f}% | "
            f"{r['imgs_per_s']:,.0f} | "
            + (f"{r['imgs_per_s_after_epoch1']:,.0f}" if r["imgs_per_s_after_epoch1"] else "—")
            + f" | {r['peak_rss_mb']:,.0f} MB | "
            + (f"{r['peak_gpu_alloc_mb']:,.0f} MB" if "peak_gpu_alloc_mb" in r else "—")
            + " |"
        )
    return "\n".join(lines)


def _spread(values: list[float]) -> dict:
    return {"min": min(values), "mean": statistics.fmean(values), "max": max(values)} if values else {}


def summarise(runs: list[dict]) -> dict:
    """Per label, over its seeds: final accuracy and time to each threshold as min / mean / max, and how many
    seeds reached each threshold at all (a seed that never reached it has no time to average)."""
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["label"], []).append(r)
    out = {}
    for label, rs in by.items():
        out[label] = {
            "runs": len(rs),
            "final_acc": _spread([r["final_acc"] for r in rs]),
            "imgs_per_s_mean": statistics.fmean(r["imgs_per_s"] for r in rs),
        }
        for th in THRESHOLDS:
            key = f"time_to_{th * 100:.1f}"
            times = [r[key] for r in rs if r[key] is not None]
            out[label][key] = {**_spread(times), "reached": len(times)}
    return out


def _fmt_spread(s: dict, scale: float = 1.0, unit: str = "") -> str:
    if "mean" not in s:
        return "not reached"
    return f"{s['mean'] * scale:.2f}{unit} ({s['min'] * scale:.2f}-{s['max'] * scale:.2f})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    p.add_argument(
        "--pipelines",
        default="seed,default",
        help="comma list of: seed (torchvision DataLoader + PIL, the seed's recipe), default",
    )
    p.add_argument("--epochs", type=float, default=2, help="epochs of the default recipe, 0.6 allowed (default 2)")
    p.add_argument("--seed-epochs", type=int, default=2, help="epochs of the seed pipeline (default: 2)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="random seeds (default: 1)")
    p.add_argument(
        "--seed-pipeline-seeds",
        type=int,
        nargs="+",
        help="random seeds for the seed pipeline, which is slow (default: those of --seeds)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[None],
        help="batch sizes to try for the default pipeline (default: the recipe's)",
    )
    p.add_argument("--lr", type=float, nargs="+", default=[None], help="peak learning rates to try (default: recipe's)")
    p.add_argument(
        "--cuda-graphs",
        nargs="+",
        default=["auto"],
        choices=["auto", "on", "off"],
        help="CUDA-graph settings to try for the default pipeline",
    )
    p.add_argument(
        "--seed-tuned",
        action="store_true",
        help="also run the seed pipeline with mnistlab's CPU allocator setting (recipe keep_cpu_buffers)",
    )
    p.add_argument("--compile", action="store_true", help="also run the default pipeline with torch.compile")
    p.add_argument("--evals-per-epoch", type=int, default=4, help="evaluations per epoch (default: 4)")
    p.add_argument(
        "--val",
        type=int,
        default=None,
        help="evaluate on the last N training images (held out) instead of the test set: for choosing settings",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a recipe setting for the default pipeline's runs (JSON value), e.g. --set label_smoothing=0.05",
    )
    p.add_argument("--data-dir", default=None, help="MNIST data folder (default: $MNISTLAB_DATA)")
    p.add_argument("--mirror", default=None, help="folder/URL with the MNIST .gz files (default: $MNISTLAB_MIRROR)")
    p.add_argument("--out", default=None, help="JSON file to write (default: benchmarks/results/<device>-<date>.json)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0

    extra = {}
    for item in args.set:
        key, _, value = item.partition("=")
        extra[key] = json.loads(value)
    if args.val:
        extra["val"] = args.val
    configs = []
    for pipe in args.pipelines.split(","):
        seeds = args.seed_pipeline_seeds or args.seeds if pipe == "seed" else args.seeds
        for seed in seeds:
            if pipe == "seed":
                base = {"epochs": args.seed_epochs, "seed": seed, "device": args.device, "val": args.val}
                configs.append(("seed", "seed", base))
                if args.seed_tuned:
                    tuned = {"epochs": args.seed_epochs, "seed": seed, "device": args.device, "keep_cpu_buffers": True}
                    configs.append(("seed + keep_cpu_buffers", "seed", tuned))
                continue
            for bs, lr, graphs in itertools.product(args.batch_size, args.lr, args.cuda_graphs):
                label = (
                    "default"
                    + (f" b{bs}" if bs else "")
                    + (f" lr{lr:g}" if lr else "")
                    + ("" if graphs == "auto" else f" graphs={graphs}")
                    + "".join(f" {k}={v}" for k, v in extra.items() if k != "val")
                )
                epochs = int(args.epochs) if float(args.epochs).is_integer() else args.epochs
                overrides = {"epochs": epochs, "seed": seed, "batch_size": bs, "lr": lr, **extra}
                configs.append((label, "default", {**overrides, "device": args.device, "cuda_graphs": graphs}))
            if args.compile:
                configs.append(
                    (
                        "default compile",
                        "default",
                        {"epochs": args.epochs, "seed": seed, "device": args.device, "compile": True},
                    )
                )
    runs = []
    for label, recipe, overrides in configs:
        cfg = {
            "recipe": recipe,
            "overrides": overrides,
            "evals_per_epoch": args.evals_per_epoch,
            "data_dir": args.data_dir,
            "mirror": args.mirror,
        }
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(f"[{label} seed {overrides.get('seed')}] FAILED:\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
            continue
        r = json.loads(line[len("RESULT ") :])
        r["label"] = label
        runs.append(r)
        print(
            f"[{label} seed {overrides.get('seed')}] final {100 * r['final_acc']:.2f}%, "
            f"{r['imgs_per_s']:,.0f} img/s, to 99.0%: {_fmt_t(r['time_to_99.0'])}, "
            f"to 99.4%: {_fmt_t(r['time_to_99.4'])} ({time.perf_counter() - t0:.0f} s wall)",
            flush=True,
        )
    if not runs:
        print("no run finished", file=sys.stderr)
        return 1
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "evaluated_on": f"the last {args.val} training images (val)" if args.val else "the test set",
        "machine": machine(),
        "runs": runs,
        "summary": summarise(runs),
    }
    seed_runs = [r for r in runs if r["label"] == "seed"]
    fast_runs = [r for r in runs if r["label"] == "default"]
    if seed_runs and fast_runs:
        s_ips = statistics.fmean(r["imgs_per_s"] for r in seed_runs)
        f_ips = statistics.fmean(r["imgs_per_s"] for r in fast_runs)
        result["throughput_ratio_default_over_seed"] = f_ips / s_ips
    print()
    print(table(runs))
    print()
    print(
        "| run | seeds | final acc, mean (min-max) | time to 99.0%, mean (min-max) [reached] | "
        "time to 99.4%, mean (min-max) [reached] | img/s |"
    )
    print("|---|---|---|---|---|---|")
    for label, s in result["summary"].items():
        t99, t994 = s["time_to_99.0"], s["time_to_99.4"]
        print(
            f"| {label} | {s['runs']} | {_fmt_spread(s['final_acc'], 100, '%')} | "
            f"{_fmt_spread(t99, unit=' s')} [{t99['reached']}/{s['runs']}] | "
            f"{_fmt_spread(t994, unit=' s')} [{t994['reached']}/{s['runs']}] | {s['imgs_per_s_mean']:,.0f} |"
        )
    if "throughput_ratio_default_over_seed" in result:
        print(f"throughput, default / seed pipeline: {result['throughput_ratio_default_over_seed']:.1f}x")
    out = (
        Path(args.out)
        if args.out
        else Path(__file__).parent / "results" / (f"{runs[0]['device'].split(':')[0]}-{datetime.date.today()}.json")
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
