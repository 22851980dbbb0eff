"""Calibration: a temperature that makes probabilities mean what they say, and the "not a digit" score and threshold.

The network outputs log-probabilities. Dividing them by a temperature T and renormalising is the same as dividing
the logits by T (the log-softmax's constant drops out), so T is fitted on the log-probabilities directly, by
minimising the negative log-likelihood on held-out digits (a one-dimensional search over log T).

The digit score is the maximum calibrated probability, rescaled from [1/C, 1] to [0, 1]: 1 when the model is sure
of one class, 0 when it spreads its probability evenly (which outlier exposure teaches it to do for not-digits).
The threshold is chosen on the same held-out digits so that `ACCEPT` of them are accepted.

`calibrated` and `digit_score` take NumPy arrays as well as torch tensors (and give back the same kind): a
`Classifier` on onnxruntime reads digits without importing torch, and with the same arithmetic (float32).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from mnistlab.pixels import is_tensor

if TYPE_CHECKING:
    import torch

ACCEPT = 0.995  # the share of held-out digits that must score at least the threshold
BINS = 15  # equal-width confidence bins for the expected calibration error
# The temperatures `fit_temperature` searches, and so the only ones a model card can hold: far outside them a card
# is damaged (at 1e-300 the logits divide to infinities, and every probability is NaN).
TEMPERATURES = (0.05, 20.0)


def calibrated(log_probs, temperature: float = 1.0):
    """Log-probabilities at temperature T (N x C), float32: a tensor for a tensor, else an array."""
    if is_tensor(log_probs):
        return (log_probs.float() / temperature).log_softmax(1)
    z = np.asarray(log_probs, dtype=np.float32) / np.float32(temperature)
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def digit_score(probs):
    """The digit score (N) of calibrated probabilities (N x C): max probability rescaled from [1/C, 1] to [0, 1].
    A tensor for a tensor, else an array."""
    c = probs.shape[1]
    if is_tensor(probs):
        top = probs.max(1).values if c >= 2 else probs.new_ones(probs.shape[0])
    else:
        top = np.asarray(probs).max(1) if c >= 2 else np.ones(probs.shape[0], np.float32)
    if c < 2:
        return top
    return ((top - 1 / c) / (1 - 1 / c)).clip(0, 1)


def nll(log_probs: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    import torch.nn.functional as F

    return float(F.nll_loss(calibrated(log_probs, temperature), labels))


def fit_temperature(log_probs: torch.Tensor, labels: torch.Tensor) -> float:
    """The T in TEMPERATURES that minimises the NLL of `labels` (golden-section search on log T; NLL in T is
    unimodal for a fixed set of logits)."""
    lo, hi = map(math.log, TEMPERATURES)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(log_probs, labels, math.exp(a)), nll(log_probs, labels, math.exp(b))
    for _ in range(40):  # the bracket shrinks by 0.618 each time: 40 steps reach ~1e-8 in log T
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(log_probs, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(log_probs, labels, math.exp(b))
    return math.exp((lo + hi) / 2)


def ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = BINS) -> float:
    """Expected calibration error: the confidence-weighted gap between confidence and accuracy, over `bins`
    equal-width bins of the top probability."""
    conf, pred = probs.max(1)
    import torch

    right = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += float(inside.float().mean()) * abs(float(conf[inside].mean()) - float(right[inside].mean()))
    return total


def threshold(scores: torch.Tensor, accept: float = ACCEPT) -> float:
    """The highest threshold that `accept` of `scores` (held-out digits') reach."""
    k = max(0, math.floor((1 - accept) * len(scores)))
    return float(scores.sort().values[k]) if len(scores) else 0.0


def calibrate(log_probs: torch.Tensor, labels: torch.Tensor) -> dict:
    """The calibration a model card stores, from its held-out digits' log-probabilities and labels."""
    t = fit_temperature(log_probs, labels)
    before, after = log_probs.float().exp(), calibrated(log_probs, t).exp()
    scores = digit_score(after)
    thr = threshold(scores)
    return {
        "temperature": t,
        "digit_threshold": thr,
        "images": len(labels),
        "ece_before": ece(before, labels),
        "ece_after": ece(after, labels),
        "accepted": float((scores >= thr).float().mean()),
    }
