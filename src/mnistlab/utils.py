"""The seed's names, kept for its notebook: `train`, `test`, `History` and friends, from the modules that own them."""

from mnistlab.train.loops import EpochResult, History, predictions, test_line, train_line, train_step
from mnistlab.train.loops import evaluate as test
from mnistlab.train.loops import train_epoch as train
from mnistlab.train.runtime import amp_dtype, autocast, get_device, set_seed

get_predictions = predictions


__all__ = [
    "EpochResult",
    "History",
    "amp_dtype",
    "autocast",
    "get_device",
    "get_predictions",
    "set_seed",
    "test",
    "test_line",
    "train",
    "train_line",
    "train_step",
]
