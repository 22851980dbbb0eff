"""Time-to-accuracy benchmark: named recipes over seeds, with the seed pipeline in the same invocation.

Each run is a separate process (so peak memory and one-time costs are per run). Prints tables and writes JSON.

    python benchmarks/bench.py --device cpu --recipes seed,fast99,fast994,best --seeds 1 2 3 4 5 \\
        --seed-pipeline-seeds 1 --seed-epochs 1
    python benchmarks/bench.py --recipes default --epochs 0.6 --batch-size 128 --lr 0.002 --val 10000  # tuning

What a user gets, per recipe: the final accuracy of the run as the recipe defines it (mean / min / max over seeds,
and how many seeds reached the recipe's target), and its time = training time (device-synchronised) + the final
evaluation, which certifies the result. Evaluations before the last are not counted; `--evals-per-epoch` > 1 adds
some, to record time to 99.0% / 99.4% (training time until the first evaluation at or above it, plus that
evaluation). One-time costs (interpreter and imports, data load, model build, CUDA-graph capture) are measured
separately and printed on their own line.
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
TARGETS = {"fast99": 0.99, "fast994": 0.994}  # the accuracy each speed recipe is named after


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
    from mnistlab.train.training import fit

    imported = time.perf_counter()
    recipe = get_recipe(cfg["recipe"], **cfg["overrides"])
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
                "lr",
                "seed",
                "pipeline",
                "amp",
                "channels_last",
                "compile",
                "cuda_graphs",
                "keep_cpu_buffers",
            )
        },
        "overrides": cfg["overrides"],
        "device": str(res.device),
        "records": recs,
        "final_acc": recs[-1]["test_acc"],
        "train_s": train_s,
        "final_eval_s": recs[-1]["eval_time_s"],
        "time_s": train_s + recs[-1]["eval_time_s"],  # what certifies the result: training + its final evaluation
        "all_evals_s": eval_s,
        "setup_s": wall - train_s - eval_s,  # data load, model build, CUDA-graph capture
        "start_s": imported - cfg["launched"],  # process start and imports (wall clock, from the parent's launch)
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
    """One line per run."""
    head = (
        "| run | device | epochs | batch | seed | final acc | time (train + final eval) | time to 99.0% | "
        "time to 99.4% | img/s | one-time | peak RSS | peak GPU alloc |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in runs:
        s = r["settings"]
        lines.append(
            f"| {r['label']} | {r['device']} | {s['epochs']} | {s['batch_size']} | {s['seed']} | "
            f"{100 * r['final_acc']:.2f}% | {r['time_s']:.2f} s | "
            f"{_fmt_t(r['time_to_99.0'])} | {_fmt_t(r['time_to_99.4'])} | {r['imgs_per_s']:,.0f} | "
            f"{r['start_s'] + r['setup_s']:.1f} s | {r['peak_rss_mb']:,.0f} MB | "
            + (f"{r['peak_gpu_alloc_mb']:,.0f} MB" if "peak_gpu_alloc_mb" in r else "—")
            + " |"
        )
    return "\n".join(lines)


def _spread(values: list[float]) -> dict:
    return {"min": min(values), "mean": statistics.fmean(values), "max": max(values)} if values else {}


def summarise(runs: list[dict]) -> dict:
    """Per label, over its seeds: final accuracy, time and one-time costs as min / mean / max; how many seeds reached
    the recipe's target and each threshold (a seed that never reached one has no time to average)."""
    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["label"], []).append(r)
    out = {}
    for label, rs in by.items():
        target = TARGETS.get(rs[0]["recipe"])
        out[label] = {
            "recipe": rs[0]["recipe"],
            "runs": len(rs),
            "epochs": rs[0]["settings"]["epochs"],
            "batch_size": rs[0]["settings"]["batch_size"],
            "final_acc": _spread([r["final_acc"] for r in rs]),
            "target": target,
            "reached_target": None if target is None else sum(r["final_acc"] >= target for r in rs),
            "time_s": _spread([r["time_s"] for r in rs]),
            "imgs_per_s": _spread([r["imgs_per_s"] for r in rs]),
            "start_s": _spread([r["start_s"] for r in rs]),
            "setup_s": _spread([r["setup_s"] for r in rs]),
        }
        for th in THRESHOLDS:
            key = f"time_to_{th * 100:.1f}"
            times = [r[key] for r in rs if r[key] is not None]
            out[label][key] = {**_spread(times), "reached": len(times)}
    return out


def _fmt_spread(s: dict, scale: float = 1.0, unit: str = "", digits: int = 2) -> str:
    if "mean" not in s:
        return "not reached"
    return f"{s['mean'] * scale:.{digits}f}{unit} ({s['min'] * scale:.{digits}f}–{s['max'] * scale:.{digits}f})"


def summary_table(summary: dict) -> str:
    """One line per recipe (label), over its seeds."""
    lines = [
        "| recipe | seeds | epochs | batch | final acc, mean (min–max) | target reached | "
        "time: train + final eval, mean (min–max) | img/s, mean (min–max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, s in summary.items():
        reached = "—" if s["target"] is None else f"{s['reached_target']}/{s['runs']} ≥ {100 * s['target']:.1f}%"
        lines.append(
            f"| {label} | {s['runs']} | {s['epochs']} | {s['batch_size']} | {_fmt_spread(s['final_acc'], 100, '%')} "
            f"| {reached} | {_fmt_spread(s['time_s'], unit=' s')} | {_fmt_spread(s['imgs_per_s'], digits=0)} |"
        )
    return "\n".join(lines)


def one_time_line(summary: dict) -> str:
    """The one-time costs, not in the times above: mean over each recipe's runs."""
    parts = [
        f"{label}: start {s['start_s']['mean']:.1f} s + setup {s['setup_s']['mean']:.1f} s"
        for label, s in summary.items()
    ]
    return (
        "one-time costs per run, not counted above (process start and imports; data load, model build and "
        "CUDA-graph capture): " + "; ".join(parts)
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    p.add_argument(
        "--recipes",
        default="seed,fast99,fast994,best",
        help="comma list of named recipes (seed, default, fast99, fast994, best; default: seed,fast99,fast994,best)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="random seeds (default: 1 2 3 4 5)")
    p.add_argument(
        "--seed-pipeline-seeds",
        type=int,
        nargs="+",
        help="random seeds for the seed recipe, which is slow (default: those of --seeds)",
    )
    p.add_argument("--seed-epochs", type=int, default=1, help="epochs of the seed recipe (default: 1; its own is 5)")
    p.add_argument(
        "--epochs", type=float, default=None, help="epochs of the other recipes, 0.6 allowed (default: each's)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        nargs="+",
        default=[None],
        help="batch sizes to try for the other recipes (default: each recipe's)",
    )
    p.add_argument("--lr", type=float, nargs="+", default=[None], help="peak learning rates to try (default: each's)")
    p.add_argument(
        "--cuda-graphs",
        nargs="+",
        default=["auto"],
        choices=["auto", "on", "off"],
        help="CUDA-graph settings to try for the other recipes",
    )
    p.add_argument(
        "--seed-tuned",
        action="store_true",
        help="also run the seed recipe with mnistlab's CPU allocator setting (recipe keep_cpu_buffers)",
    )
    p.add_argument("--compile", action="store_true", help="also run each other recipe with torch.compile")
    p.add_argument(
        "--evals-per-epoch",
        type=int,
        default=1,
        help="evaluations per epoch (default: 1, as `mnistlab train` does); more record time to 99.0%%/99.4%%",
    )
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
        help="a recipe setting for the other recipes' runs (JSON value), e.g. --set label_smoothing=0.05",
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
    epochs = None if args.epochs is None else int(args.epochs) if args.epochs.is_integer() else args.epochs
    configs = []
    for name in args.recipes.split(","):
        if name == "seed":
            for seed in args.seed_pipeline_seeds or args.seeds:
                base = {"epochs": args.seed_epochs, "seed": seed, "device": args.device, "val": args.val}
                configs.append(("seed", "seed", base))
                if args.seed_tuned:
                    configs.append(("seed + keep_cpu_buffers", "seed", {**base, "keep_cpu_buffers": True}))
            continue
        for seed in args.seeds:
            for bs, lr, graphs in itertools.product(args.batch_size, args.lr, args.cuda_graphs):
                label = (
                    name
                    + (f" {epochs}ep" if epochs else "")
                    + (f" b{bs}" if bs else "")
                    + (f" lr{lr:g}" if lr else "")
                    + ("" if graphs == "auto" else f" graphs={graphs}")
                    + "".join(f" {k}={v}" for k, v in extra.items())
                )
                overrides = {"epochs": epochs, "seed": seed, "batch_size": bs, "lr": lr, "val": args.val, **extra}
                configs.append((label, name, {**overrides, "device": args.device, "cuda_graphs": graphs}))
            if args.compile:
                configs.append((f"{name} compile", name, {"epochs": epochs, "seed": seed, "compile": True}))
    runs = []
    for label, recipe, overrides in configs:
        cfg = {
            "recipe": recipe,
            "overrides": {k: v for k, v in overrides.items() if v is not None},
            "evals_per_epoch": args.evals_per_epoch,
            "data_dir": args.data_dir,
            "mirror": args.mirror,
        }
        t0 = time.perf_counter()
        cfg["launched"] = t0  # perf_counter is CLOCK_MONOTONIC on Linux: comparable across processes
        proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode != 0 or line is None:
            print(f"[{label} seed {overrides.get('seed')}] FAILED:\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
            continue
        r = json.loads(line[len("RESULT ") :])
        r["label"] = label
        runs.append(r)
        print(
            f"[{label} seed {overrides.get('seed')}] final {100 * r['final_acc']:.2f}% in {r['time_s']:.2f} s "
            f"(train + final eval), {r['imgs_per_s']:,.0f} img/s ({time.perf_counter() - t0:.0f} s wall)",
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
    if seed_runs:
        s_ips = statistics.fmean(r["imgs_per_s"] for r in seed_runs)
        result["throughput_over_seed"] = {
            label: s["imgs_per_s"]["mean"] / s_ips for label, s in result["summary"].items() if label != "seed"
        }
    print()
    print(table(runs))
    print()
    print(f"evaluated on {result['evaluated_on']}; {result['machine']}")
    print(summary_table(result["summary"]))
    print(one_time_line(result["summary"]))
    for label, ratio in result.get("throughput_over_seed", {}).items():
        print(f"throughput, {label} / seed recipe: {ratio:.1f}x")
    out = (
        Path(args.out)
        if args.out
        else Path(__file__).parent / "results" / (f"{runs[0]['device'].split(':')[0]}-{datetime.date.today()}.json")
    )
    write_result(out, result)
    return 0


def write_result(out: Path, result: dict) -> None:
    """Write a benchmark's JSON (its folder made if need be) and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
