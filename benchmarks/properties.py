"""Go on finding cases: the property tests (hypothesis's `@given`, marked `hypothesis`) with many more examples and a
fresh seed each round. The suite runs them with fixed examples in CI (tests/conftest.py, profile "ci"); this is
where new ones are looked for. Prints a table, writes JSON, and names the seed that reproduces each failure.

    python benchmarks/properties.py                        # 3 rounds, 10x the examples
    python benchmarks/properties.py --rounds 10 --scale 30 --out /tmp/p.json
    # a failure of round R is reproduced by the command the table prints for it, e.g.
    HYPOTHESIS_PROFILE=explore MNISTLAB_EXAMPLES_SCALE=10 python -m pytest -m hypothesis --hypothesis-seed=SEED
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_round(seed: int, scale: float, select: str) -> dict:
    """One pytest run of the property tests with `seed` and `scale` times their examples."""
    env = dict(os.environ, HYPOTHESIS_PROFILE="explore", MNISTLAB_EXAMPLES_SCALE=str(scale))
    env.pop("CI", None)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "hypothesis",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--hypothesis-seed={seed}",
    ]
    if select:
        cmd += ["-k", select]
    started = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    failed = sorted(set(re.findall(r"^FAILED (\S+)", r.stdout, re.M)))
    summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()[-200:]
    return {"seed": seed, "exit": r.returncode, "failed": failed, "summary": summary, "seconds": round(took, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="pytest runs, each with a fresh seed (default 3)")
    p.add_argument("--scale", type=float, default=10, help="times each test's own number of examples (default 10)")
    p.add_argument("-k", dest="select", default="", help="pytest -k expression to run only some tests (default all)")
    p.add_argument("--out", help="JSON path (default: benchmarks/results/properties-DATE.json)")
    args = p.parse_args()
    rows = []
    print(f"{'round':>5}  {'seed':>10}  {'exit':>4}  {'seconds':>7}  result")
    for i in range(args.rounds):
        row = one_round(secrets.randbits(32), args.scale, args.select)
        rows.append(row)
        print(f"{i + 1:>5}  {row['seed']:>10}  {row['exit']:>4}  {row['seconds']:>7}  {row['summary']}", flush=True)
        for name in row["failed"]:
            print(f"       failed: {name} (reproduce with --hypothesis-seed={row['seed']} --scale {args.scale:g})")
    today = datetime.date.today().isoformat()
    out = Path(args.out or REPO / "benchmarks" / "results" / f"properties-{today}.json")
    meta = {"date": today, "machine": platform.processor() or platform.machine(), "python": sys.version.split()[0]}
    out.write_text(json.dumps({"meta": meta, "scale": args.scale, "rounds": rows}, indent=1))
    print(f"wrote {out}")
    return 0 if all(r["exit"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
