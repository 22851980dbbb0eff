"""What the TensorBoard event files cost a run: the same small CPU run with and without them (the package hidden, as
if not installed), interleaved, per epoch of training and in all; the time the run spends in the board's calls
(timed inside the runs with it), which a loaded machine's noise does not hide; and the per-step call alone.

    python benchmarks/tensorboard_cost.py                      # writes benchmarks/results/tensorboard-cost-DATE.json
    python benchmarks/tensorboard_cost.py --repeats 5 --limit-train 8192 --out /tmp/tb.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mnistlab.recipes import get_recipe
from mnistlab.train import tboard
from mnistlab.train.rundir import RunDir
from mnistlab.train.training import fit

RESULTS = Path(__file__).resolve().parent / "results"


CALLS = ("batch", "record", "finished")  # what a run calls on its board


@contextlib.contextmanager
def timed_board(spent: dict[str, float]):
    """Every call of the board's `CALLS` timed into `spent` (seconds by name)."""

    def timing(name, method):
        def call(*args, **kw):
            t0 = time.perf_counter()
            try:
                return method(*args, **kw)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

        return call

    originals = {name: getattr(tboard.Board, name) for name in CALLS}
    for name, method in originals.items():
        setattr(tboard.Board, name, timing(name, method))
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(tboard.Board, name, method)


def one_run(with_board: bool, limit: int, epochs: int, folder: Path) -> dict:
    hidden = {} if with_board else {"tensorboard": None, "torch.utils.tensorboard": None}
    saved = {name: sys.modules.get(name) for name in hidden}
    sys.modules.update(hidden)  # `import tensorboard` fails: the run writes no event files (and says so once)
    spent: dict[str, float] = {}
    try:
        recipe = get_recipe("default", epochs=epochs, limit_train=limit, limit_test=2000, device="cpu")
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()), timed_board(spent):
            run = fit(recipe, out=folder, progress=False, echo=False)
        wall = time.perf_counter() - t0
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    assert (folder / RunDir.TENSORBOARD).is_dir() == with_board
    steps = run.total_steps
    return {
        "epoch_s": [r["train_time_s"] for r in run.history.records],
        "wall_s": wall,
        "board_s": spent,
        "steps": steps,
    }


def per_call_us(n: int = 20000) -> float:
    """`Board.batch` on a board that keeps every step (the CPU's log_every), in microseconds a call."""
    with tempfile.TemporaryDirectory() as d:
        board = tboard.Board(RunDir(d))
        loss = torch.tensor(0.5)
        t0 = time.perf_counter()
        for step in range(1, n + 1):
            board.batch(step, loss, lambda s: 1e-3)
        return (time.perf_counter() - t0) / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--limit-train", type=int, default=8192)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", type=Path, default=RESULTS / f"tensorboard-cost-{datetime.date.today()}.json")
    args = p.parse_args()
    runs: dict[str, list[dict]] = {"with": [], "without": []}
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.repeats):
            for name in ("without", "with"):  # interleaved, so that the machine's load falls on both alike
                runs[name].append(one_run(name == "with", args.limit_train, args.epochs, Path(d) / f"{name}-{i}"))
    summary = {}
    for name, rs in runs.items():
        epochs = [s for r in rs for s in r["epoch_s"]]
        board = [sum(r["board_s"].values()) / len(r["epoch_s"]) for r in rs]
        summary[name] = {
            "board_s_per_epoch_median": statistics.median(board),
            "epoch_s_median": statistics.median(epochs),
            "wall_s_median": statistics.median(r["wall_s"] for r in rs),
        }
        print(
            f"{name:8} TensorBoard: median epoch {summary[name]['epoch_s_median']:.2f} s, median run "
            f"{summary[name]['wall_s_median']:.2f} s ({len(rs)} runs of {args.epochs} epochs, "
            f"{args.limit_train} images)"
        )
        print(f"{'':8} in the board's calls: median {statistics.median(board) * 1e3:.1f} ms an epoch")
    call = per_call_us()
    print(f"Board.batch: {call:.1f} us a call (once a step on the CPU)")
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "command": "python benchmarks/tensorboard_cost.py " + " ".join(sys.argv[1:]),
        "summary": summary,
        "runs": runs,
        "board_batch_us": call,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
