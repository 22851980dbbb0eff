"""Why /v1/explain uses input gradients and not Grad-CAM: how much of each heat-map lies on the ink, over the first
200 MNIST test digits, for the bundled model (a ratio of 1.0 is no better than a uniform map).

    python benchmarks/results/explain-2026-11-29/gradcam_vs_gradient.py   # prints the table, writes result.json
"""

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mnistlab.analysis import input_gradient, unit_geometry

import mnistlab
from mnistlab.data import load_tensors


def spread(values, g, size=(28, 28)):
    """Each input pixel gets the mean of the units whose receptive field holds it (offset 0 here)."""
    box = torch.ones(1, 1, g["receptive_field"], g["receptive_field"])
    total = F.conv_transpose2d(values[None, None], box, stride=g["jump"])[0, 0]
    count = F.conv_transpose2d(torch.ones_like(values)[None, None], box, stride=g["jump"])[0, 0]
    return (total / count)[: size[0], : size[1]]


def cams(model, x, layer, geometry):
    seen = {}
    hook = model.get_submodule(layer).register_forward_hook(lambda m, i, o: seen.update(a=o))
    log_p = model(x)[0]
    (grad,) = torch.autograd.grad(log_p[log_p.argmax()], seen["a"])
    hook.remove()
    a, grad = seen["a"][0].detach().relu(), grad[0]
    gradcam = F.relu((grad.mean((1, 2))[:, None, None] * a).sum(0))  # channel weights: mean gradient
    hirescam = F.relu((grad * a).sum(0))  # element-wise gradient x activation
    return spread(gradcam, geometry[layer]), spread(hirescam, geometry[layer])


def on_ink(heat, ink):
    return float((heat * ink).sum() / heat.sum().clamp(min=1e-12)) / float(ink.mean())


clf = mnistlab.load(device="cpu")
geometry = {g["layer"]: g for g in unit_geometry(clf.model)}
images, _ = load_tensors(False, limit=200)
scores: dict[str, list[float]] = {}
for img in images:
    seen = img.float() / 255
    x = ((seen - clf.mean) / clf.std)[None, None]
    ink = (seen > 0.1).float()
    scores.setdefault("input gradient", []).append(on_ink(input_gradient(clf.model, x)[1], ink))
    for layer in ("conv3", "conv4"):
        gradcam, hirescam = cams(clf.model, x, layer, geometry)
        scores.setdefault(f"Grad-CAM {layer}", []).append(on_ink(gradcam, ink))
        scores.setdefault(f"HiResCAM {layer}", []).append(on_ink(hirescam, ink))
result = {k: {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))} for k, v in scores.items()}
print("| heat-map | share on ink / ink's share of the image, mean (min-max) over 200 digits |\n|---|---|")
for k, r in result.items():
    print(f"| {k} | {r['mean']:.2f} ({r['min']:.2f}-{r['max']:.2f}) |")
Path(__file__).with_name("result.json").write_text(json.dumps(result, indent=1) + "\n")
