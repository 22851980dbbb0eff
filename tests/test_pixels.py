"""mnistlab.pixels: MNIST's normalisation in one place, the same on arrays and tensors, and no torch imported."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from conftest import REPO

from mnistlab import pixels
from mnistlab.data import datasets
from mnistlab.pixels import MEAN, STD, is_tensor, normalize


def test_normalize_is_the_same_on_arrays_and_tensors():
    x = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)
    a, t = normalize(x), normalize(torch.from_numpy(x.copy()))
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and isinstance(t, torch.Tensor)
    assert np.allclose(a, t.numpy(), atol=1e-6) and np.isclose(a[0, 0], -MEAN / STD)


def test_the_constants_have_one_place_and_mnist_is_normalised_by_them():
    """MEAN and STD are written in pixels.py only: no other module of mnistlab assigns or re-exports them."""
    src = Path(pixels.__file__).parent
    for path in src.rglob("*.py"):
        if path.name == "pixels.py":
            continue
        text = path.read_text()
        assert not re.search(r"^(MEAN|STD)\s*=", text, re.M), f"{path} defines MEAN or STD again"
        assert "__all__" not in text or '"MEAN"' not in text, f"{path} re-exports MEAN"
    assert datasets.get("mnist").mean == MEAN and datasets.get("mnist").std == STD


def test_is_tensor_without_importing_torch():
    assert is_tensor(torch.zeros(1)) and not is_tensor(np.zeros(1)) and not is_tensor([0.0])
    code = "import sys, numpy; from mnistlab.pixels import is_tensor; "
    code += "print(is_tensor(numpy.zeros(1)), 'torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.split() == ["False", "False"], r.stderr


HALF_IMPORTED = """
import sys, threading
from pathlib import Path

import numpy as np
sys.path.insert(0, sys.argv[1])  # a package named torch that stops half-way through its import, until released
import gate
importing = threading.Thread(target=__import__, args=("torch",))
importing.start()
gate.halfway.wait(60)
assert "torch" in sys.modules and not hasattr(sys.modules["torch"], "Tensor")
import mnistlab
from mnistlab.calibration import calibrated, digit_score
from mnistlab.pixels import is_tensor
from mnistlab.serve.state import Limits, State
state = State(Limits())
state.classifier = clf = mnistlab.load(None, engine="onnx")
probs = state.forward([np.zeros((2, 28, 28), np.float32), np.ones((1, 28, 28), np.float32)])
score = digit_score(np.exp(calibrated(np.zeros((1, 10)))))
print(is_tensor(np.zeros(1)), [p.shape for p in probs], clf.predict(sys.argv[2])[0].digit, score.shape)
gate.release.set()
importing.join(60)
print(is_tensor(sys.modules["torch"].Tensor()), is_tensor(np.zeros(1)))
"""


def test_a_half_imported_torch_is_no_tensor_and_predictions_go_on(tmp_path):
    """serve --engine onnx: the first explanation imports torch in a thread while predictions run. A package named
    torch that waits half-way through its import (before Tensor exists) stands in for it, deterministically: the
    predictions, calibration and the server's batch split run meanwhile, and is_tensor answers no."""
    package = tmp_path / "torch"
    package.mkdir()
    (tmp_path / "gate.py").write_text("import threading\nhalfway, release = threading.Event(), threading.Event()\n")
    (package / "__init__.py").write_text(
        "import gate\ngate.halfway.set()\ngate.release.wait(60)\n\nclass Tensor:\n    pass\n"
    )
    seven = REPO / "examples" / "digits" / "seven_pen.png"
    r = subprocess.run(
        [sys.executable, "-c", HALF_IMPORTED, str(tmp_path), str(seven)], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["False [(2, 10), (1, 10)] 7 (1,)", "True False"], r.stdout


def test_is_tensor_of_a_module_without_tensor_is_no(monkeypatch):
    import types

    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # what a half-made import looks like
    assert not is_tensor(np.zeros(1))
