"""Shared fixtures and helpers: MNIST fetched as `mnistlab train` fetches it, the CLI in a subprocess or in this
process, one-line errors, and one model trained for an epoch."""

from __future__ import annotations

import contextlib
import io
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parents[1]

# The property tests' profiles (issue 31). In CI (`CI` set, as `.ci/run` runs) the examples are derived from each
# test's own code (`derandomize`) and no example database is read: the same commit gets the same verdict on every
# clean clone, and a failure is reproduced by running the same test again. Elsewhere each run draws new examples
# (hypothesis's default, with its database), so local runs go on finding cases; `benchmarks/properties.py` runs
# them with many more examples and fresh seeds. `HYPOTHESIS_PROFILE` picks one by name.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.register_profile("explore", print_blob=True, database=None)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)
EXAMPLES_SCALE = float(os.environ.get("MNISTLAB_EXAMPLES_SCALE", "1"))  # benchmarks/properties.py raises it


def examples(n: int) -> int:
    """A property test's number of examples: `n` as the suite runs it, times $MNISTLAB_EXAMPLES_SCALE."""
    return max(1, round(n * EXAMPLES_SCALE))


def pytest_report_header(config) -> str:
    return f"hypothesis profile: {PROFILE} (derandomize={settings.default.derandomize}), examples x{EXAMPLES_SCALE:g}"


@pytest.fixture(autouse=True)
def _seeded(request):
    """Every test starts from RNG states derived from its own id (Python's, NumPy's global and torch's), so an
    unseeded `torch.randn` or `random.uniform` in a test draws the same values on every run, in any order."""
    import random

    import numpy as np

    seed = zlib.crc32(request.node.nodeid.encode())
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:  # (a test that never imports torch does not pay for it here)
        sys.modules["torch"].manual_seed(seed)
    yield


# The seed's receptive-field table (README, DEVELOPERS.md): layer, then rf, n, j after the layer.
SEED_RF = [
    ("conv1", 3, 26, 1),
    ("conv2", 5, 24, 1),
    ("pool1", 6, 12, 2),
    ("conv3", 10, 10, 2),
    ("conv4", 14, 8, 2),
    ("pool2", 16, 4, 4),
]


@contextlib.contextmanager
def file_size_limit(limit: int):
    """Writes past `limit` bytes fail with EFBIG (Python ignores SIGXFSZ): a disk that fills up midway."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height 8-bit RGB pixels, with correct CRCs (a pixel bomb: its pixel
    data is never there to decode)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def encoded(img, fmt: str = "PNG", **kw) -> bytes:
    """An image (PIL, or a NumPy array) as the bytes of an image file in `fmt`."""
    from PIL import Image

    buf = io.BytesIO()
    (img if isinstance(img, Image.Image) else Image.fromarray(img)).save(buf, format=fmt, **kw)
    return buf.getvalue()


def centre_of_mass(a) -> tuple[float, float]:
    """(row, column) of an image's centre of mass, negative values counted as none."""
    import numpy as np

    a = np.clip(a, 0, None)
    ys, xs = np.indices(a.shape)
    return float((a * ys).sum() / a.sum()), float((a * xs).sum() / a.sum())


def draw_seven(canvas=(200, 200), box=(40, 30, 150, 170), width=16, ink=0, paper=255, mode="L"):
    """A 7 drawn with a pen: a bar along the top of `box`, then a stroke down to its bottom."""
    from PIL import Image, ImageDraw

    img = Image.new(mode, canvas, paper)
    x0, y0, x1, y1 = box
    ImageDraw.Draw(img).line([(x0, y0), (x1, y0), (x0 + (x1 - x0) * 0.35, y1)], fill=ink, width=width, joint="curve")
    return img


@pytest.fixture(scope="session")
def bundled():
    """The bundled weights on the CPU (`mnistlab.load`), loaded once for the whole session."""
    import mnistlab

    return mnistlab.load(device="cpu")


def run_cli(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """`python -m mnistlab ARGS` in a subprocess, text output captured; past `timeout` s it raises (the test
    fails)."""
    return subprocess.run(
        [sys.executable, "-m", "mnistlab", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def untimed(records: list[dict]) -> list[dict]:
    """Metric records without the wall-clock keys (train_time_s, imgs_per_s, eval_time_s): those differ run to run."""
    return [{k: v for k, v in r.items() if not k.endswith(("_time_s", "_per_s"))} for r in records]


def run_main(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    """`mnistlab ARGS` through `mnistlab.cli.main` in this process, with `env` as the environment, `cwd` as the
    working folder, and stdout and stderr captured, returned as `run_cli` returns them.

    For the many checks that a mistake ends in one line and status 2: in a subprocess most of each one's time is
    spent importing torch. What needs a process of its own (signals, kills, --debug tracebacks, the exit status an
    interpreter returns, warnings printed at import) stays with `run_cli`, and enough checks use it to cover that
    path. An exception that escapes `main` is raised here, so it fails the test as a traceback would."""
    import torch

    from mnistlab.cli import main

    argv = [str(a) for a in args]
    saved_env, saved_cwd, threads = dict(os.environ), os.getcwd(), torch.get_num_threads()
    handler = signal.getsignal(signal.SIGTERM)
    out, err = io.StringIO(), io.StringIO()
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as e:  # argparse's own exit
                status = e.code if isinstance(e.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        torch.set_num_threads(threads)
        signal.signal(signal.SIGTERM, handler)
    return subprocess.CompletedProcess(["mnistlab", *argv], status, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def serving(env=None, *args, timeout=600):
    """`mnistlab serve --port 0 ARGS` in a subprocess; yields its URL ("http://127.0.0.1:PORT/") once it listens."""
    p = subprocess.Popen(
        [sys.executable, "-m", "mnistlab", "serve", "--port", "0", *map(str, args)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = p.stderr.readline()  # printed once the socket listens (or the one-line error)
        m = re.search(r"(http://\S+/)", line)
        assert m, (line, p.poll())
        yield m.group(1)
    finally:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stderr.close()


def one_line_error(r: subprocess.CompletedProcess) -> str:
    """Assert that a finished command failed the way a user's mistake must: exit 2, one line, no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnistlab: error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data folder holding MNIST, got the way `mnistlab train` gets it.

    With $MNISTLAB_MIRROR (as in CI) a fresh folder is filled from that mirror; without it, the user's own data
    folder ($MNISTLAB_DATA or ~/.cache/mnistlab) is used, downloading from the internet if it is empty.
    """
    from mnistlab.data import download as data

    d = tmp_path_factory.mktemp("mnist-data") if os.environ.get("MNISTLAB_MIRROR") else data.default_data_dir()
    data.load_tensors(True, d)
    data.load_tensors(False, d)
    return d


@pytest.fixture(scope="session")
def mirror(data_dir) -> Path:
    """A folder holding the four verified MNIST .gz files (usable as a mirror)."""
    return data_dir / "MNIST" / "raw"


@pytest.fixture
def env(data_dir, mirror) -> dict:
    """The environment for CLI subprocesses: the test data folder and mirror."""
    return dict(os.environ, MNISTLAB_DATA=str(data_dir), MNISTLAB_MIRROR=str(mirror))


@pytest.fixture(scope="session")
def trained_one_epoch(data_dir, mirror):
    """The default recipe trained for one full epoch on real MNIST on the CPU (about 30 s); a `Run`."""
    from mnistlab.recipes import get_recipe
    from mnistlab.train.training import fit

    recipe = get_recipe("default", epochs=1, device="cpu")
    return fit(recipe, data_dir=data_dir, mirror=str(mirror), progress=False, echo=False)


@pytest.fixture(scope="session")
def served(data_dir) -> str:
    """The URL of one `mnistlab serve` (bundled weights, a free localhost port) shared by the tests that need one."""
    with serving(dict(os.environ, MNISTLAB_DATA=str(data_dir))) as url:
        yield url


@pytest.fixture(scope="session")
def bundled_onnx(bundled, tmp_path_factory) -> Path:
    """The bundled weights exported once as ONNX (`mnistlab.export.onnx_export.export_onnx`), for the ONNX tests."""
    from mnistlab.export.onnx_export import export_onnx

    return export_onnx(bundled, tmp_path_factory.mktemp("onnx") / "bundled.onnx")
