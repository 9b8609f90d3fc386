"""Benchmark of the geometry and filter ops (issue 4) on the GPU, in "x copy" units.

For 4K and 1080p RGB uint8 photos and for a batch of 64 mixed-size (300-700 px) images:
each op's time per call through the public API, divided by a device-to-device copy of the
same data measured in the same run ("x copy"), beside torchvision's equivalent on CUDA
tensors (CHW uint8) where it has one. Also: launches per call (launch_stats) and the
allocations made while timing (memory_stats; 0 is the steady state).

Run from the repository root: ``python bench/ops_geometry.py [--quick] [--json out.json]``.
``run(results, args)`` is the entry point other scripts use.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import harness  # noqa: E402  (bench/ is on sys.path when run as a script)

import gpuimg  # noqa: E402
from gpuimg import Image, ImageBatch  # noqa: E402
from gpuimg import ops as _common  # noqa: E402
from gpuimg.ops import filters, geometry  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "assets"

# Targets from issue 4 ("x copy" on 4K) and CV-CUDA 0.19's figures on one H200 (BENCHMARKS.md, "Ops").
TARGETS = {
    "resize 4K->1080p bilinear antialias": (2.5, 3.2),
    "resize 4K->1080p bilinear": (1.5, 1.8),
    "resize 4K->1080p area": (0.8, 0.8),
    "gaussian k19 s3": (4.0, 75.0),
    "median 5x5": (15.0, 58.0),
    "flip horizontal": (1.2, 1.4),
    "crop": (1.2, None),
}


def _photo(height: int, width: int, device: str) -> Image:
    """A real photo (assets/coffee.png) resized on the host to the benchmark size."""
    from PIL import Image as PILImage

    with PILImage.open(ASSETS / "coffee.png") as im:
        arr = np.asarray(im.convert("RGB").resize((width, height), PILImage.BICUBIC))
    return Image.from_array(np.array(arr)).to(device)


def _mixed_batch(count: int, device: str, seed: int = 0) -> ImageBatch:
    """``count`` real-photo images of random sizes from 300 to 700 px (fixed seed)."""
    rng = np.random.default_rng(seed)
    from PIL import Image as PILImage

    with PILImage.open(ASSETS / "coffee.png") as im:
        base = im.convert("RGB")
        arrays = [np.asarray(base.resize((int(rng.integers(300, 701)), int(rng.integers(300, 701))))) for _ in range(count)]
    return ImageBatch.from_images(arrays, device=device)


def _torch_tensor(img: Image) -> Any:
    """The image as a torch CHW uint8 CUDA tensor (a copy, made once), or None without torch."""
    try:
        import torch
    except Exception:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.from_dlpack(img.array).permute(2, 0, 1).contiguous()


class Bench:
    """Times callables against a copy baseline and records rows with the peer beside them."""

    def __init__(self, results: harness.Results, args: Any):
        self.results, self.args = results, args

    def time(self, fn: Callable[[], Any]) -> float:
        return harness.time_gpu(fn, repeat=self.args.repeat, number=10 if not self.args.quick else 3).median

    def add(self, name: str, copy_s: float, ours: Callable[[], Any], peer: Callable[[], Any] | None = None,
            peer_name: str = "torchvision", target_key: str | None = None) -> None:
        ours()  # warm: compile kernels, size the workspace
        _common.reset_launch_stats()
        ours()
        launches = _common.launch_stats()["count"]
        gpuimg.reset_memory_stats()
        t = self.time(ours)
        allocs = gpuimg.memory_stats()["allocations"]
        # Python's share: the same calls timed on the host without waiting for the GPU
        host = harness.time_host(ours, warmup=1, repeat=3, number=10).median
        peer_x = None
        if peer is not None:
            try:
                peer_x = self.time(peer) / copy_s
            except Exception as exc:  # a missing peer op must not lose our figures
                print(f"peer {peer_name} failed for {name}: {exc}")
        note = f"{t * 1e6:.1f} us (host {host * 1e6:.0f} us), {launches} launch(es), {allocs} allocs"
        key = target_key or name.split(" (")[0]
        for tk, (target, cvcuda) in TARGETS.items():
            if key.endswith(tk):
                note += f"; target <= {target}x" + (f", CV-CUDA {cvcuda}x" if cvcuda else "")
        self.results.add(name, t / copy_s, "x copy", peer_name if peer_x is not None else None, peer_x, note=note)


def _single_image_rows(bench: Bench, label: str, img: Image) -> None:
    device = img.device
    h, w = img.height, img.width
    copy_s = harness.copy_time(img.array).median
    bench.results.add(f"{label} copy (the unit)", copy_s * 1e6, "us", note=f"{2 * img.nbytes / copy_s / 1e9:.0f} GB/s")
    t = _torch_tensor(img)
    tv = None
    if t is not None:
        import torchvision.transforms.v2.functional as TF

        tv = TF
    out_half = Image.empty(h // 2, w // 2, device=device)
    out_same = Image.empty(h, w, device=device)

    def peer(fn: Callable[[], Any]) -> Callable[[], Any] | None:
        return fn if tv is not None else None

    half = [h // 2, w // 2]
    bench.add(f"{label} resize ->1/2 bilinear antialias", copy_s,
              lambda: geometry.resize(img, (h // 2, w // 2), "bilinear", True, out=out_half),
              peer(lambda: tv.resize(t, half, antialias=True)), target_key="resize 4K->1080p bilinear antialias")
    bench.add(f"{label} resize ->1/2 bilinear", copy_s,
              lambda: geometry.resize(img, (h // 2, w // 2), "bilinear", False, out=out_half),
              peer(lambda: tv.resize(t, half, antialias=False)), target_key="resize 4K->1080p bilinear")
    bench.add(f"{label} resize ->1/2 area", copy_s, lambda: geometry.resize(img, (h // 2, w // 2), "area", out=out_half),
              target_key="resize 4K->1080p area")
    bench.add(f"{label} resize ->1/2 bicubic antialias", copy_s,
              lambda: geometry.resize(img, (h // 2, w // 2), "bicubic", True, out=out_half),
              peer(lambda: tv.resize(t, half, interpolation=tv.InterpolationMode.BICUBIC, antialias=True)))
    bench.add(f"{label} resize ->1/2 lanczos", copy_s, lambda: geometry.resize(img, (h // 2, w // 2), "lanczos", out=out_half))
    bench.add(f"{label} gaussian k19 s3", copy_s, lambda: filters.gaussian_blur(img, 3.0, out=out_same),
              peer(lambda: tv.gaussian_blur(t, [19, 19], [3.0, 3.0])))
    bench.add(f"{label} gaussian k19 s3 in place", copy_s, lambda: filters.gaussian_blur(img, 3.0, out=img))
    bench.add(f"{label} box blur 5x5", copy_s, lambda: filters.box_blur(img, 2, out=out_same))
    bench.add(f"{label} median 5x5", copy_s, lambda: filters.median_blur(img, 5, out=out_same))
    bench.add(f"{label} median 3x3", copy_s, lambda: filters.median_blur(img, 3, out=out_same))
    bench.add(f"{label} unsharp mask s1", copy_s, lambda: filters.unsharp_mask(img, 1.0, 1.0, out=out_same))
    bench.add(f"{label} sobel magnitude", copy_s, lambda: filters.sobel(img, out=out_same))
    bench.add(f"{label} flip horizontal", copy_s, lambda: geometry.flip(img, horizontal=True, out=out_same),
              peer(lambda: tv.horizontal_flip(t)))
    bench.add(f"{label} crop (90% centre)", copy_s,
              lambda: geometry.center_crop(img, (h * 9 // 10, w * 9 // 10), out=out_same),
              peer(lambda: tv.center_crop(t, [h * 9 // 10, w * 9 // 10]).contiguous()), target_key="crop")
    bench.add(f"{label} rotate90", copy_s, lambda: geometry.rotate90(img, 1, out=out_same))
    bench.add(f"{label} rotate 30 bilinear", copy_s, lambda: geometry.rotate(img, 30.0, out=out_same),
              peer(lambda: tv.rotate(t, 30.0, interpolation=tv.InterpolationMode.BILINEAR)))
    bench.add(f"{label} pad 32 reflect", copy_s, lambda: geometry.pad(img, 32, 32, 32, 32, mode="reflect", out=out_same),
              peer(lambda: tv.pad(t, [32, 32, 32, 32], padding_mode="reflect")))


def _batch_rows(bench: Bench, count: int, device: str) -> None:
    batch = _mixed_batch(count, device)
    copy_s = harness.copy_time(batch.arena).median
    bench.results.add(f"batch {count} mixed copy (the unit)", copy_s * 1e6, "us")
    out = ImageBatch.empty([(224, 224, 3)] * count, device=device)
    bench.add(f"batch {count} -> 224x224 bilinear antialias", copy_s,
              lambda: geometry.resize(batch, (224, 224), "bilinear", True, out=out))
    bench.add(f"batch {count} -> 224x224 bilinear", copy_s,
              lambda: geometry.resize(batch, (224, 224), "bilinear", False, out=out))
    slots = out.images
    images = batch.images

    def python_loop() -> None:
        for s, o in zip(images, slots):
            geometry.resize(s, (224, 224), "bilinear", True, out=o)

    one = bench.time(lambda: geometry.resize(batch, (224, 224), "bilinear", True, out=out))
    loop = bench.time(python_loop)
    bench.results.add(f"batch {count} -> 224 one call vs Python loop of ours", one * 1e6, "us", "loop of single calls",
                      loop * 1e6, note="target >= 10x faster than the loop")
    try:
        import torch
        import torchvision.transforms.v2.functional as TF

        if device != "cuda":
            raise RuntimeError("no CUDA tensors on the CPU")
        tensors = [torch.from_dlpack(im.array).permute(2, 0, 1).contiguous() for im in images]
        tv = bench.time(lambda: [TF.resize(x, [224, 224], antialias=True) for x in tensors])
        bench.results.add(f"batch {count} -> 224 vs torchvision loop", one * 1e6, "us", "torchvision loop", tv * 1e6)
    except Exception as exc:
        print(f"torchvision batch peer skipped: {exc}")
    bench.results.add(f"batch {count} -> 224 in x copy vs CV-CUDA 0.19 varshape (323 us on an H200, 2026-11-21)", one / copy_s, "x copy",
                      "CV-CUDA varshape", 23.0)
    out_same = ImageBatch.empty(batch.shapes, device=device)
    bench.add(f"batch {count} gaussian s2 (per-sample sigma)", copy_s,
              lambda: filters.gaussian_blur(batch, list(np.linspace(1, 3, count)), out=out_same))
    bench.add(f"batch {count} median 5x5", copy_s, lambda: filters.median_blur(batch, 5, out=out_same))
    bench.add(f"batch {count} flip", copy_s, lambda: geometry.flip(batch, horizontal=True, out=out_same))
    bench.add(f"batch {count} fit contain 224", copy_s, lambda: geometry.fit(batch, (224, 224), out=out))


def run(results: harness.Results, args: Any) -> harness.Results:
    """Add every figure of this benchmark to ``results``.

    Without a GPU, ``--quick`` still runs every code path on small CPU images (a smoke
    test of the script; its numbers mean nothing); otherwise nothing is measured.
    """
    if not harness.gpu_available():
        if not args.quick:
            print("no GPU: the geometry/filter benchmark needs CUDA (use --quick for a CPU smoke run)")
            return results
        bench = Bench(results, args)
        _single_image_rows(bench, "smoke", _photo(120, 200, "cpu"))
        _batch_rows(bench, 4, "cpu")
        return results
    bench = Bench(results, args)
    _single_image_rows(bench, "4K", _photo(2160, 3840, "cuda"))
    _single_image_rows(bench, "1080p", _photo(1080, 1920, "cuda"))
    _batch_rows(bench, 64, "cuda")
    return results


def profile_host(calls: int = 300) -> None:
    """Where the Python time of one call goes (cProfile over ``calls`` 4K flips and resizes)."""
    import cProfile
    import pstats

    device = "cuda" if harness.gpu_available() else "cpu"
    img = _photo(2160, 3840, device) if device == "cuda" else _photo(216, 384, device)
    out = Image.empty(img.height, img.width, device=device)
    half = Image.empty(img.height // 2, img.width // 2, device=device)
    ops = {"flip": lambda: geometry.flip(img, horizontal=True, out=out),
           "resize": lambda: geometry.resize(img, (img.height // 2, img.width // 2), "bilinear", False, out=half)}
    for name, fn in ops.items():
        fn()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(calls):
            fn()
        prof.disable()
        print(f"--- host profile: {name}, {calls} calls (tottime per function, us per call)")
        stats = pstats.Stats(prof).sort_stats("tottime")
        for func, (_, ncalls, tottime, _, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:12]:
            print(f"{tottime / calls * 1e6:7.2f} us  {ncalls // calls:3d}x  {func[2]} ({Path(func[0]).name}:{func[1]})")


def main() -> None:
    args = harness.parse_args(lambda p: p.add_argument("--profile-host", action="store_true",
                                                       help="also profile the Python side of one call"),
                              description=__doc__)
    results = harness.Results("ops: geometry and filters")
    run(results, args)
    harness.report(results, args)
    if args.profile_host:
        profile_host()


if __name__ == "__main__":
    main()
