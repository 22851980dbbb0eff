"""mnistlab.explain.plots: the figures a run saves, drawn headless and written where asked."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mnistlab.explain import plots
from mnistlab.explain.plots import plot_confusion, plot_history, plot_misclassified, plot_samples


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plots.plt.close("all")


def test_plot_samples_returns_a_figure_or_writes_a_png(tmp_path):
    images = torch.zeros(4, 1, 28, 28)
    targets, preds = torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])
    fig = plot_samples(images, targets, preds, n=4, classes=list("abcde"))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0] == "pred b / true b" and titles[2] == "pred a / true d"
    path = plot_samples(images, targets, preds, tmp_path / "s.png", n=4)
    assert path == tmp_path / "s.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_misclassified_shows_only_the_wrong_ones():
    images = torch.zeros(5, 1, 28, 28)
    targets, preds = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([0, 9, 2, 8, 4])
    fig = plot_misclassified(images, targets, preds)
    assert fig.get_suptitle() == "Misclassified: 2 of 5 (showing 2)"
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["pred 9 / true 1", "pred 8 / true 3"]


def test_plot_confusion_labels_its_axes_with_the_classes(tmp_path):
    cm = torch.tensor([[5, 1], [0, 7]])
    fig = plot_confusion(cm, classes=["cat", "dog"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]
    assert sorted(t.get_text() for t in ax.texts) == ["1", "5", "7"]  # zero counts are not written
    assert plot_confusion(cm, tmp_path / "cm.png").stat().st_size > 0


def test_plot_history_draws_the_four_curves_per_epoch():
    history = SimpleNamespace(  # what plot_history reads of a loops.History
        column=lambda name: [1, 2, 3],
        train_losses=[0.5, 0.3, 0.2],
        train_acc=[0.9, 0.95, 0.97],
        test_losses=[0.4, 0.3, 0.25],
        test_acc=[0.92, 0.96, 0.98],
    )
    fig = plot_history(history)
    assert [ax.get_title() for ax in fig.axes] == [
        "Training Loss",
        "Training Accuracy (%)",
        "Test Loss",
        "Test Accuracy (%)",
    ]
    x, y = fig.axes[3].lines[0].get_data()
    assert list(x) == [1, 2, 3] and list(y) == pytest.approx([92, 96, 98])
