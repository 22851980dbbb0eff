"""Make the README's picture of TensorBoard comparing three runs: train three short runs (three peak learning rates
on a small MNIST subset), start `tensorboard --logdir` on them on a free localhost port, and screenshot a view of
it in headless Chromium (Playwright driving Debian's /usr/bin/chromium, as tests/test_browser.py does).

    python scripts/tensorboard_screenshot.py                       # images/tensorboard.png (Scalars view)
    python scripts/tensorboard_screenshot.py --view hparams --out /tmp/hparams.png --keep /tmp/tb-runs

Needs the tensorboard and test extras (pip install -e ".[test]") and MNIST (as `mnistlab train` gets it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LRS = (3e-4, 3e-3, 3e-2)  # one run each: too low, the default recipe's, too high
CHROMIUM = os.environ.get("MNISTLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWS = {  # what each view shows: the URL fragment of the dashboard, and the tags it keeps
    "scalars": "#scalars&tagFilter=eval%2F%7Ctrain%2Fbatch_loss%7Ctrain%2Flr&_smoothingWeight=0",
    "hparams": "#hparams",
}


def train(logdir: Path, epochs: float, limit: int) -> None:
    """Three short runs in `logdir`, one per learning rate, each evaluated 4 times an epoch."""
    from mnistlab.recipes import get_recipe
    from mnistlab.train.training import fit

    for lr in LRS:
        recipe = get_recipe("default", epochs=epochs, lr=lr, limit_train=limit, limit_test=2000, device="cpu")
        t0 = time.perf_counter()
        run = fit(recipe, out=logdir / f"lr-{lr:g}", evals_per_epoch=4, progress=False, echo=False)
        print(f"lr {lr:g}: {run.summary()} ({time.perf_counter() - t0:.1f} s in all)", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_runs(url: str, runs: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until TensorBoard answers and its scalars plugin lists `runs` runs with eval/accuracy."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"tensorboard exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "data/plugin/scalars/tags", timeout=5) as r:
                tags = json.load(r)
            if sum("eval/accuracy" in t for t in tags.values()) >= runs:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"tensorboard at {url} did not show {runs} runs within {timeout:.0f} s")
        time.sleep(0.5)


def screenshot(url: str, out: Path, wait_s: float) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 780})
            page.goto(url)
            page.wait_for_load_state("networkidle")
            page.wait_for_timeout(wait_s * 1000)  # the charts draw after their data arrives
            page.screenshot(path=str(out))
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "images" / "tensorboard.png")
    p.add_argument("--view", choices=sorted(VIEWS), default="scalars")
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--limit-train", type=int, default=4096, help="training images of each run")
    p.add_argument("--keep", type=Path, help="train into (or reuse the runs in) this folder, and keep it")
    p.add_argument("--wait", type=float, default=3.0, help="seconds to let the charts draw")
    args = p.parse_args(argv)
    logdir = args.keep or Path(tempfile.mkdtemp(prefix="mnistlab-tb-"))
    try:
        if not any(logdir.glob("lr-*")):
            train(logdir, args.epochs, args.limit_train)
        port = free_port()
        cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port)]
        proc = subprocess.Popen([*cmd, "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_for_runs(url, len(LRS), proc)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            screenshot(url + VIEWS[args.view], args.out, args.wait)
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        if args.keep is None:
            shutil.rmtree(logdir, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
