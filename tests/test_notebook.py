from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "s5.ipynb"


def test_notebook_executes_with_small_parameters(data_dir, mirror, monkeypatch):
    monkeypatch.setenv("MNISTLAB_DATA", str(data_dir))
    monkeypatch.setenv("MNISTLAB_MIRROR", str(mirror))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "s5.ipynb needs exactly one cell tagged 'parameters'"
    params[0].source = 'RECIPE = "default"\nEPOCHS = 2\nLIMIT_TRAIN = 1000\nLIMIT_TEST = 500\nDEVICE = "cpu"'
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Total params: 593,200" in text
    assert "Test set: Average loss:" in text and "/500 (" in text
    rf = [o for c in nb.cells for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]
    assert rf and "| pool2 | MaxPool2d | 14 | 8 | 2 | 2 | 2 | 0 | 16 | 4 | 4 |" in rf[0]["data"]["text/markdown"]
    pngs = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(pngs) == 3  # curves, samples, misclassified
    plain = [
        o["data"]["text/plain"] for c in nb.cells for o in c.get("outputs", []) if "text/plain" in o.get("data", {})
    ]
    assert any(t.startswith("[Prediction(digit=") and "seven_pen.png" in t for t in plain)
