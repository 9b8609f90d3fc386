"""Thumbnail benchmark: encoded photo -> thumbnail within NxN -> encoded JPEG, beside
Pillow's ``Image.thumbnail``, OpenCV and (when installed) pyvips ``thumbnail_buffer``.

Data: the RGB photos in assets/ resized with Pillow bicubic to ``--size`` (default
1920x1080; 4K with ``--size 3840x2160``), saved as JPEG quality 90 in memory, half of them
with a Display P3 profile embedded (so the colour path runs), cycled to ``--count`` files.

- gpuimg, one image per call: ``gpuimg.thumbnail`` (decode, orientation, fit, sRGB) then
  ``Encoder.encode`` JPEG q90 with the metadata (``keep="all"``).
- gpuimg, batched: ``read_batch`` -> ``fit_thumbnail`` (one resize and one colour launch
  for the batch) -> ``encode_batch`` (the way the pipeline runs it).
- Pillow 1 thread: ``open`` + ``draft`` (libjpeg's DCT scaling, what ``Image.thumbnail``
  users get) + ``thumbnail`` (bicubic, reducing_gap 2) + ``ImageCms`` to sRGB when the
  file has a profile + ``save`` JPEG q90.
- OpenCV 1 thread: ``imdecode`` + ``resize`` INTER_AREA + ``imencode`` q90 (no colour
  management, orientation applied by imdecode).
- Pillow and OpenCV in one process per core: the same functions over a spawned pool (one
  OpenCV thread per process), the files sent to the workers as bytes; the pool is started
  and warmed before the timed region.
- pyvips: ``thumbnail_buffer(size, export_profile="srgb")`` + ``jpegsave_buffer`` q90.

Every gpuimg call ends with a device synchronisation inside the timed region (host
timing). Figures: images/s; the ratio is gpuimg over Pillow.

Usage: python bench/thumbnail.py [--quick] [--json PATH] [--count 64] [--size 1920x1080] [--box 256]
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # import gpuimg from the checkout
sys.path.insert(0, str(ROOT / "tests"))  # the hand-written Display P3 profile
sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness (also when loaded by the tests)

import harness  # noqa: E402
import numpy as np  # noqa: E402

import gpuimg  # noqa: E402
from gpuimg.codec import Encoder  # noqa: E402
from gpuimg.ops.geometry import fit_thumbnail  # noqa: E402

PHOTOS = ("astronaut.jpg", "chelsea.png", "coffee.png", "rocket.jpg")
QUALITY = 90


def make_files(count: int, size: tuple[int, int]) -> list[bytes]:
    """``count`` JPEG q90 photos of ``size`` (width, height); every other one tagged P3."""
    from icc_profiles import P3_PROFILE
    from PIL import Image as PILImage

    files = []
    for k, name in enumerate(PHOTOS):
        with PILImage.open(ROOT / "assets" / name) as im:
            big = im.convert("RGB").resize(size, PILImage.Resampling.BICUBIC)
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=QUALITY, **({"icc_profile": P3_PROFILE} if k % 2 else {}))
        files.append(buf.getvalue())
    return [files[i % len(files)] for i in range(count)]


def pillow_thumbnail(data: bytes, box: int) -> bytes:
    from PIL import Image as PILImage
    from PIL import ImageCms, ImageOps

    with PILImage.open(io.BytesIO(data)) as im:
        im.draft("RGB", (box, box))
        im = ImageOps.exif_transpose(im)
        im.thumbnail((box, box), PILImage.Resampling.BICUBIC)
        icc = im.info.get("icc_profile")
        if icc:
            im = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"))
        out = io.BytesIO()
        im.save(out, "JPEG", quality=QUALITY)
        return out.getvalue()


def opencv_thumbnail(data: bytes, box: int) -> bytes:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    scale = min(box / w, box / h, 1.0)
    small = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])[1].tobytes()


def _pyvips() -> Any | None:
    try:
        import pyvips
    except Exception:  # not installed, or libvips missing
        return None
    return pyvips


def run(results: harness.Results, args: Any) -> None:
    device = "cuda" if harness.gpu_available() else "cpu"
    files = make_files(args.count, args.size)
    box, n = args.box, len(files)
    sync = harness.synchronizer(device)
    t = lambda fn, s=sync: harness.time_host(fn, warmup=1 if args.quick else 3, repeat=args.repeat, sync=s)  # noqa: E731
    enc = Encoder(device)

    def ours_single() -> None:
        for data in files:
            enc.encode(gpuimg.thumbnail(data, box, device=device), "jpeg", quality=QUALITY)

    def ours_batched() -> None:
        batch = gpuimg.read_batch(files, device=device).images
        enc.encode_batch(fit_thumbnail(batch, box), "jpeg", quality=QUALITY)

    pil = t(lambda: [pillow_thumbnail(d, box) for d in files], None)
    single = t(ours_single)
    results.add(f"thumbnail {box}, one image per call ({device})", n / single.median, "img/s", "Pillow 1 thread", n / pil.median)
    batched = t(ours_batched)
    results.add(f"thumbnail {box}, batch of {n} ({device})", n / batched.median, "img/s", "Pillow 1 thread", n / pil.median)
    try:
        cv = t(lambda: [opencv_thumbnail(d, box) for d in files], None)
        results.add(f"thumbnail {box}, batch of {n} ({device})", n / batched.median, "img/s", "OpenCV 1 thread (no colour)",
                    n / cv.median)
    except ImportError:
        pass
    # The workers unpickle the functions by module name; bench/ is on sys.path, and this
    # file may run as __main__ or under the tests' own module name.
    import thumbnail as this

    cores = os.cpu_count() or 1
    per_core = lambda fn: harness.per_core_rate(functools.partial(fn, box=box), files, repeat=args.repeat)  # noqa: E731
    results.add(f"thumbnail {box}, batch of {n} ({device})", n / batched.median, "img/s",
                f"Pillow, {cores} processes", per_core(this.pillow_thumbnail))
    if importlib.util.find_spec("cv2") is not None:
        results.add(f"thumbnail {box}, batch of {n} ({device})", n / batched.median, "img/s",
                    f"OpenCV, {cores} processes (no colour)", per_core(this.opencv_thumbnail))
    vips = _pyvips()
    if vips is not None:
        def vips_all() -> None:
            for d in files:
                vips.Image.thumbnail_buffer(d, box, export_profile="srgb").jpegsave_buffer(Q=QUALITY)

        pv = t(vips_all, None)
        results.add(f"thumbnail {box}, batch of {n} ({device})", n / batched.median, "img/s", "pyvips thumbnail_buffer",
                    n / pv.median)


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def main(argv: list[str] | None = None) -> int:
    args = harness.parse_args(lambda p: (p.add_argument("--count", type=int, default=None),
                                         p.add_argument("--size", type=_size, default=None, metavar="WxH"),
                                         p.add_argument("--box", type=int, default=256)), argv=argv)
    args.count = args.count or (4 if args.quick else 64)
    args.size = args.size or ((640, 360) if args.quick else (1920, 1080))
    results = harness.Results("thumbnail", meta=dict(device=harness.device_name(), size=args.size, box=args.box))
    run(results, args)
    harness.report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
