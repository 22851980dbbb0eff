"""User images -> MNIST-style input: robustness (fuzzing, bad files, huge headers), invariance, accuracy on real
digits re-rendered as photos-like files, and safe weight loading."""

from __future__ import annotations

import pickle
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageDraw, ImageFile

from mnistlab import checkpoints
from mnistlab.data import load_tensors
from mnistlab.errors import UserError
from mnistlab.model import Net
from mnistlab.predict import format_result, iter_image_files, load_model, predict
from mnistlab.preprocess import MAX_PIXELS, NoInkError, open_image, preprocess, to_grayscale

MEAN, STD = 0.1307, 0.3081


def unnormalise(t: torch.Tensor) -> np.ndarray:
    return (t[0].numpy() * STD + MEAN).astype(np.float64)


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    a = np.clip(a, 0, None)
    m = a.sum()
    idx = np.arange(a.shape[0])
    return float((a.sum(1) * idx).sum() / m), float((a.sum(0) * idx).sum() / m)


def bbox_size(a: np.ndarray, level: float = 0.05) -> tuple[int, int]:
    rows = np.flatnonzero((a > level).any(1))
    cols = np.flatnonzero((a > level).any(0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def blur(a: np.ndarray) -> np.ndarray:
    """Two 3x3 box blurs: compare digits' shapes without penalising one-pixel stroke shifts."""
    for _ in range(2):
        p = np.pad(a, 1)
        a = sum(p[i : i + a.shape[0], j : j + a.shape[1]] for i in range(3) for j in range(3)) / 9
    return a


def check_digit_tensor(t: torch.Tensor) -> np.ndarray:
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and tuple(t.shape) == (1, 28, 28)
    assert torch.isfinite(t).all()
    a = unnormalise(t)
    assert a.min() > -1e-4 and a.max() < 1 + 1e-4
    cy, cx = centre_of_mass(a)
    assert abs(cy - 14) <= 1.0 and abs(cx - 14) <= 1.0, (cy, cx)
    h, w = bbox_size(a)
    assert 19 <= max(h, w) <= 21, (h, w)
    return a


# --------------------------------------------------------------------------------------------------------------
# Fuzzing: any finite array gives a finite [1, 28, 28] tensor or a UserError (NoInkError included), nothing else.


def _check_outcome(arr: np.ndarray) -> None:
    try:
        t = preprocess(arr)
    except UserError:  # NoInkError is one
        return
    assert isinstance(t, torch.Tensor)
    assert tuple(t.shape) == (1, 28, 28) and t.dtype == torch.float32
    assert torch.isfinite(t).all()


@st.composite
def random_images(draw):
    h = draw(st.integers(1, 200))
    w = draw(st.integers(1, 200))
    channels = draw(st.sampled_from([None, 3, 4]))
    dtype = draw(st.sampled_from([np.uint8, np.float32]))
    kind = draw(st.sampled_from(["constant", "uniform", "blob", "binary", "wide", "gauss"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels is None else (h, w, channels)
    top = 255.0 if dtype is np.uint8 or draw(st.booleans()) else 1.0
    if kind == "constant":
        a = np.full(shape, draw(st.floats(0, 1)) * top)
    elif kind == "uniform":
        a = rng.uniform(0, top, shape)
    elif kind == "blob":
        a = np.full(shape, rng.uniform(0, top))
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        a[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = rng.uniform(0, top)
        a = a + rng.normal(0, draw(st.floats(0, 0.2)) * top, shape)
    elif kind == "binary":
        a = (rng.random(shape) < draw(st.floats(0, 1))) * top
    elif kind == "wide":
        a = rng.uniform(-1e30, 1e30, shape) if dtype is np.float32 else rng.uniform(0, 255, shape)
    else:
        a = rng.normal(top / 2, top / 4, shape)
    if dtype is np.uint8:
        a = np.clip(a, 0, 255)
    return a.astype(dtype)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_images())
def test_fuzz_random_images_never_crash(arr):
    _check_outcome(arr)


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.float32]),
        shape=st.one_of(
            hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8),
            st.tuples(st.integers(1, 8), st.integers(1, 8), st.sampled_from([3, 4])),
        ),
        elements={"allow_nan": False, "allow_infinity": False},
    )
)
def test_fuzz_tiny_arrays_any_values(arr):
    _check_outcome(arr)


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((0, 5), np.uint8),
        np.zeros((5, 0, 3), np.float32),
        np.zeros(7, np.uint8),
        np.zeros((2, 3, 4, 5), np.uint8),
        np.array(3.0),
        np.array([["a", "b"]]),
        np.full((10, 10), np.nan, np.float32),
        np.array([[0.0, np.inf], [0.0, 1.0]], np.float32),
    ],
    ids=["0-rows", "0-cols-rgb", "1-d", "4-d", "0-d", "strings", "nan", "inf"],
)
def test_unusable_arrays_are_user_errors(arr):
    with pytest.raises(UserError):
        preprocess(arr)


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1), (1, 50), (50, 1), (2, 2), (3, 3)])
def test_tiny_images_work_or_say_no_ink(shape):
    rng = np.random.default_rng(0)
    for arr in (np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8), rng.integers(0, 256, shape, np.uint8)):
        _check_outcome(arr)
    line = np.zeros(shape, np.uint8)
    line.flat[len(line.flat) // 2] = 255
    _check_outcome(line)


# --------------------------------------------------------------------------------------------------------------
# The same digit, drawn many ways, gives the same MNIST-style tensor.


def draw_seven(canvas=(200, 200), box=(40, 30, 150, 170), width=16, ink=0, paper=255, mode="L") -> Image.Image:
    img = Image.new(mode, canvas, paper)
    x0, y0, x1, y1 = box
    ImageDraw.Draw(img).line([(x0, y0), (x1, y0), (x0 + (x1 - x0) * 0.35, y1)], fill=ink, width=width, joint="curve")
    return img


def _rgba_on_transparent(ink_rgb) -> Image.Image:
    img = Image.new("RGBA", (180, 240), (0, 0, 0, 0) if ink_rgb[0] < 128 else (255, 255, 255, 0))
    x0, y0, x1, y1 = 30, 40, 130, 200
    ImageDraw.Draw(img).line(
        [(x0, y0), (x1, y0), (x0 + (x1 - x0) * 0.35, y1)], fill=(*ink_rgb, 255), width=14, joint="curve"
    )
    return img


def _variants(tmp_path: Path) -> dict[str, object]:
    gif = tmp_path / "seven.gif"
    draw_seven().convert("P").save(gif)
    tgif = tmp_path / "seven-transparent.gif"
    p = draw_seven(mode="P", ink=1, paper=0)
    p.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    p.save(tgif, transparency=0)
    jpg = tmp_path / "seven.jpg"
    draw_seven(canvas=(300, 260), box=(90, 50, 200, 210), mode="RGB", ink=(20, 20, 60), paper=(240, 230, 200)).save(
        jpg, quality=85
    )
    return {
        "dark-on-light": draw_seven(),
        "light-on-dark": draw_seven(ink=255, paper=0),
        "small-offset": draw_seven(canvas=(60, 45), box=(30, 5, 55, 38), width=4),
        "large-thin": draw_seven(canvas=(900, 700), box=(100, 80, 480, 600), width=5),
        "wide-canvas-offset": draw_seven(canvas=(500, 180), box=(350, 10, 430, 120), width=9),
        "rgb-coloured": draw_seven(mode="RGB", ink=(30, 0, 120), paper=(255, 250, 200)),
        "rgba-black-on-transparent": _rgba_on_transparent((0, 0, 0)),
        "rgba-white-on-transparent": _rgba_on_transparent((255, 255, 255)),
        "palette-gif": open_image(gif),
        "palette-gif-transparent": open_image(tgif),
        "jpeg-file-path": str(jpg),
        "uint8-array": np.asarray(draw_seven()),
        "float01-array": np.asarray(draw_seven(ink=255, paper=0), dtype=np.float32) / 255,
        "float255-array": np.asarray(draw_seven(), dtype=np.float32),
        "rgb-array": np.asarray(draw_seven(mode="RGB", ink=(0, 0, 0), paper=(255, 255, 255))),
        "rgba-array": np.asarray(_rgba_on_transparent((0, 0, 0))),
        "noisy": np.clip(
            np.asarray(draw_seven(), np.float32) + np.random.default_rng(1).normal(0, 12, (200, 200)), 0, 255
        ).astype(np.uint8),
    }


def test_synthetic_digit_same_tensor_every_way(tmp_path):
    variants = _variants(tmp_path)
    reference = check_digit_tensor(preprocess(variants.pop("dark-on-light")))
    for name, image in variants.items():
        a = check_digit_tensor(preprocess(image))
        corr = np.corrcoef(blur(reference).ravel(), blur(a).ravel())[0, 1]
        assert corr > 0.85, (name, corr)
        assert 0.5 < a.sum() / reference.sum() < 2.0, (name, a.sum(), reference.sum())
    ring = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(ring).ellipse((50, 30, 150, 170), outline=0, width=16)
    zero = check_digit_tensor(preprocess(ring))  # a different digit is not "the same" by this measure
    assert np.corrcoef(blur(reference).ravel(), blur(zero).ravel())[0, 1] < 0.6


def test_mnist_digit_passes_through_nearly_unchanged(data_dir, mirror):
    images, _ = load_tensors(False, data_dir, str(mirror), limit=50)
    for img in images.numpy():
        out = unnormalise(preprocess(img))
        # centring rounds to whole pixels, as MNIST did: allow a one-pixel shift
        shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        diff = min(np.abs(np.roll(out, s, (0, 1)) - img / 255.0).mean() for s in shifts)
        assert diff < 0.03, diff


def test_thin_strokes_are_thickened():
    thick = unnormalise(preprocess(draw_seven(canvas=(800, 800), box=(160, 120, 600, 680), width=70)))
    thin = unnormalise(preprocess(draw_seven(canvas=(800, 800), box=(160, 120, 600, 680), width=4)))
    assert thin.sum() > 0.6 * thick.sum(), (thin.sum(), thick.sum())


def test_grayscale_modes():
    base = draw_seven(canvas=(60, 60), box=(10, 10, 50, 50), width=6)
    ref = to_grayscale(base)
    assert ref.dtype == np.float32 and ref.ndim == 2 and ref.min() == 0 and ref.max() == 1
    for mode in ("1", "L", "LA", "RGB", "RGBA", "P", "I", "I;16", "F", "CMYK"):
        img = base.convert(mode)
        if mode == "I;16":
            img = Image.fromarray(np.asarray(base, np.uint16) * 257)
        g = to_grayscale(img)
        assert g.shape == ref.shape and g.dtype == np.float32, mode
        assert np.abs(g - ref).mean() < 0.02, mode
        check_digit_tensor(preprocess(img))


# --------------------------------------------------------------------------------------------------------------
# Blank images are refused, never guessed.


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (100, 100), 255),
        Image.new("L", (100, 100), 0),
        Image.new("RGB", (64, 80), (128, 128, 128)),
        Image.new("RGBA", (50, 50), (0, 0, 0, 0)),
        Image.new("1", (20, 20), 1),
        np.full((40, 30), 0.5, np.float32),
        np.full((40, 30, 3), 200, np.uint8),
        (np.full((100, 100), 128) + np.random.default_rng(0).integers(-2, 3, (100, 100))).astype(np.uint8),
    ],
    ids=["white", "black", "grey-rgb", "transparent", "mode-1", "grey-float", "grey-array", "near-uniform"],
)
def test_blank_images_raise_no_ink(image):
    with pytest.raises(NoInkError, match="no ink found"):
        preprocess(image)


def test_no_ink_error_names_the_file(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    with pytest.raises(NoInkError, match="blank.png"):
        preprocess(blank)
    assert issubclass(NoInkError, UserError)


# --------------------------------------------------------------------------------------------------------------
# Files that are not usable images: one clear UserError naming the file, quickly.


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_header(width: int, height: int) -> bytes:
    """A tiny PNG file whose IHDR claims width x height 8-bit RGB pixels (with correct CRCs)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def test_crafted_png_is_valid(tmp_path):
    f = tmp_path / "small.png"
    f.write_bytes(png_with_header(4, 4))
    with Image.open(f) as im:
        assert im.size == (4, 4) and im.format == "PNG"


@pytest.mark.parametrize("size", [(8000, 8000), (20000, 20000), (MAX_PIXELS + 1, 1)])
def test_oversized_header_refused_before_decoding(tmp_path, monkeypatch, size):
    f = tmp_path / "bomb.png"
    f.write_bytes(png_with_header(*size))
    decoded = []

    def no_decoding(self, *a, **k):
        decoded.append(self)
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    start = time.perf_counter()
    with pytest.raises(UserError) as err:
        open_image(f)
    assert time.perf_counter() - start < 2.0
    assert not decoded
    msg = str(err.value)
    assert "\n" not in msg and "bomb.png" in msg and f"{MAX_PIXELS:,}" in msg
    assert f"{size[0] * size[1]:,}" in msg


def test_open_image_leaves_pillow_limit_alone(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    f = tmp_path / "bomb.png"
    f.write_bytes(png_with_header(9000, 9000))
    with pytest.raises(UserError):
        open_image(f)
    assert Image.MAX_IMAGE_PIXELS == before


def _truncated_png(path: Path) -> Path:
    full = path.with_name("full.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), np.uint8)).save(full)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "text", "truncated", "garbage-png-header"])
def test_open_image_bad_files(tmp_path, kind):
    f = tmp_path / f"{kind}.png"
    if kind == "directory":
        f.mkdir()
    elif kind == "empty":
        f.write_bytes(b"")
    elif kind == "text":
        f.write_text("this is not an image\n")
    elif kind == "truncated":
        _truncated_png(f)
    elif kind == "garbage-png-header":
        f.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x01garbage" * 10)
    start = time.perf_counter()
    with pytest.raises(UserError) as err:
        open_image(f)
    assert time.perf_counter() - start < 2.0
    msg = str(err.value)
    assert f.name in msg and "\n" not in msg, msg


def test_open_image_formats_and_first_frame(tmp_path):
    seven = draw_seven()
    for ext in ("png", "jpg", "bmp", "gif", "webp", "tiff"):
        f = tmp_path / f"seven.{ext}"
        seven.save(f)
        img = open_image(f)
        assert img.size == (200, 200)
        check_digit_tensor(preprocess(img))
    anim = tmp_path / "anim.gif"
    frames = [draw_seven().convert("P"), Image.new("L", (200, 200), 255).convert("P")]
    frames[0].save(anim, save_all=True, append_images=frames[1:], duration=100)
    assert open_image(anim).size == (200, 200)
    check_digit_tensor(preprocess(open_image(anim)))  # the first frame holds the digit, the second is blank


# --------------------------------------------------------------------------------------------------------------
# Predictions on real MNIST digits re-rendered as dark-on-light files of assorted sizes and offsets.


def write_mnist_files(folder: Path, images: np.ndarray, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    files = []
    for i, img in enumerate(images):
        size = int(rng.integers(40, 201))
        digit = Image.fromarray(255 - img).resize((size, size), Image.Resampling.BICUBIC)
        left, top, right, bottom = (int(v) for v in rng.integers(0, size // 2 + 1, 4))
        canvas = Image.new("L", (size + left + right, size + top + bottom), 255)
        canvas.paste(digit, (left, top))
        f = folder / f"{i:03d}.{'jpg' if i % 5 == 0 else 'png'}"
        canvas.save(f, **({"quality": 90} if i % 5 == 0 else {}))
        files.append(f)
    return files


def test_predict_accuracy_on_mnist_files(tmp_path, data_dir, mirror, trained_one_epoch):
    images, labels = load_tensors(False, data_dir, str(mirror), limit=300)
    files = write_mnist_files(tmp_path, images.numpy())
    Image.new("L", (120, 90), 255).save(tmp_path / "blank.png")
    found = iter_image_files([tmp_path])
    assert len(found) == 301 and (tmp_path / "blank.png") in found

    model = trained_one_epoch.model.eval()
    results = predict(model, found, top_k=3)
    by_file = {r["file"]: r for r in results}
    assert [r["file"] for r in results] == [str(f) for f in found]

    blank = by_file[str(tmp_path / "blank.png")]
    assert "prediction" not in blank and "no ink found" in blank["error"]
    assert format_result(blank).startswith(f"{tmp_path / 'blank.png'}: error: no ink found")

    predicted = np.array([by_file[str(f)]["prediction"] for f in files])
    accuracy = float((predicted == labels.numpy()).mean())
    print(f"predict accuracy on 300 re-rendered MNIST test digits: {accuracy:.2%}")
    assert accuracy >= 0.97, accuracy

    r = by_file[str(files[0])]
    assert len(r["top_k"]) == 3 and r["top_k"][0]["digit"] == r["prediction"]
    probs = [t["probability"] for t in r["top_k"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-5
    assert format_result(r).startswith(f"{files[0]}: {r['prediction']}  ({r['prediction']} ")

    # the same weights through a run folder give the same predictions
    run = tmp_path / "run"
    run.mkdir()
    checkpoints.save_weights(model, run / checkpoints.WEIGHTS, {"model": "net"})
    loaded, meta = load_model(run)
    assert not loaded.training and meta["model"] == "net"
    again = predict(loaded, files[:40], top_k=1)
    assert [a["prediction"] for a in again] == list(predicted[:40])

    for bad in (0, 11, -1, 2.5, True):
        with pytest.raises(UserError):
            predict(model, files[:1], top_k=bad)


# --------------------------------------------------------------------------------------------------------------
# Loading weights: run folders, checkpoints, and refusing everything else without unpickling it.


def test_load_model_from_weights_and_checkpoint(tmp_path):
    net = Net()
    run = tmp_path / "run"
    run.mkdir()
    checkpoints.atomic_save(
        {f"model/{k}": v for k, v in net.state_dict().items()} | {"rng/torch": torch.zeros(3)},
        run / checkpoints.CHECKPOINT,
        {"format": 1, "recipe": {"model": "net"}},
    )
    model, _ = load_model(run)  # no model.safetensors: the checkpoint's model part is used
    assert not model.training
    for k, v in net.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    f = tmp_path / "w.safetensors"
    checkpoints.save_weights(net, f)
    model, meta = load_model(f)
    assert torch.equal(model.fc2.weight, net.fc2.weight) and meta == {}


def test_load_model_refuses_foreign_weights(tmp_path):
    f = tmp_path / "other.safetensors"
    checkpoints.atomic_save({"encoder.weight": torch.zeros(2, 2)}, f)
    with pytest.raises(UserError, match="not a mnistlab Net weights file"):
        load_model(f)
    f2 = tmp_path / "unknown.safetensors"
    checkpoints.save_weights(Net(), f2, {"model": "no-such-model"})
    with pytest.raises(UserError, match="no-such-model"):
        load_model(f2)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_load_model_missing_empty_and_malicious(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_model(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="model.safetensors"):
        load_model(empty)

    # the payload is live: unpickling it really creates its marker
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Evil(probe)))
    assert probe.exists()

    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(marker))
    run = tmp_path / "evil-run"
    run.mkdir()
    targets = [tmp_path / "evil.pt", tmp_path / "evil.safetensors", run / checkpoints.WEIGHTS]
    for t in targets:
        t.write_bytes(payload)
    for t in [*targets, run]:
        with pytest.raises(UserError):
            load_model(t)
        assert not marker.exists(), t


def test_iter_image_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        iter_image_files([tmp_path / "missing.png"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(UserError, match="no images"):
        iter_image_files([empty])
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("b.PNG", "a.jpg", "c.txt", "d.webp"):
        (folder / name).write_bytes(b"")
    (folder / "sub.png").mkdir()
    single = tmp_path / "x.dat"
    single.write_bytes(b"")
    assert iter_image_files([single, folder]) == [single, folder / "a.jpg", folder / "b.PNG", folder / "d.webp"]


def test_predict_records_per_image_errors(tmp_path):
    good = tmp_path / "seven.png"
    draw_seven().save(good)
    bad = tmp_path / "bad.png"
    bad.write_text("not a png")
    results = predict(Net().eval(), [bad, good, tmp_path / "gone.png"], top_k=10)
    assert "error" in results[0] and "bad.png" in results[0]["error"]
    assert len(results[1]["top_k"]) == 10 and abs(sum(t["probability"] for t in results[1]["top_k"]) - 1) < 1e-4
    assert "does not exist" in results[2]["error"]
    assert all("\n" not in format_result(r) for r in results)
