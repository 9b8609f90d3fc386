"""Shared fixtures: every device-dependent test runs once per device.

On a machine without a usable GPU the "cuda" variants are skipped with the reason, so
CI (CPU only) shows them as skipped rather than silently missing them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import gpuimg
from gpuimg.device import cuda_available, device_report

ASSETS = Path(__file__).resolve().parent.parent / "assets"
BENCH = Path(__file__).resolve().parent.parent / "bench"
DEVICES = ("cpu", "cuda")
ROOT = ASSETS.parent


def nvjpeg_generation() -> int:
    """The CUDA major nvImageCodec was built for (12 or 13): its nvJPEG decodes JPEG on
    the GPU differently (bench/nvjpeg_versions.py, BENCHMARKS.md). 0 without nvImageCodec."""
    from gpuimg.codec import _nvimgcodec

    try:
        nvimgcodec = _nvimgcodec.load()  # quiet: the loader's hints go where gpuimg's go
    except ImportError:
        return 0
    return int(getattr(nvimgcodec, "__cuda_version__", 13000)) // 1000


# The GPU JPEG decode against libjpeg-turbo (Pillow), largest and mean level difference:
# nvJPEG 13 (the cu13 nvImageCodec wheels) stays within 1 level nearly everywhere; nvJPEG
# 12 (the cu12 wheels, what both gpuimg extras install) rounds its IDCT differently: up
# to 5 levels, about 0.5 on average, on 4:2:0 and 4:4:4 photos alike (measured on an H200).
GPU_JPEG_TOLERANCE = (6, 0.8) if nvjpeg_generation() == 12 else (4, 0.1)


def checkout_pythonpath() -> str:
    """PYTHONPATH for a child process: the checkout first, then what this process was
    given (where the nvImageCodec wheels may live, as on the GPU machine)."""
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def _skip_without_gpu(device: str) -> None:
    if device == "cuda" and not cuda_available():
        pytest.skip(f"GPU variant: {device_report()}")


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """"cpu" and "cuda"; the cuda variant skips (with the reason) where no GPU is usable."""
    _skip_without_gpu(request.param)
    return request.param


@pytest.fixture
def gpu() -> str:
    """For tests that only make sense on a GPU (streams, GPU-vs-CPU comparisons)."""
    _skip_without_gpu("cuda")
    return "cuda"


@pytest.fixture(autouse=True)
def _fresh_counters():
    gpuimg.reset_memory_stats()
    yield


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    return ASSETS


def load_asset(name: str, mode: str | None = "RGB") -> np.ndarray:
    """An asset decoded by Pillow (the outside reference) as an (H, W, C) array."""
    from PIL import Image as PILImage

    with PILImage.open(ASSETS / name) as im:
        if mode is not None:
            im = im.convert(mode)
        arr = np.asarray(im)
    return arr[:, :, None] if arr.ndim == 2 else arr


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """The RGB photos in assets/ as uint8 arrays, decoded by Pillow."""
    names = sorted(p.name for p in ASSETS.glob("*.jpg"))
    if not names:
        pytest.fail("assets/ holds no JPEG photos")
    return {name: load_asset(name) for name in names}


def load_bench(name: str) -> ModuleType:
    """The script ``bench/<name>.py`` as a module (bench/ is not a package: scripts import
    each other from their own folder); registered in sys.modules while it executes, as
    dataclasses and pickle need."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# A tree of good and broken files (tests of the pipeline, the CLI and gpuimg.ray).
# (relative path, asset, crop box (left, top, right, bottom), Pillow format)
GOOD = [
    ("astronaut.jpg", "astronaut.jpg", (100, 40, 228, 136), "JPEG"),
    ("sub/coffee.png", "coffee.png", (200, 100, 296, 172), "PNG"),
    ("sub/deeper/chelsea.bmp", "chelsea.png", (150, 60, 230, 120), "BMP"),
    ("sub/rocket.tif", "rocket.jpg", (300, 100, 364, 180), "TIFF"),
    ("sub/deeper/rocket.webp", "rocket.jpg", (120, 220, 220, 290), "WEBP"),
    ("camera.png", "camera_gray.png", (200, 200, 264, 248), "PNG"),
    ("sub/alpha.png", "coffee_rgba.png", (250, 150, 330, 230), "PNG"),
]
BAD = ["truncated.jpg", "corrupt.jpg", "empty.jpg", "notes.jpg", "locked.png"]


def write_good_files(root: Path) -> None:
    """GOOD: crops of the photos in assets/ in several formats and folders, under ``root``."""
    from PIL import Image as PILImage

    for rel, asset, box, fmt in GOOD:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with PILImage.open(ASSETS / asset) as im:
            im.crop(box).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}))


def write_bad_files(root: Path) -> None:
    """BAD under ``root`` (locked.png is readable until the caller takes its permissions),
    plus a README the folder scan leaves out."""
    jpeg = (ASSETS / "astronaut.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("this is not an image\n")
    (root / "locked.png").write_bytes((ASSETS / "chelsea.png").read_bytes())
    (root / "README.md").write_text("not picked up: not an image suffix\n")
