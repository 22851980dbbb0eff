"""mnistlab.utils: the seed notebook's names, each still importable from where it moved."""

from __future__ import annotations

from mnistlab import utils


def test_every_name_the_notebook_imports_is_there_and_callable():
    assert set(utils.__all__) >= {"train", "test", "get_predictions", "get_device", "set_seed", "History"}
    for name in utils.__all__:
        assert callable(getattr(utils, name)), name
    assert utils.get_predictions is utils.predictions
