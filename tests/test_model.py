import torch

from mnistlab.model import Net

SEED_SHAPES = {
    "conv1": (32, 26, 26),
    "conv2": (64, 24, 24),
    "pool1": (64, 12, 12),
    "conv3": (128, 10, 10),
    "conv4": (256, 8, 8),
    "pool2": (256, 4, 4),
    "fc1": (50,),
    "fc2": (10,),
}


def test_parameter_count_is_the_seeds():
    assert sum(p.numel() for p in Net().parameters()) == 593_200


def test_layer_output_shapes_are_the_seeds():
    model = Net()
    seen = {}
    for name, m in model.named_children():
        m.register_forward_hook(lambda mod, i, o, name=name: seen.__setitem__(name, tuple(o.shape[1:])))
    model(torch.zeros(2, 1, 28, 28))
    assert seen == SEED_SHAPES


def test_output_is_log_probabilities():
    out = Net()(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4))


def test_class_count_changes_only_the_last_layer():
    assert sum(p.numel() for p in Net(num_classes=10).parameters()) == 593_200
    letters = Net(num_classes=26)
    assert sum(p.numel() for p in letters.parameters()) == 593_200 + 16 * 51
    assert letters(torch.zeros(3, 1, 28, 28)).shape == (3, 26)
