"""Start-up cost of `mnistlab predict one.png`: the default (onnxruntime, no torch imported) vs torch forced.

Each engine runs `python -m mnistlab predict IMAGE [--engine torch]` as a fresh process, once to warm the file cache
and then `--runs` times; the table gives the median wall time and the median peak RSS (the child's own rusage,
`os.wait4`, ru_maxrss). The default reads the bundled model's ONNX copy (src/mnistlab/weights/mnist-default.onnx).
The load average is recorded before and after each engine: on a machine shared with other jobs every figure is
slower than on a quiet one, so read them with it.

    python benchmarks/predict_startup.py                        # writes benchmarks/results/predict-startup-DATE.json
    python benchmarks/predict_startup.py --runs 2 --out /tmp/smoke.json   # smoke
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "examples" / "digits" / "seven_pen.png"


def one_run(args: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MB, CPU seconds: user + system) of one `python -m mnistlab ARGS` process, which
    must exit 0. The CPU time depends less than the wall time on what else runs on the machine."""
    start = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "mnistlab", *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"mnistlab {' '.join(args)} exited {p.returncode}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # ru_maxrss: KiB on Linux


def measure(args: list[str], runs: int) -> dict:
    load_before = os.getloadavg()
    one_run(args)  # warm the file cache
    samples = [one_run(args) for _ in range(runs)]
    walls, rss, cpu = ([s[i] for s in samples] for i in range(3))
    return {
        "command": " ".join(["mnistlab", *args]),
        "wall_s_median": statistics.median(walls),
        "rss_mb_median": statistics.median(rss),
        "cpu_s_median": statistics.median(cpu),
        "wall_s": walls,
        "rss_mb": rss,
        "cpu_s": cpu,
        "load_average_before": load_before,  # 1, 5 and 15 minutes: other jobs on the CPUs show here
        "load_average_after": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--image", default=str(IMAGE))
    ap.add_argument("--out", help="JSON file (default: benchmarks/results/predict-startup-DATE.json)")
    ap.add_argument("--note", default="", help="a word on the machine (e.g. shared with other jobs)")
    a = ap.parse_args()
    env_engine = os.environ.pop("MNISTLAB_ENGINE", None)  # the default is under test
    if env_engine:
        print(f"(ignoring MNISTLAB_ENGINE={env_engine})", file=sys.stderr)
    engines = {"onnx (default)": [], "torch (--engine torch)": ["--engine", "torch"]}
    rows = {name: measure(["predict", a.image, *extra], a.runs) for name, extra in engines.items()}
    print(f"mnistlab predict one image, median of {a.runs} process runs")
    print(f"{'engine':24} {'wall s':>8} {'CPU s':>6} {'peak RSS MB':>12} {'load before/after (1 min)':>26}")
    for name, r in rows.items():
        load = f"{r['load_average_before'][0]:.2f} / {r['load_average_after'][0]:.2f}"
        print(f"{name:24} {r['wall_s_median']:8.2f} {r['cpu_s_median']:6.2f} {r['rss_mb_median']:12.0f} {load:>26}")
    day = datetime.date.today().isoformat()
    out = Path(a.out or REPO / "benchmarks" / "results" / f"predict-startup-{day}.json")
    result = {
        "command": " ".join(["python", "benchmarks/predict_startup.py", *sys.argv[1:]]),
        "date": day,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_average_after": os.getloadavg(),  # the CPUs may be shared: a busy machine slows every run
        "note": a.note,
        "runs": a.runs,
        "image": os.path.relpath(a.image, REPO),
        "engines": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
