"""MNIST's pixel normalisation, without torch: the training mean and std, and (x - mean) / std on arrays or tensors."""

from __future__ import annotations

import sys

MEAN, STD = 0.1307, 0.3081  # MNIST's training-set pixel mean and std (on 0..1): the seed's normalisation


def is_tensor(x: object) -> bool:
    """Whether `x` is a torch tensor, without importing torch: a tensor can only exist once torch is imported, so
    when it is not in sys.modules the answer is no (the reading path on ONNX never imports it).

    While another thread imports torch (serve's first explanation on the onnx engine), sys.modules already holds
    the half-made module, without `Tensor` until torch/_tensor.py has run: no tensor of that class can exist yet,
    so a module without it answers no, rather than raising AttributeError in the predictions running meanwhile."""
    tensor = getattr(sys.modules.get("torch"), "Tensor", None)
    return isinstance(tensor, type) and isinstance(x, tensor)


def normalize(x, mean: float = MEAN, std: float = STD):
    """Pixels on 0..1 (a float tensor or array) as the network takes them: (x - mean) / std, in x's dtype."""
    if is_tensor(x):
        return x.sub(mean).div_(std)  # one new tensor (it may hold a whole dataset)
    return (x - mean) / std
