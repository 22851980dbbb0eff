"""Shared fixtures: the local MNIST mirror, a session data folder, and one model trained for an epoch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_mirror() -> Path:
    env = os.environ.get("MNISTLAB_MIRROR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data" / "MNIST" / "raw")
    for c in candidates:
        if (c / "t10k-images-idx3-ubyte.gz").is_file():
            return c
    raise RuntimeError(
        "the tests need the four MNIST .gz files: set MNISTLAB_MIRROR to a folder holding them "
        f"(looked in {', '.join(map(str, candidates))})"
    )


@pytest.fixture(scope="session")
def mirror() -> Path:
    return _find_mirror()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, mirror) -> Path:
    """A data folder filled once from the mirror (md5-checked, extracted)."""
    from mnistlab import data

    d = tmp_path_factory.mktemp("mnist-data")
    data.load_tensors(True, d, str(mirror))
    data.load_tensors(False, d, str(mirror))
    return d


@pytest.fixture(scope="session")
def trained_one_epoch(data_dir, mirror):
    """The default recipe trained for one full epoch on real MNIST on the CPU (about 30 s); a RunResult."""
    from mnistlab.recipes import get_recipe
    from mnistlab.trainer import fit

    recipe = get_recipe("default", epochs=1, device="cpu")
    return fit(recipe, data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)
