import pytest
import torch
import torch.nn as nn
from conftest import SEED_RF

from mnistlab.explain.analysis import (
    confusion_matrix,
    input_gradient,
    model_summary,
    per_class_accuracy,
    receptive_field,
    unit_geometry,
)
from mnistlab.model import Net


def test_receptive_field_equals_the_seeds_table():
    rows = receptive_field(Net())
    assert [(r.layer, r.rf_out, r.n_out, r.j_out) for r in rows] == SEED_RF
    # each row starts where the previous one ended
    assert (rows[0].rf_in, rows[0].n_in, rows[0].j_in) == (1, 28, 1)
    for a, b in zip(rows, rows[1:]):
        assert (b.rf_in, b.n_in, b.j_in) == (a.rf_out, a.n_out, a.j_out)


def test_receptive_field_follows_forward_order_not_registration_order():
    class Shuffled(nn.Module):
        def __init__(self):
            super().__init__()
            self.pool = nn.MaxPool2d(2)  # registered first, called second
            self.conv = nn.Conv2d(1, 4, 5, padding=1)

        def forward(self, x):
            return self.pool(self.conv(x))

    rows = receptive_field(Shuffled())
    assert [(r.layer, r.rf_out, r.n_out, r.j_out) for r in rows] == [("conv", 5, 26, 1), ("pool", 6, 13, 2)]
    assert rows[0].padding == 1


def test_dilation_and_avgpool():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.ReLU(), nn.AvgPool2d(3, stride=3))
    rows = receptive_field(model)
    assert [(r.kernel, r.rf_out, r.n_out, r.j_out) for r in rows] == [(5, 5, 24, 1), (3, 7, 8, 3)]


def test_unknown_layer_is_reported_not_guessed():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3))
    rows = receptive_field(model)
    assert rows[0].rf_out == 3
    assert rows[1].kind == "Upsample" and rows[1].rf_out is None and "not analysed" in rows[1].note
    assert rows[2].rf_in is None and rows[2].rf_out is None  # nothing after it is guessed


def test_summary_total_and_shapes():
    stats = model_summary(Net())
    assert stats.total_params == 593_200
    shapes = [tuple(info.output_size) for info in stats.summary_list if info.depth == 1]
    assert shapes[:6] == [
        (1, 32, 26, 26),
        (1, 64, 24, 24),
        (1, 64, 12, 12),
        (1, 128, 10, 10),
        (1, 256, 8, 8),
        (1, 256, 4, 4),
    ]


def test_confusion_matrix():
    t = torch.tensor([0, 0, 1, 2, 2, 2])
    p = torch.tensor([0, 1, 1, 2, 2, 0])
    cm = confusion_matrix(t, p, num_classes=3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert per_class_accuracy(cm) == pytest.approx([0.5, 1.0, 2 / 3])


def test_unit_geometry_places_each_unit_on_the_input():
    """Unit i of a layer sees input rows offset + i * jump to offset + i * jump + rf - 1: checked against the
    gradient of that unit with respect to the input, for the seed's net and for a padded conv (offset -1)."""
    torch.manual_seed(0)
    padded = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, stride=2))
    for model, layer, unit in ((Net(), "conv3", (4, 7)), (padded, "2", (3, 5))):
        g = {d["layer"]: d for d in unit_geometry(model)}[layer]
        x = torch.randn(1, 1, 28, 28, requires_grad=True)
        out = {}
        model.get_submodule(layer).register_forward_hook(lambda m, i, o, out=out: out.update(y=o))
        model(x)
        out["y"][0, 0, unit[0], unit[1]].backward()
        rows, cols = x.grad[0, 0].abs().sum(1).nonzero(), x.grad[0, 0].abs().sum(0).nonzero()
        top, left = g["offset"] + unit[0] * g["jump"], g["offset"] + unit[1] * g["jump"]
        assert (int(rows.min()), int(rows.max())) == (max(top, 0), min(top + g["receptive_field"] - 1, 27))
        assert (int(cols.min()), int(cols.max())) == (max(left, 0), min(left + g["receptive_field"] - 1, 27))
    assert [(d["layer"], d["receptive_field"], d["jump"], d["offset"]) for d in unit_geometry(Net())][3:5] == [
        ("conv3", 10, 2, 0),
        ("conv4", 14, 2, 0),
    ]
    assert [d["offset"] for d in unit_geometry(padded)] == [-1, -1]


def test_input_gradient_is_the_gradient_of_the_answer():
    torch.manual_seed(0)
    model = Net().double().eval()
    x = torch.randn(1, 1, 28, 28, dtype=torch.float64)
    log_p, heat = input_gradient(model, x)
    assert torch.equal(log_p, model(x)[0].detach())
    assert heat.shape == (28, 28) and float(heat.max()) == 1.0 and float(heat.min()) >= 0
    c, eps = int(log_p.argmax()), 1e-6
    top = heat.flatten().argsort(descending=True)[:3]  # finite differences at the pixels with the largest heat
    bump = torch.zeros(784, dtype=torch.float64)
    slopes = []
    for i in top.tolist():
        bump.zero_()
        bump[i] = eps
        with torch.no_grad():
            up, down = model(x + bump.view(1, 1, 28, 28))[0, c], model(x - bump.view(1, 1, 28, 28))[0, c]
        slopes.append(abs(float(up - down)) / (2 * eps))
    scale = slopes[0]  # the heat is |gradient| / its largest value
    assert [s / scale for s in slopes] == pytest.approx(heat.flatten()[top].tolist(), rel=1e-4)
