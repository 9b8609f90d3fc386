"""What crash containment costs: CPU codecs in the supervised child vs in this process.

Data: the asset photos resized with Pillow bicubic and saved in memory as PNG, lossless
WebP, BMP (1080p and 256x256) and JPEG q90 (1080p), repeated to batches of 64. Each figure
is ``Decoder.decode_batch`` into one reused ImageBatch, in images/s, with
``Isolation()`` (the default: CPU codecs in the child process) against
``isolation=False`` (the same nvImageCodec CPU decoders in this process), measured in
the same run, alternating. On a GPU the JPEG figure is the GPU decoder path, which
containment does not touch: its ratio should be 1.0; beside it, the GPU decode's
written-pixels check (``check_written``, on by default) against none.

The pool (``--part pool``): ``decode_batch`` of 1080p WebP (lossy q90), PNG and a batch
of both, their CPU codecs in one child (``Isolation(children=1)``) against one child per
core (``Isolation(children=cores)``, the default), the pool started ahead; and
``Encoder.encode_batch`` of the same images as PNG and WebP q90, one nvImageCodec call
(``cpu_threads=1``) against the batch split over one thread per core (the default).

Usage: python bench/isolation.py [--quick] [--json PATH] [--device cpu|cuda] [--part all|cost|pool]
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # import gpuimg from the checkout

import harness  # noqa: E402

from gpuimg.codec import Decoder, Encoder  # noqa: E402
from gpuimg.codec.isolation import pool as isolation  # noqa: E402

PHOTOS = ("astronaut.jpg", "chelsea.png", "coffee.png", "rocket.jpg")
SETS = (
    ("PNG 1080p", "PNG", (1920, 1080), {}),
    ("PNG 256", "PNG", (256, 256), {}),
    ("WebP lossless 1080p", "WEBP", (1920, 1080), {"lossless": True}),
    ("BMP 1080p", "BMP", (1920, 1080), {}),
    ("JPEG q90 1080p", "JPEG", (1920, 1080), {"quality": 90}),
)


def make_files(fmt: str, size: tuple[int, int], options: dict, count: int) -> list[bytes]:
    from PIL import Image as PILImage

    files = []
    for name in PHOTOS:
        with PILImage.open(ROOT / "assets" / name) as im:
            big = im.convert("RGB").resize(size, PILImage.Resampling.BICUBIC)
        buf = io.BytesIO()
        big.save(buf, fmt, **options)
        files.append(buf.getvalue())
    return [files[i % len(files)] for i in range(count)]


def main() -> None:
    def extra(p) -> None:
        p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if usable)")
        p.add_argument("--part", default="all", choices=("all", "cost", "pool"), help="which figures (default: all)")

    args = harness.parse_args(extra)
    device = args.device or ("cuda" if harness.gpu_available() else "cpu")
    batch = 16 if args.quick else 64
    res = harness.Results(f"crash containment cost and the isolated pool ({device}, batch {batch})")
    res.meta.update(device=harness.device_name() if device == "cuda" else "cpu", batch=batch, cores=isolation.cores())
    sync = None
    if device == "cuda":
        import cupy

        sync = cupy.cuda.Device().synchronize
    if args.part in ("all", "cost"):
        _cost(res, device, batch, args.repeat, sync)
    if args.part in ("all", "pool"):
        _pool(res, device, batch, args.repeat, sync)
    harness.report(res, args)


POOL_SETS = (
    ("WebP q90 1080p", [("WEBP", {"quality": 90})]),
    ("PNG 1080p", [("PNG", {})]),
    ("WebP q90 + PNG 1080p", [("WEBP", {"quality": 90}), ("PNG", {})]),
)


def _pool(res, device: str, batch: int, repeat: int, sync) -> None:
    """One child against one per core; one encode call against one thread per core."""
    n = isolation.cores()
    isolation.prestart(0, isolation.Isolation(children=n), children=n)
    deadline = time.monotonic() + 120
    while len(isolation._idle) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    for label, kinds in POOL_SETS:
        files = [f for fmt, options in kinds for f in make_files(fmt, (1920, 1080), options, batch // len(kinds))]
        decoders = {k: Decoder(device, isolation=isolation.Isolation(children=k)) for k in (1, n)}
        med = _alternate(decoders, files, repeat, sync)
        res.add(f"decode_batch {label}, {n} children", len(files) / med[n], "img/s", "one child", len(files) / med[1])
    images = Decoder(device).decode_batch(make_files("PNG", (1920, 1080), {}, batch)).raise_errors().images
    for codec, options in (("png", {}), ("webp", {"quality": 90})):
        encoders = {k: Encoder(device, cpu_threads=k) for k in (1, n)}
        samples: dict = {k: [] for k in encoders}
        for enc in encoders.values():
            enc.encode_batch(images, codec, **options)
        for _ in range(max(1, repeat // 4)):  # an encode batch takes seconds on the CPU
            for k, enc in encoders.items():
                t = harness.time_host(lambda: enc.encode_batch(images, codec, **options), warmup=0, repeat=1, sync=sync)
                samples[k].append(t.median)
        med = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
        res.add(f"encode_batch {codec} 1080p, {n} threads", batch / med[n], "img/s", "one call", batch / med[1])


def _cost(res, device: str, batch: int, repeat: int, sync) -> None:
    for label, fmt, size, options in SETS:
        files = make_files(fmt, size, options, batch)
        decoders = {iso: Decoder(device, isolation=iso) for iso in (True, False)}
        med = _alternate(decoders, files, repeat, sync)
        res.add(f"decode_batch {label}", batch / med[True], "img/s", "in-process CPU codecs", batch / med[False])
        if device == "cuda" and fmt == "JPEG":
            # The GPU decode's written-pixels check (two kernels, one small copy) against none.
            checks = {check: Decoder("cuda", check_written=check) for check in (True, False)}
            med = _alternate(checks, files, repeat, sync)
            res.add(f"decode_batch {label}, written check", batch / med[True], "img/s", "check_written=False", batch / med[False])


def _alternate(decoders: dict, files: list[bytes], repeat: int, sync) -> dict:
    """Median seconds per batch of each decoder, timed in turn (drift hits all alike)."""
    outs = {key: dec.decode_batch(files).raise_errors().images for key, dec in decoders.items()}
    samples: dict = {key: [] for key in decoders}
    for _ in range(repeat):
        for key, dec in decoders.items():
            t = harness.time_host(lambda: dec.decode_batch(files, out=outs[key]), warmup=0, repeat=1, sync=sync)
            samples[key].append(t.median)
    return {key: sorted(v)[len(v) // 2] for key, v in samples.items()}


if __name__ == "__main__":
    main()
