"""The dataset classes of bench/pipeline.py, built like users' data (imports only OpenCV,
NumPy and harness, so a process pool of it starts fast).

Every file is a crop of one of the photos in assets/ (random place and size, some mirrored),
resized to its class's size and given light per-file noise: smooth upscales compress far
better than photos do, and the noise also makes every file's bytes distinct, so neither
the page cache nor a decoder sees repeated content. File names are a shuffled index, so a
folder's sorted order (what ``gpuimg process SRC`` reads) interleaves sizes and formats.

Classes (default count, quick count; see CLASSES):

- small: 200-800 px sides, q70-95; 1/8 progressive, 1/10 gray, 1/4 4:4:4 chroma.
- hd: 1920x1080, q85-95, 1/3 4:4:4.
- phone: 12 MP 4032x3024, q90-95, half with EXIF orientation 6 (stored landscape, shown portrait).
- 4k: 3840x2160, q85-95.
- mixed: half 1920x1080, half 0.3-12 MP of several aspects, q90.
- web: 60% JPEG 200-2000 px; 25% PNG 200-1200 px (1/3 RGBA); 15% WebP 200-2000 px (4 in 9
  with alpha). The alpha is a soft-edged cut-out (a random ellipse fading out), so it
  varies across the image as product shots and stickers do, not a constant.

As a script (what bench/pipeline.py runs, in its own process so the pool's workers import
nothing of the bench's CUDA state)::

    python bench/datasets.py CLASS COUNT FOLDER
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))  # harness, also when loaded by the tests under another name

import harness  # noqa: E402

ASSETS = BENCH.parent / "assets"
SOURCES = ("astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg", "camera_gray.png")
ASPECTS = (4 / 3, 3 / 2, 16 / 9, 1.0, 3 / 4, 2 / 3)
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp"}

# name -> (default count, quick count, what it is)
CLASSES: dict[str, tuple[int, int, str]] = {
    "small": (3000, 1500, "ImageNet-like JPEGs: sides 200-800 px, q70-95, 1/8 progressive, 1/10 gray, 1/4 4:4:4"),
    "hd": (600, 300, "1920x1080 JPEGs q85-95, 1/3 4:4:4"),
    "phone": (300, 100, "12 MP phone JPEGs, 4032x3024 q90-95, half with EXIF orientation 6"),
    "4k": (300, 100, "3840x2160 JPEGs q85-95"),
    "mixed": (2000, 500, "JPEGs: half 1920x1080, half 0.3-12 MP of several aspects, q90"),
    "web": (1000, 500, "60% JPEG 200-2000 px, 25% PNG (1/3 RGBA), 15% WebP (some alpha), soft varying alpha"),
}
JPEG_ONLY = frozenset(CLASSES) - {"web"}


class Spec(NamedTuple):
    width: int
    height: int
    quality: int = 90
    gray: bool = False
    progressive: bool = False
    full_chroma: bool = False  # 4:4:4 instead of 4:2:0
    orientation: int = 1
    format: str = "jpeg"  # jpeg, png, webp
    alpha: bool = False


def _sides(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int]:
    w, h = (int(v) for v in rng.integers(lo, hi + 1, size=2))
    return w, h


# The web class's formats over a cycle of 60 files: 36 JPEG (60%), 15 PNG (25%) of which 5
# RGBA (1/3), 9 WebP (15%) of which 4 with alpha; file i takes slot 37 i mod 60 (37 is prime
# to 60: every 60 files hold the exact mix, and a few files already hold several kinds).
_WEB_CYCLE = ["jpeg"] * 36 + ["png+alpha"] * 5 + ["png"] * 10 + ["webp+alpha"] * 4 + ["webp"] * 5


def spec(cls: str, i: int, rng: np.random.Generator) -> Spec:
    """What file ``i`` of class ``cls`` is; ``rng`` is that file's own generator."""
    if cls == "small":
        w, h = _sides(rng, 200, 800)
        return Spec(w, h, int(rng.integers(70, 96)), gray=i % 10 == 3, progressive=i % 8 == 1, full_chroma=i % 4 == 2)
    if cls == "hd":
        return Spec(1920, 1080, int(rng.integers(85, 96)), full_chroma=i % 3 == 1)
    if cls == "phone":
        return Spec(4032, 3024, int(rng.integers(90, 96)), orientation=6 if i % 2 else 1)
    if cls == "4k":
        return Spec(3840, 2160, int(rng.integers(85, 96)))
    if cls == "mixed":
        if i % 2 == 0:
            return Spec(1920, 1080)
        megapixels = math.exp(rng.uniform(math.log(0.3), math.log(12.0)))
        aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
        width = int(round(math.sqrt(megapixels * 1e6 * aspect)))
        return Spec(width, max(1, int(round(width / aspect))))
    if cls == "web":
        kind = _WEB_CYCLE[37 * i % len(_WEB_CYCLE)]
        fmt, alpha = kind.split("+")[0], kind.endswith("+alpha")
        if fmt == "jpeg":
            w, h = _sides(rng, 200, 2000)
            return Spec(w, h, int(rng.integers(70, 96)), progressive=i % 5 == 0)
        w, h = _sides(rng, 200, 1200 if fmt == "png" else 2000)
        return Spec(w, h, int(rng.integers(75, 91)), format=fmt, alpha=alpha)
    raise ValueError(f"unknown dataset class {cls!r}; known: {', '.join(CLASSES)}")


def with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an APP1 Exif segment holding only the Orientation tag, after SOI."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def soft_alpha(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A (height, width) uint8 alpha: opaque inside a random ellipse, fading to 0 over a
    random width of edge, and transparent outside (made small, then resized: cheap)."""
    import cv2

    gh, gw = 96, 96
    y, x = np.mgrid[0:gh, 0:gw].astype(np.float32)
    cy, cx = rng.uniform(0.35, 0.65, size=2) * (gh, gw)
    ry, rx = rng.uniform(0.25, 0.5, size=2) * (gh, gw)
    d = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    fade = rng.uniform(0.1, 0.6)
    a = np.clip((1.0 + fade - d) / fade, 0.0, 1.0) * 255
    return cv2.resize(a.astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)


def photo(width: int, height: int, i: int, rng: np.random.Generator, noise: int = 10) -> np.ndarray:
    """A BGR photo crop of ``width`` x ``height`` with per-file noise of amplitude ``noise``."""
    import cv2

    src = cv2.imread(str(ASSETS / SOURCES[i % len(SOURCES)]), cv2.IMREAD_COLOR)
    sh, sw = src.shape[:2]
    ch, cw = (max(16, int(s * rng.uniform(0.6, 1.0))) for s in (sh, sw))
    top, left = int(rng.integers(0, sh - ch + 1)), int(rng.integers(0, sw - cw + 1))
    crop = src[top : top + ch, left : left + cw]
    down = width < cw and height < ch
    img = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if down else cv2.INTER_CUBIC)
    if i % 3 == 0:
        img = cv2.flip(img, 1)
    if noise:
        grain = np.empty_like(img)
        cv2.setRNGSeed(int(rng.integers(1 << 31)))
        cv2.randu(grain, 0, noise)
        cv2.add(img, grain, dst=img)
    return img


def encode(img: np.ndarray, s: Spec) -> bytes:
    """``img`` (BGR or BGRA) encoded as ``s`` says."""
    import cv2

    if s.format == "png":
        ok, data = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 6])  # libpng's default level
    elif s.format == "webp":
        ok, data = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, s.quality])
    else:
        params = [cv2.IMWRITE_JPEG_QUALITY, s.quality, cv2.IMWRITE_JPEG_PROGRESSIVE, int(s.progressive)]
        if s.full_chroma and hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
        ok, data = cv2.imencode(".jpg", img, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode {s}")
    out = data.tobytes()
    return with_orientation(out, s.orientation) if s.format == "jpeg" and s.orientation != 1 else out


def file_name(name_index: int, s: Spec) -> str:
    return f"{name_index:05d}{EXTENSIONS[s.format]}"


def make_one(job: tuple[str, int, int, str]) -> int:
    """Write file ``i`` of class ``cls`` into ``folder`` under its shuffled index; its bytes."""
    import cv2

    cls, i, name_index, folder = job
    rng = np.random.default_rng([i, 29])
    s = spec(cls, i, rng)
    # PNG stores noise losslessly: lighter grain keeps the PNG sizes near real photo PNGs'.
    img = photo(s.width, s.height, i, rng, noise=4 if s.format == "png" else 10)
    if s.gray:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if s.alpha:
        img = np.dstack([img, soft_alpha(s.width, s.height, rng)])
    data = encode(img, s)
    (Path(folder) / file_name(name_index, s)).write_bytes(data)
    return len(data)


def shuffled_names(count: int) -> list[int]:
    """The name index of each file: a fixed permutation, so sorted names mix the kinds."""
    return [int(k) for k in np.random.default_rng(1).permutation(count)]


def make_dataset(folder: Path, count: int, cls: str) -> list[Path]:
    """``count`` files of class ``cls`` in ``folder`` (one process per core), sorted by name
    (a shuffled order of kinds and sizes)."""
    spec(cls, 0, np.random.default_rng(0))  # an unknown class fails before the pool starts
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(cls, i, n, str(folder)) for i, n in enumerate(shuffled_names(count))]
    # spawn: the caller may be a process holding CUDA state and codec threads
    with mp.get_context("spawn").Pool(os.cpu_count(), initializer=harness.one_opencv_thread) as pool:
        pool.map(make_one, jobs, chunksize=max(1, min(8, count // (4 * (os.cpu_count() or 1)))))
    return sorted(p for p in folder.iterdir() if p.suffix in EXTENSIONS.values())


def generate(folder: Path, count: int, cls: str, timeout: float | None = None) -> list[Path]:
    """:func:`make_dataset` in a fresh process (this script), so its pool's workers start
    from a light interpreter whatever the caller holds; the files, sorted by name."""
    wall, out = harness.run_process([sys.executable, str(Path(__file__).resolve()), cls, str(count), str(folder)],
                                    timeout=timeout)
    files = sorted(p for p in folder.iterdir() if p.suffix in EXTENSIONS.values())
    if len(files) != count:
        raise RuntimeError(f"made {len(files)} of {count} files of class {cls}: {out[-400:]}")
    return files


def main(argv: list[str]) -> int:
    cls, count, folder = argv[0], int(argv[1]), Path(argv[2])
    t0 = time.perf_counter()
    files = make_dataset(folder, count, cls)
    print(json.dumps({"class": cls, "files": len(files), "seconds": time.perf_counter() - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
