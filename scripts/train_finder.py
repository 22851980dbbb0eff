"""Train the digit finder (`mnistlab.reading.finder`) on synthetic scenes made on the fly, on the CPU by default.

    nice -n 10 python scripts/train_finder.py --out runs/finder --minutes 25 --seed 1
    nice -n 10 python scripts/train_finder.py --out runs/finder --minutes 25 --seed 1 --bundle  # and ship it
    nice -n 10 python scripts/train_finder.py --out runs/finder-2 --init runs/finder/finder.safetensors \
        --minutes 40 --seed 2 --val-seed 1001 --lr 1.5e-3            # train on from a run, on other scenes

Scenes come from `synth.scenes` (MNIST's training split, DejaVu fonts, procedural backgrounds and
distractors). A pool of POOL scenes is kept and half of each batch is replaced by fresh scenes every step, so
making scenes costs about as much as training on them. The learning rate follows a cosine over the time budget.
The validation set is generated once from another seed (`--seed` + VAL_SEED) with the wider `scenes.WIDE` ranges;
precision and recall there (IoU >= 0.5, heatmap peak >= frame.DETECT) go to the log and the card. Writes
OUT/finder.safetensors (the card as its metadata), OUT/card.json and OUT/log.jsonl; `--bundle` copies the weights
to src/mnistlab/weights/finder.safetensors and writes their ONNX copy, finder.onnx, beside them (the finder that
onnxruntime runs). MNIST's test split is never read.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from mnistlab.export.onnx_export import export_finder
from mnistlab.reading import finder, frame
from mnistlab.reading.read import bundled_finder, bundled_finder_onnx, load_finder
from mnistlab.synth import scenes

POOL = 256  # scenes kept for reuse: each is trained on about twice
VAL_SEED = 1000  # the validation scenes' seed is --seed + this: never a training scene
TIGHT = 0.4  # the share of one-digit training scenes cut close around their digit (`tight`)
CUTS = 0.5  # the share of training scenes cut to a wide or tall picture (0.35 of the validation scenes)


def tight(g: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Grey picture `g` cut around its one digit's `box`: on each side a margin of -4 to +2% of the box (the ink
    touching or just cut by that edge) or, as often, up to 40% of it; the box clipped to the cut (its label)."""
    size = np.array([box[2] - box[0], box[3] - box[1]] * 2, np.float32)
    near = rng.random(4) < 0.5
    margin = np.where(near, rng.uniform(-0.04, 0.02, 4), rng.uniform(0, 0.4, 4)) * size
    h, w = g.shape
    x0, y0 = max(0, int(box[0] - margin[0])), max(0, int(box[1] - margin[1]))
    x1, y1 = min(w, int(np.ceil(box[2] + margin[2]))), min(h, int(np.ceil(box[3] + margin[3])))
    clipped = np.clip(box - [x0, y0, x0, y0], 0, [x1 - x0, y1 - y0] * 2)
    return g[y0:y1, x0:x1], clipped[None].astype(np.float32)


def as_input(scene: scenes.Scene, rng: np.random.Generator, train: bool) -> tuple[torch.Tensor, np.ndarray]:
    """A scene as the finder sees it (frame.prepare), sometimes cut to a wide or tall picture (then padded);
    boxes clipped to the cut, dropped when under 60% of their area is left. In training, a scene of one digit is
    often cut close around it instead (`tight`: a digit filling the picture, touching its edges)."""
    g = frame.grey(scene.image)
    S = g.shape[0]
    boxes = scene.boxes.copy()
    if train and len(boxes) == 1 and boxes[0, 2] - boxes[0, 0] >= 8 and rng.random() < TIGHT:
        g, boxes = tight(g, boxes[0], rng)
    elif rng.random() < (CUTS if train else 0.35):
        keep = int(S * rng.uniform(0.4, 1.0))
        if rng.random() < 0.5:
            g = g[:keep]
            clipped = boxes.copy()
            clipped[:, 3] = np.minimum(clipped[:, 3], keep)
        else:
            g = g[:, :keep]
            clipped = boxes.copy()
            clipped[:, 2] = np.minimum(clipped[:, 2], keep)
        area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
        boxes = clipped[area(clipped) >= 0.6 * np.maximum(area(boxes), 1)]
    framed = frame.prepare(g)
    x = torch.from_numpy(framed.input)
    if train:
        x[0] *= float(rng.uniform(0.5, 1.3))  # contrast (the input is this scene's own array)
    return x, boxes * framed.scale


def batch_of(pool: list, rng: np.random.Generator, n: int, train: bool = True):
    picks = rng.choice(len(pool), n, replace=False)
    xs, bs = zip(*(as_input(pool[i], rng, train) for i in picks))
    return torch.stack(xs), list(bs)


def evaluate(model: finder.Finder, val: list) -> dict:
    """Precision and recall on the validation scenes at IoU >= 0.5 and peak >= frame.DETECT."""
    model.eval()
    tp = n_found = n_true = 0
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        for s in range(0, len(val), 16):
            xs, bs = zip(*(as_input(v, rng, False) for v in val[s : s + 16]))
            boxes, scores = frame.decode(*(t.numpy() for t in model(torch.stack(xs))))
            for b, sc, truth in zip(boxes, scores, bs):
                found = b[sc >= frame.DETECT]
                tp += len(frame.match(found, truth))
                n_found += len(found)
                n_true += len(truth)
    model.train()
    return {"precision": tp / max(n_found, 1), "recall": tp / max(n_true, 1), "found": n_found, "true": n_true}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/finder"))
    p.add_argument("--minutes", type=float, default=25.0, help="training time budget (the schedule follows it)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--val", type=int, default=256, help="validation scenes (WIDE ranges, another seed)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    p.add_argument("--bundle", action="store_true", help="copy the weights into the package, and their ONNX copy")
    p.add_argument("--init", type=Path, default=None, help="start from these finder weights (a run's card kept)")
    p.add_argument("--val-seed", type=int, default=None, help="the validation scenes' seed (default: seed + 1000)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    sprites = scenes.load_sprites(seed=a.seed)
    val_seed = a.seed + VAL_SEED if a.val_seed is None else a.val_seed
    val = scenes.make_scenes(sprites, a.val, np.random.default_rng(val_seed), r=scenes.WIDE)
    pool = scenes.make_scenes(sprites, POOL, rng)
    model, before = (finder.Finder(), None) if a.init is None else load_finder(a.init)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    log = (a.out / "log.jsonl").open("w")
    start, step, last_eval = time.monotonic(), 0, 0.0
    budget = a.minutes * 60
    while (elapsed := time.monotonic() - start) < budget:
        frac = elapsed / budget
        for group in opt.param_groups:
            group["lr"] = a.lr * (min(1.0, step / 50) * 0.5 * (1 + math.cos(math.pi * frac)))
        fresh = scenes.make_scenes(sprites, a.batch // 2, rng)
        for s in fresh:
            pool[int(rng.integers(len(pool)))] = s
        x, boxes = batch_of(pool, rng, a.batch)
        total, parts = finder.loss(model(x), finder.targets(boxes, x.shape[-1] // frame.STRIDE))
        opt.zero_grad()
        total.backward()
        opt.step()
        step += 1
        if step % 20 == 0:
            rec = {"step": step, "s": round(elapsed), "lr": opt.param_groups[0]["lr"], **parts}
            if elapsed - last_eval > budget / 6:
                rec.update(evaluate(model, val))
                last_eval = elapsed
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(rec, flush=True)
    final = evaluate(model, val)
    card = {
        "what": "mnistlab digit finder (reading.finder.Finder)",
        "recipe": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "steps": step, "scenes_made": POOL + step * (a.batch // 2),
        "minutes": round((time.monotonic() - start) / 60, 1),
        "bytes": finder.parameter_bytes(model), "detect": frame.DETECT, "init": before,
        "val": {**final, "scenes": a.val, "seed": val_seed, "ranges": "scenes.WIDE", "iou": 0.5},
        "data": "MNIST training split, DejaVu fonts, procedural scenes (synth.scenes); never MNIST's test split",
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip
    log.write(json.dumps({"step": step, "final": final}) + "\n")
    log.close()
    state = {k: v.contiguous() for k, v in model.state_dict().items() if v.is_floating_point()}
    save_file(state, str(a.out / "finder.safetensors"), metadata={"card": json.dumps(card)})
    (a.out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["val"]))
    if a.bundle:
        shutil.copyfile(a.out / "finder.safetensors", bundled_finder())
        export_finder(model.eval(), card, bundled_finder_onnx())
        print(f"bundled as {bundled_finder()} and {bundled_finder_onnx()}")


if __name__ == "__main__":
    main()
