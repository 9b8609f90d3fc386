"""Host time of one op call: gpuimg's Python path beside CuPy's own launch floor.

On a tiny image the GPU work is negligible, so the time per call (host clock, calls
queued back to back, one sync at the end) is what the Python side costs. The peer is the
floor any CuPy-based library pays: launching an empty RawKernel. With --profile, a
cProfile of each op's calls shows where the rest goes.

Usage: python bench/overhead.py [--quick] [--profile] [--json PATH]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import gpuimg from the checkout

import harness  # noqa: E402
import numpy as np  # noqa: E402

import gpuimg  # noqa: E402
from gpuimg.ops import color, filters, geometry  # noqa: E402


def main() -> None:
    args = harness.parse_args(lambda p: p.add_argument("--profile", action="store_true", help="cProfile each op"))
    device = "cuda" if harness.gpu_available() else "cpu"
    img = gpuimg.Image.from_array(gpuimg.device.array_module(device).asarray(np.full((16, 16, 3), 100, np.uint8)))
    out = gpuimg.Image.empty(16, 16, device=device)
    small = gpuimg.Image.empty(8, 8, device=device)
    ops = {
        "invert": lambda: color.invert(img, out=out),
        "brightness": lambda: color.adjust_brightness(img, 1.2, out=out),
        "flip": lambda: geometry.flip(img, horizontal=True, out=out),
        "crop": lambda: geometry.crop(img, 2, 2, 8, 8, out=small),
        "resize": lambda: geometry.resize(img, (8, 8), out=small),
        "gaussian_blur": lambda: filters.gaussian_blur(img, 1.0, out=out),
    }
    sync = None
    floor = None
    if device == "cuda":
        import cupy

        empty = cupy.RawKernel('extern "C" __global__ void noop(const unsigned char* p, long long n) {}', "noop")
        ptr = np.uint64(img.data_ptr)

        def launch_empty():
            empty((1,), (32,), (ptr, np.int64(0)))

        sync = cupy.cuda.Device().synchronize
        floor = harness.time_host(launch_empty, warmup=50, repeat=args.repeat, number=200, sync=sync).median
    results = harness.Results("per-call host overhead (tiny image: the GPU work is negligible)",
                              meta=dict(device=harness.device_name()))
    for name, fn in ops.items():
        t = harness.time_host(fn, warmup=50, repeat=args.repeat, number=200, sync=sync).median
        results.add(f"{name}: host time per call", t * 1e6, "us", peer_name="empty CuPy RawKernel launch" if floor else None,
                    peer_value=floor * 1e6 if floor else None)
    harness.report(results, args)
    if args.profile:
        for name, fn in ops.items():
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(500):
                fn()
            prof.disable()
            print(f"--- {name}: top functions by own time (500 calls)")
            pstats.Stats(prof).sort_stats("tottime").print_stats(10)


if __name__ == "__main__":
    main()
