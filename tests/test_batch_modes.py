"""End to end: what each output image is (modes, alpha, 16-bit), per-item op failures,
PNG quality, JPEG 2000 on the CPU. Trees are made here (Pillow; OpenCV for 16-bit RGB,
which Pillow cannot write), outputs read back with OpenCV (IMREAD_UNCHANGED keeps the
channels and the depth)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from gpuimg.codec import formats, read
from gpuimg.pipeline import Pipeline
from gpuimg.pipeline.steps import OutputRule, Step, check_steps

H, W = 48, 64


def _ramp(channels: int, top: int, seed: int) -> np.ndarray:
    """A smooth image with some noise (compresses, and every value differs)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    base = (x * top // W + y * top // (2 * H))[..., None] + np.arange(channels) * (top // 7)
    return np.clip(base + rng.integers(0, top // 50 + 2, (H, W, channels)), 0, top).astype(np.uint16 if top > 255 else np.uint8)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """The inputs (as RGB(A)/gray arrays) by file path."""
    root = tmp_path_factory.mktemp("modes")
    rgba = _ramp(4, 255, 1)
    rgba[:16, :16, 3] = 0  # a transparent black corner: composited, it is the background
    rgba[:16, :16, :3] = 0
    rgba[16:, 16:, 3] = 255
    arrays = {"rgba.png": rgba, "gray.png": _ramp(1, 255, 2)[..., 0], "gray16.png": _ramp(1, 65535, 3)[..., 0],
              "rgb16.png": _ramp(3, 65535, 4), "photo.jpg": _ramp(3, 255, 5)}
    for name, a in arrays.items():
        if name == "rgb16.png":
            cv2.imwrite(str(root / name), a[..., ::-1])
        elif name == "gray16.png":
            PILImage.fromarray(a.astype(np.uint16)).save(root / name)
        else:
            PILImage.fromarray(a).save(root / name, **({"quality": 95} if name.endswith(".jpg") else {}))
    arrays["photo.jpg"] = read(root / "photo.jpg", device="cpu").numpy()  # what the decoder makes of it
    return {str(root / n): a for n, a in arrays.items()}


def _run(tree: dict[str, np.ndarray], out: Path, fmt: str, steps: list = (), quality: int = 90, device: str = "cpu",
         **rule: object):
    """Pipeline.run (in-process codecs) with ``mode`` / ``background`` (``rule``)."""
    return Pipeline(list(steps), device=device).run(list(tree), out, format=fmt, quality=quality, workers=False, **rule)


def _decoded(src: str, a: np.ndarray, device: str) -> np.ndarray:
    """What the pipeline's decoder on ``device`` makes of ``src`` (JPEG decoders differ a little)."""
    return read(src, device=device).numpy() if src.endswith(".jpg") and device != "cpu" else a


def _out(out: Path, src: str, suffix: str) -> np.ndarray:
    a = cv2.imread(str(out / (Path(src).stem + suffix)), cv2.IMREAD_UNCHANGED)
    assert a is not None, f"no output for {src}"
    if a.ndim == 3:
        a = a[..., [2, 1, 0, 3][: a.shape[2]]] if a.shape[2] == 4 else a[..., ::-1]
    return a


def test_png_keeps_each_image_exactly(tree: dict[str, np.ndarray], tmp_path: Path, device: str) -> None:
    summary = _run(tree, tmp_path, "png", device=device)
    assert (summary.processed, summary.failed) == (len(tree), 0), summary.failures
    for src, a in tree.items():
        got = _out(tmp_path, src, ".png")
        assert got.dtype == a.dtype and got.shape == a.shape, src
        assert np.array_equal(got, _decoded(src, a, device)), src


def test_jpeg_composites_alpha_and_bmp_rounds_16bit(tree: dict[str, np.ndarray], tmp_path: Path, device: str) -> None:
    summary = _run(tree, tmp_path / "j", "jpeg", device=device, background=(0, 0, 255))
    assert (summary.processed, summary.failed) == (len(tree), 0), summary.failures
    rgba = next(a for s, a in tree.items() if s.endswith("rgba.png"))
    got = _out(tmp_path / "j", "rgba.png", ".jpg")
    assert got.shape == (H, W, 3)
    assert np.abs(got[4:12, 4:12].astype(int) - [0, 0, 255]).max() <= 8  # transparent: the background
    assert np.abs(got[24:40, 24:56].astype(int) - rgba[24:40, 24:56, :3]).mean() < 4  # opaque: the colour
    assert _out(tmp_path / "j", "gray16.png", ".jpg").ndim == 2  # gray stays gray in JPEG
    # BMP stores no 16-bit and is lossless: the rounding is exact.
    summary = _run(tree, tmp_path / "b", "bmp", device=device)
    assert summary.failed == 0, summary.failures
    for name in ("gray16.png", "rgb16.png"):
        src = next(s for s in tree if s.endswith(name))
        expected = np.floor(tree[src].astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
        assert np.array_equal(_out(tmp_path / "b", src, ".bmp"), expected), name


@pytest.mark.parametrize("mode, channels", [("rgb", 3), ("gray", 1), ("rgba", 4)])
def test_mode_forces_channels(tree: dict[str, np.ndarray], tmp_path: Path, mode: str, channels: int, device: str) -> None:
    summary = _run(tree, tmp_path, "png", device=device, mode=mode)
    assert (summary.processed, summary.failed) == (len(tree), 0), summary.failures
    for src, a in tree.items():
        got = _out(tmp_path, src, ".png")
        assert (got.shape[2] if got.ndim == 3 else 1) == channels and got.dtype == a.dtype, src
    if mode == "rgba":
        assert (_out(tmp_path, "photo.jpg", ".png")[..., 3] == 255).all()


def test_forced_mode_the_format_cannot_store_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be written as JPEG"):
        OutputRule(formats.lookup("jpeg"), mode="rgba")
    with pytest.raises(ValueError, match="background"):
        OutputRule(formats.lookup("png"), background=(0, 0))


def test_op_rejecting_one_image_fails_only_that_item(tmp_path: Path, device: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name, size in (("a.png", 500), ("small.png", 64), ("b.png", 500)):
        PILImage.fromarray(np.full((size, size, 3), 90, np.uint8)).save(src / name)
    crop = [("crop", {"top": 350, "left": 0, "height": 100, "width": 100})]
    summary = Pipeline(crop, device=device).run(src, tmp_path / "o", format="png", workers=False)
    assert (summary.processed, summary.failed) == (2, 1)
    (failure,) = summary.failures
    assert Path(failure.path).name == "small.png" and failure.stage == "process" and "outside its bounds" in failure.reason
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["a.png", "b.png"]
    assert cv2.imread(str(tmp_path / "o" / "a.png")).shape == (100, 100, 3)


def test_arguments_failing_every_image_are_refused_up_front() -> None:
    check_steps([Step(("crop", {"top": 350, "left": 0, "height": 100, "width": 100}), "cpu")], "cpu")
    with pytest.raises(ValueError, match="step 'gaussian_blur'"):
        check_steps([Step(("gaussian_blur", {"sigma": "wide"}), "cpu")], "cpu")


def test_png_quality_sets_the_compression(tree: dict[str, np.ndarray], tmp_path: Path, device: str) -> None:
    photo = {s: a for s, a in tree.items() if s.endswith("photo.jpg")}
    sizes = {}
    for q in (100, 10):
        assert _run(photo, tmp_path / str(q), "png", quality=q, device=device).processed == 1
        out = tmp_path / str(q) / "photo.png"
        sizes[q] = out.stat().st_size
        src, a = next(iter(photo.items()))
        assert np.array_equal(_out(tmp_path / str(q), src, ".png"), _decoded(src, a, device))
    assert sizes[10] < sizes[100]


def test_jpeg2000_on_the_cpu(tree: dict[str, np.ndarray], tmp_path: Path) -> None:
    photo = {s: a for s, a in tree.items() if s.endswith(("photo.jpg", "rgba.png"))}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = _run(photo, tmp_path / "q", "jp2", quality=80)
    assert (summary.processed, summary.failed) == (2, 0), summary.failures
    assert any("JPEG 2000 on the CPU" in str(w.message) for w in caught)
    summary = _run(photo, tmp_path / "l", "jp2", quality=100)  # lossless
    assert summary.failed == 0, summary.failures
    for src, a in photo.items():
        assert np.array_equal(read(tmp_path / "l" / (Path(src).stem + ".jp2"), device="cpu", mode="unchanged").numpy(), a)


def test_cli_mode_background_and_per_item_crop(tmp_path: Path) -> None:
    """The command line: a mode the format cannot store and a bad step argument stop
    before the run (exit 2); a crop that fits some images only fails the others (exit 1);
    --background reaches the composite."""
    from gpuimg import cli

    src = tmp_path / "in"
    src.mkdir()
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: the output is the background
    PILImage.fromarray(rgba).save(src / "clear.png")
    PILImage.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(src / "small.png")
    out = tmp_path / "out"
    assert cli.main(["process", str(src), str(out), "--format", "jpeg", "--mode", "rgba", "--device", "cpu"]) == cli.EXIT_USAGE
    assert cli.main(["process", str(src), str(out), "--crop", "a,b,c", "--device", "cpu"]) == cli.EXIT_USAGE
    code = cli.main(["process", str(src), str(out), "--crop", "0,0,30x30", "--background", "0,0,255", "--device", "cpu",
                     "--no-progress"])
    assert code == 1  # small.png (20x20) cannot be cropped to 30x30; clear.png is written
    got = np.asarray(PILImage.open(out / "clear.jpg").convert("RGB")).astype(int)
    assert got.shape == (30, 30, 3) and np.abs(got - [0, 0, 255]).max() <= 8
    report = json.loads((out / "gpuimg-report.json").read_text())
    assert [(Path(f["path"]).name, f["stage"]) for f in report["failures"]] == [("small.png", "process")]


def test_batch_byte_bound_counts_stored_channels_and_depth(tmp_path: Path) -> None:
    """The batch byte bound uses what a decode may take: 16-bit RGBA is 8 bytes a pixel."""
    from gpuimg.pipeline.files import plan_jobs
    from gpuimg.pipeline.read import read_item

    rgba16 = np.zeros((30, 40, 4), np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), rgba16)
    PILImage.fromarray(np.zeros((30, 40), np.uint8)).save(tmp_path / "gray.png")
    items = {Path(j.src).name: read_item(j) for j in plan_jobs([tmp_path / "deep.png", tmp_path / "gray.png"], None, "")}
    assert items["deep.png"].nbytes == 30 * 40 * 4 * 2
    assert items["gray.png"].nbytes == 30 * 40 * 3  # at most RGB (a forced mode)
