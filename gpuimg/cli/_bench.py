"""``gpuimg bench``: a short self-benchmark on generated images."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from ._common import EXIT_FAILURES, EXIT_OK, _device_line, _make_pipeline, _progress_bar


def cmd_bench(args: argparse.Namespace) -> int:
    """Generate ``count`` JPEGs (gpuimg's own encoder, from a synthetic photo-like image),
    then time a typical run: decode -> resize_shorter 512 -> center_crop 512 -> JPEG q90."""
    from ..pipeline import Pipeline

    count = args.count if args.count is not None else (32 if args.quick else 256)
    size = args.size if args.size is not None else ((480, 640) if args.quick else (1080, 1920))
    pipeline = _make_pipeline([("resize_shorter", {"size": 512}), ("center_crop", {"size": (512, 512)})], args.device)
    print(f"gpuimg bench on {_device_line(pipeline.device)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpuimg-bench-") as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        t0 = time.perf_counter()
        _generate_images(src, count, size)
        print(f"generated {count} JPEGs of {size[1]}x{size[0]} in {time.perf_counter() - t0:.1f} s", flush=True)
        warm = min(count, args.batch_size)  # a first batch: kernels compiled, decoder and buffers made
        Pipeline([], device=pipeline.device).run(sorted(src.iterdir())[:warm], dst, batch_size=args.batch_size,
                                                 report=Path(tmp) / "warm.json")
        bar, progress = _progress_bar(count, not args.no_progress)
        try:
            summary = pipeline.run(src, dst, batch_size=args.batch_size, report=Path(tmp) / "report.json", progress=progress)
        finally:
            if bar is not None:
                bar.close()
    print(f"decode -> resize_shorter 512 -> center_crop 512 -> JPEG q90 on {pipeline.device}: {summary}")
    busy = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(summary.stage_seconds.items()))
    print(f"stage busy time (threads summed): {busy}")
    return EXIT_OK if not summary.failed else EXIT_FAILURES

def _generate_images(folder: Path, count: int, size: tuple[int, int]) -> None:
    """``count`` JPEGs: a synthetic photo-like gradient with noise, four variants encoded
    once each with gpuimg's encoder (on the CPU: no GPU needed), copied to fill the count."""
    import numpy as np

    from ..codec import Encoder
    from ..image import Image

    folder.mkdir(parents=True, exist_ok=True)
    height, width = size
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width]
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) % 256], -1).astype(np.uint8)
    encoder = Encoder("cpu")
    encoded = []
    for _ in range(4):
        v = np.clip(base.astype(np.int16) + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
        encoded.append(bytes(encoder.encode(Image.from_array(v, device="cpu"), "jpeg", quality=90)))
    for i in range(count):
        (folder / f"img{i:05d}.jpg").write_bytes(encoded[i % len(encoded)])
