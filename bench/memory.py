"""Reusing one Image (set_shape) versus allocating an array per image.

A stream of N images of mixed sizes (300 px to 4K on the longer side, in random order)
is "processed": each is copied from a source into the working buffer and inverted in
place, the cheapest realistic per-image work, so allocation cost is not hidden by it.

  reuse Image       one gpuimg.Image, set_shape per image (grows only at a new maximum)
  reuse ImageBatch  the same images 64 at a time in one reused arena (set_shapes)
  cupy.empty/image  a fresh CuPy array per image through CuPy's memory pool (the default)
  cudaMalloc/image  a fresh array per image with CuPy's pool off (raw cudaMalloc/cudaFree)

Usage: python bench/memory.py [--quick] [--json PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import gpuimg from the checkout

import harness  # noqa: E402

import gpuimg  # noqa: E402
from gpuimg.device import array_module  # noqa: E402


def make_shapes(count: int, seed: int = 0) -> list[tuple[int, int]]:
    """Mixed sizes, long side 300..3840, aspect 0.5..2, random order."""
    rng = np.random.default_rng(seed)
    longs = rng.integers(300, 3841, count)
    aspect = rng.uniform(0.5, 2.0, count)
    return [(int(l), max(1, int(l / a))) if a >= 1 else (max(1, int(l * a)), int(l)) for l, a in zip(longs, aspect)]


def main() -> None:
    args = harness.parse_args(lambda p: p.add_argument("--count", type=int, default=None))
    device = "cuda" if harness.gpu_available() else "cpu"
    xp = array_module(device)
    count = args.count or (200 if args.quick else 1000)
    shapes = make_shapes(count)
    source = xp.asarray(np.random.default_rng(1).integers(0, 256, 3840 * 3840 * 3, dtype=np.uint8))
    sync = (lambda: xp.cuda.Device().synchronize()) if device == "cuda" else None

    def process(dst):  # copy a source region of the same size in, then invert in place
        n = dst.size
        xp.copyto(dst, source[:n].reshape(dst.shape))
        xp.invert(dst, out=dst)

    img = gpuimg.Image.empty(1, 1, device=device)

    def reuse_image():
        for h, w in shapes:
            process(img.set_shape(h, w).array)

    batch = gpuimg.ImageBatch.empty([(1, 1)] * 64, device=device)

    def reuse_batch():
        for start in range(0, count, 64):
            batch.set_shapes(shapes[start : start + 64])
            for slot in batch:
                process(slot.array)

    def per_image_empty():
        for h, w in shapes:
            process(xp.empty((h, w, 3), xp.uint8))

    results = harness.Results("memory: reuse vs allocate per image", meta=dict(device=harness.device_name(), images=count))
    repeat = max(2, args.repeat // 4)
    runs = {}
    for name, fn in [("reuse Image", reuse_image), ("reuse ImageBatch", reuse_batch), ("cupy.empty/image", per_image_empty)]:
        gpuimg.reset_memory_stats()
        fn()  # first pass: the reused buffers grow to the largest image here
        first = gpuimg.memory_stats()
        gpuimg.reset_memory_stats()
        timing = harness.time_host(fn, warmup=0, repeat=repeat, sync=sync)
        steady = gpuimg.memory_stats()
        runs[name] = (timing, first, steady)

    if device == "cuda":  # the same per-image allocation without CuPy's caching pool
        xp.cuda.set_allocator(None)
        try:
            runs["cudaMalloc/image"] = (harness.time_host(per_image_empty, warmup=1, repeat=repeat, sync=sync), None, None)
        finally:
            xp.cuda.set_allocator(xp.get_default_memory_pool().malloc)

    held = {"reuse Image": img.capacity, "reuse ImageBatch": batch.capacity}
    if device == "cuda":  # what CuPy's pool keeps after a stream of fresh per-image arrays
        pool = xp.get_default_memory_pool()
        pool.free_all_blocks()
        before = pool.total_bytes()
        per_image_empty()
        held["cupy.empty/image"] = pool.total_bytes() - before

    base = runs["reuse Image"][0].median
    for name, (timing, first, steady) in runs.items():
        per_image_us = timing.median / count * 1e6
        if name.startswith("reuse"):
            results.add(f"{name}: us/image", per_image_us, "us")
            results.add(f"{name}: allocations, first pass", first["allocations"], "count", higher_is_better=False,
                        note=f"{first['growths']} growths")
            results.add(f"{name}: allocations, steady state ({repeat} passes)", steady["allocations"], "count",
                        higher_is_better=False)
        else:
            results.add(f"reuse Image vs {name}: us/image", base / count * 1e6, "us", peer_name=name,
                        peer_value=per_image_us, note=f"{count} allocations per pass")
    if "cupy.empty/image" in held:
        results.add("device memory held after the stream: reuse Image vs cupy pool (MB)", held["reuse Image"] / 1e6, "MB",
                    peer_name="cupy.empty/image", peer_value=held["cupy.empty/image"] / 1e6, higher_is_better=False)
    harness.report(results, args)


if __name__ == "__main__":
    main()
