"""mnistlab.serve.reading: what a preparation worker process runs, kept free of torch and FastAPI; its errors
travel back to the server whole."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest

pytest.importorskip("fastapi", reason='mnistlab serve needs the serve extra: pip install "mnistlab[serve]"')

from conftest import REPO  # noqa: E402

from mnistlab.serve.reading import ApiError, prepare_upload  # noqa: E402

SEVEN = (REPO / "examples" / "digits" / "seven_pen.png").read_bytes()


def test_an_api_error_pickles_whole():
    e = pickle.loads(pickle.dumps(ApiError(422, "no ink", {"X": "1"}, reason="no_ink")))
    assert (e.status, e.message, e.headers, e.reason, str(e)) == (422, "no ink", {"X": "1"}, "no_ink", "no ink")


def test_a_worker_imports_neither_torch_nor_fastapi():
    """What the fork server preloads (issue 28: a worker per image must not cost a torch import)."""
    code = "import sys, mnistlab.serve.reading; print(sorted({'torch', 'fastapi', 'onnxruntime'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_candidates_of_a_seven():
    assert len(prepare_upload(SEVEN, max_pixels=10**7)) >= 1
