"""Make the weights that ship with mnistlab: the default recipe, seed 1, all of MNIST, its 5 epochs.

    python scripts/bundle_weights.py                # writes src/mnistlab/weights/mnist-default.safetensors

The run folder (default runs/bundled) is kept: its train.log, metrics.jsonl and pictures are the README's
"Training Logs" and "Results". The weights carry their model card (recipe, epochs, test accuracy, date, machine,
torch) as safetensors metadata; `mnistlab.load().card` shows it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mnistlab.classifier import BUNDLED
from mnistlab.recipes import get_recipe
from mnistlab.run import fit

DEST = Path(__file__).resolve().parents[1] / "src" / "mnistlab" / BUNDLED


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bundled", help="run folder to write (default: runs/bundled)")
    p.add_argument("--device", default="cpu", help="where to train (default: cpu, the machine CI has)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    args = p.parse_args()
    run = fit(get_recipe("default", seed=args.seed, device=args.device), out=args.out)
    run.plot()
    DEST.parent.mkdir(parents=True, exist_ok=True)
    run.export(DEST)
    print(json.dumps(run.card(), indent=2))
    print(f"wrote {DEST}")


if __name__ == "__main__":
    main()
