"""Pictures of a run (matplotlib, headless Agg): curves, sample predictions, misclassified digits, confusion."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # headless everywhere but in a notebook, where figures show inline
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from mnistlab.pixels import MEAN, STD  # noqa: E402


def _show(x: torch.Tensor, mean: float, std: float):
    return (x.squeeze().float() * std + mean).clamp(0, 1).numpy()


def plot_history(history, path: str | Path | None = None):
    """The seed's 2x2 figure: training loss, training accuracy, test loss, test accuracy per epoch."""
    epochs = history.column("epoch")
    fig, axs = plt.subplots(2, 2, figsize=(12, 8))
    panels = [
        ("Training Loss", history.train_losses, 1),
        ("Training Accuracy (%)", history.train_acc, 100),
        ("Test Loss", history.test_losses, 1),
        ("Test Accuracy (%)", history.test_acc, 100),
    ]
    for ax, (title, values, scale) in zip(axs.flat, panels):
        ax.plot(epochs, [v * scale for v in values], marker="o")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _finish(fig, path)


def _name(classes, i) -> str:
    return str(classes[int(i)]) if classes is not None else str(int(i))


def plot_samples(images, targets, preds, path=None, *, n: int = 12, mean=MEAN, std=STD, title=None, classes=None):
    """A grid of the first `n` images with predicted and true labels (red where they differ); `classes` names
    them ("Sneaker", "a", ...), else the class index is shown."""
    n = min(n, len(images))
    cols = min(6, max(n, 1))
    rows = max(1, -(-n // cols))
    fig, axs = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows), squeeze=False)
    for i, ax in enumerate(axs.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_show(images[i], mean, std), cmap="gray")
            ok = int(preds[i]) == int(targets[i])
            label = f"pred {_name(classes, preds[i])} / true {_name(classes, targets[i])}"
            ax.set_title(label, fontsize=9 if len(label) < 22 else 7, color="black" if ok else "red")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path)


def plot_misclassified(images, targets, preds, path=None, *, n: int = 24, mean=MEAN, std=STD, classes=None):
    """The first `n` misclassified images, each titled pred vs true."""
    wrong = (preds != targets).nonzero().flatten()[:n]
    total = int((preds != targets).sum())
    return plot_samples(
        images[wrong],
        targets[wrong],
        preds[wrong],
        path,
        n=len(wrong),
        mean=mean,
        std=std,
        title=f"Misclassified: {total} of {len(targets)} (showing {len(wrong)})",
        classes=classes,
    )


def plot_confusion(cm: torch.Tensor, path=None, classes=None):
    """Confusion matrix with counts (rows true, columns predicted), axes labelled with `classes` if given."""
    k = cm.shape[0]
    side = max(7.0, 0.3 * k)
    fig, ax = plt.subplots(figsize=(side, side * 6 / 7))
    im = ax.imshow(cm.numpy(), cmap="Blues", norm=matplotlib.colors.LogNorm(vmin=1, vmax=max(int(cm.max()), 2)))
    for t in range(k):
        for p in range(k):
            v = int(cm[t, p])
            if v:
                ax.text(p, t, str(v), ha="center", va="center", fontsize=8, color="white" if t == p else "black")
    names = [_name(classes, i) for i in range(k)]
    ax.set_xticks(range(k), names, rotation=90 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test set)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return _finish(fig, path)


def _finish(fig, path):
    if path is None:
        return fig
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
