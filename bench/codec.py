"""Codec benchmark: batch JPEG decode and encode of 1080p photos, against raw nvImageCodec
and torchvision in the same run, plus allocations in steady state.

Data: the RGB photos in assets/ resized to 1920x1080 with Pillow bicubic and saved as JPEG
quality 90 in memory, repeated to batches of 64 and 256.

- decode: ``Decoder.decode_batch`` into one reused ImageBatch (with the reuse guard, the
  default, and without) vs raw ``nvimgcodec.Decoder.decode([CodeStream(b) ...])`` (fresh
  outputs, the library's plain use; and with gpuimg's backend choice, to separate the
  gain of output reuse from that of the backend split) vs
  ``torchvision.io.decode_jpeg(list, device="cuda")``.
- encode: ``Encoder.encode_batch`` (returning views of the reused CodeStreams, and bytes
  copies) vs raw nvImageCodec ``encode(list)`` with fresh CodeStreams and with reused
  ones vs ``torchvision.io.encode_jpeg(list of CUDA CHW tensors)``.
- steady state: gpuimg allocations and CuPy pool growth over repeated decodes/encodes.

Every call ends with a device synchronisation inside the timed region (host timing).

Usage: python bench/codec.py [--quick] [--json PATH] [--batches 64 256]
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # import gpuimg from the checkout

import harness  # noqa: E402
import numpy as np  # noqa: E402

import gpuimg  # noqa: E402
from gpuimg.codec import Decoder, Encoder  # noqa: E402
from gpuimg.codec.backends import default_backends as _default_backends  # noqa: E402

PHOTOS = ("astronaut.jpg", "chelsea.png", "coffee.png", "rocket.jpg")
SIZE = (1920, 1080)
QUALITY = 90


def make_jpegs(count: int) -> list[bytes]:
    """``count`` 1080p JPEG q90 files made in memory from the asset photos (cycled)."""
    from PIL import Image as PILImage

    files = []
    for name in PHOTOS:
        with PILImage.open(ROOT / "assets" / name) as im:
            big = im.convert("RGB").resize(SIZE, PILImage.Resampling.BICUBIC)
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=QUALITY)
        files.append(buf.getvalue())
    return [files[i % len(files)] for i in range(count)]


def _raw_codecs(device: str) -> tuple[Any, Any]:
    from nvidia import nvimgcodec as nv

    if device == "cpu":
        kwargs = dict(device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY, backends=[nv.Backend(nv.CPU_ONLY)])
        return nv.Decoder(**kwargs), nv.Encoder(**kwargs)
    return nv.Decoder(), nv.Encoder()


def _torchvision() -> Any | None:
    try:
        import torch
        import torchvision.io
    except Exception:
        return None
    return (torch, torchvision.io) if torch.cuda.is_available() else None


def _rate(results: harness.Results, name: str, timing: harness.Timing, count: int, peer: str | None = None,
          peer_timing: harness.Timing | None = None, note: str = "") -> None:
    ours = count / timing.median
    theirs = count / peer_timing.median if peer_timing is not None else None
    results.add(name, ours, "img/s", peer, theirs, note=note)


def bench_decode(results: harness.Results, args: Any, device: str, files: list[bytes]) -> None:
    from nvidia import nvimgcodec as nv

    n = len(files)
    sync = harness.synchronizer(device)
    t = lambda fn: harness.time_host(fn, warmup=3, repeat=args.repeat, sync=sync)  # noqa: E731
    raw_dec, _ = _raw_codecs(device)
    dec = Decoder(device)
    fast = Decoder(device, guard_reuse=False)
    batch = dec.decode_batch(files).images
    raw = t(lambda: raw_dec.decode([nv.CodeStream(f) for f in files]))
    ours = t(lambda: dec.decode_batch(files, out=batch))
    ours_fast = t(lambda: fast.decode_batch(files, out=batch))
    _rate(results, f"decode_batch {n} x 1080p JPEG into reused batch", ours, n, "raw nvImageCodec", raw)
    _rate(results, f"decode_batch {n}, guard_reuse=False", ours_fast, n, "raw nvImageCodec", raw)
    if device == "cuda":
        # The same backends in raw nvImageCodec: what is left is the reuse of outputs.
        same = nv.Decoder(backends=_default_backends(nv))
        raw_same = t(lambda: same.decode([nv.CodeStream(f) for f in files]))
        _rate(results, f"decode_batch {n}", ours, n, "raw nvImageCodec, same (hybrid) backends", raw_same)
    tv = _torchvision()
    if tv is not None and device == "cuda":
        torch, tvio = tv
        tensors = [torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in files]
        peer = t(lambda: tvio.decode_jpeg(tensors, device="cuda"))
        _rate(results, f"decode_batch {n} vs torchvision", ours, n, "torchvision decode_jpeg", peer)
    _steady_state(results, f"decode_batch {n}", lambda: dec.decode_batch(files, out=batch), device)


def bench_encode(results: harness.Results, args: Any, device: str, files: list[bytes]) -> None:
    from nvidia import nvimgcodec as nv

    n = len(files)
    sync = harness.synchronizer(device)
    t = lambda fn: harness.time_host(fn, warmup=3, repeat=args.repeat, sync=sync)  # noqa: E731
    raw_dec, raw_enc = _raw_codecs(device)
    batch = Decoder(device).decode_batch(files).images
    enc = Encoder(device)
    params = nv.EncodeParams(quality_type=nv.QualityType.QUALITY, quality_value=float(QUALITY))
    images = [nv.as_image(img.array) for img in batch]
    reused = [nv.CodeStream(0, pin_memory=device == "cuda") for _ in range(n)]
    raw_fresh = t(lambda: raw_enc.encode(images, "jpeg", params=params))
    raw_reused = t(lambda: raw_enc.encode(images, "jpeg", params=params, code_stream_s=reused))
    views = t(lambda: enc.encode_batch(batch, "jpeg", quality=QUALITY, copy=False))
    copies = t(lambda: enc.encode_batch(batch, "jpeg", quality=QUALITY))
    _rate(results, f"encode_batch {n} x 1080p JPEG q90 (views)", views, n, "raw nvImageCodec, fresh CodeStreams", raw_fresh)
    _rate(results, f"encode_batch {n} (views)", views, n, "raw nvImageCodec, reused CodeStreams", raw_reused)
    _rate(results, f"encode_batch {n} (bytes copies)", copies, n, "raw nvImageCodec, fresh CodeStreams", raw_fresh)
    tv = _torchvision()
    if tv is not None and device == "cuda":
        torch, tvio = tv
        chw = [torch.from_dlpack(img.array).permute(2, 0, 1).contiguous() for img in batch]
        peer = t(lambda: tvio.encode_jpeg(chw, quality=QUALITY))
        _rate(results, f"encode_batch {n} (views) vs torchvision", views, n, "torchvision encode_jpeg", peer)
    _steady_state(results, f"encode_batch {n}", lambda: enc.encode_batch(batch, "jpeg", quality=QUALITY, copy=False), device)


def _steady_state(results: harness.Results, name: str, fn: Callable[[], Any], device: str, calls: int = 10) -> None:
    """gpuimg allocations and CuPy pool growth over ``calls`` calls after a warm-up."""
    fn()
    harness.synchronizer(device)()
    pool = _pool_used(device)
    gpuimg.reset_memory_stats()
    for _ in range(calls):
        fn()
    harness.synchronizer(device)()
    allocations = gpuimg.memory_stats()["allocations"]
    grown = _pool_used(device) - pool
    results.add(f"{name}: gpuimg allocations in {calls} calls after warm-up", allocations, "allocations",
                higher_is_better=False, note="target 0")
    results.add(f"{name}: CuPy pool growth in {calls} calls", grown, "bytes", higher_is_better=False, note="target 0")


def _pool_used(device: str) -> int:
    if device != "cuda":
        return 0
    import cupy

    return int(cupy.get_default_memory_pool().used_bytes())


def run(results: harness.Results, args: Any) -> None:
    """Add the codec figures to ``results`` (callable from a combined runner)."""
    device = "cuda" if harness.gpu_available() else "cpu"
    batches = getattr(args, "batches", None) or ([8] if args.quick else [64, 256])
    for n in batches:
        files = make_jpegs(n)
        bench_decode(results, args, device, files)
        bench_encode(results, args, device, files)


def main() -> None:
    args = harness.parse_args(lambda p: p.add_argument("--batches", type=int, nargs="*", default=None))
    results = harness.Results("codec", meta=dict(device=harness.device_name(), size=SIZE, quality=QUALITY))
    run(results, args)
    harness.report(results, args)


if __name__ == "__main__":
    main()
