"""Colour, tensor and compositing ops on a 4K image, in "x copy" units, beside their peers.

Every op runs on a 3840x2160 photo-like image (RGB, or RGBA for compositing) with a
preallocated ``out`` (no allocation in the timed loop). "x copy" is the op's time over a
device-to-device copy of the same source image measured in the same run (the unit
BENCHMARKS.md's "Ops" section uses for CV-CUDA's figures too). Peers: torchvision.transforms.v2.functional on CHW uint8 CUDA tensors
where it has the op; otherwise a straightforward CuPy-array version of the same formula.

Targets (issue 5): each pointwise op <= 1.25x copy, to_gray <= 1.0x, to_tensor uint8 ->
normalised float32 <= 2.5x, a fused chain of four pointwise ops + to_tensor <= 1.5x the
slowest single op.

Usage: python bench/ops_color.py [--quick] [--json PATH]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # import gpuimg from the checkout

import harness  # noqa: E402

import gpuimg  # noqa: E402
from gpuimg.ops import color, compose  # noqa: E402
from gpuimg.ops import launch_stats, reset_launch_stats  # noqa: E402

H, W = 2160, 3840
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def photo_4k(channels: int) -> np.ndarray:
    """A smooth, photo-like 4K test image (an asset tiled and jittered), with a soft alpha."""
    from PIL import Image as PILImage

    base = PILImage.open(Path(__file__).resolve().parent.parent / "assets" / "coffee.png").convert("RGB")
    rgb = np.asarray(base.resize((W, H), PILImage.BICUBIC))
    if channels == 3:
        return np.ascontiguousarray(rgb)
    yy, xx = np.mgrid[:H, :W]
    r = np.hypot(yy - H / 2, xx - W / 2) / (H / 2)
    alpha = np.clip((1.0 - r) * 2.0, 0, 1) * 255
    return np.ascontiguousarray(np.dstack([rgb, alpha.astype(np.uint8)]))


def _torch() -> tuple[Any, Any]:
    try:
        import torch
        from torchvision.transforms.v2 import functional as F
    except Exception:
        return None, None
    return (torch, F) if torch.cuda.is_available() else (None, None)


class Bench:
    """Times callables against the copy of the image each belongs to."""

    def __init__(self, results: harness.Results, args: Any):
        self.results, self.args = results, args
        self.copies: dict[int, float] = {}

    def copy_of(self, nbytes: int) -> float:
        if nbytes not in self.copies:
            self.copies[nbytes] = harness.copy_time(nbytes, repeat=self.args.repeat).median
        return self.copies[nbytes]

    def time(self, fn: Callable[[], Any]) -> float:
        return harness.time_gpu(fn, repeat=self.args.repeat, number=10).median

    def kernels_only(self, fn: Callable[[], Any]) -> float | None:
        """GPU time of the kernels ``fn`` launches, replayed without the Python call around
        them (None when ``fn`` launches none through gpuimg's pointwise/compose modules)."""
        from gpuimg.ops.color import fusion
        from gpuimg.ops.compose import _kernels as compose_kernels  # its _launch calls launch there

        recorded: list[tuple[Any, ...]] = []
        real = {m: m.launch for m in (fusion, compose_kernels)}

        def record(k: Any, g: Any, b: Any, a: Any, stream: Any = None, shared_mem: int = 0) -> None:
            recorded.append((k, g, b, a))
            real[fusion](k, g, b, a, stream, shared_mem)

        for m in real:
            m.launch = record
        try:
            fn()
        finally:
            for m, f in real.items():
                m.launch = f
        if not recorded or not harness.gpu_available():
            return None
        return self.time(lambda: [k(g, b, a) for k, g, b, a in recorded])

    def add(self, name: str, fn: Callable[[], Any], nbytes: int, peer: tuple[str, Callable[[], Any]] | None = None,
            note: str = "", kernels: bool = True) -> float:
        copy = self.copy_of(nbytes)
        t = self.time(fn)
        peer_value = peer_name = None
        if peer is not None and peer[1] is not None:
            peer_name, peer_value = peer[0], self.time(peer[1]) / copy
        text = f"{t * 1e6:.1f} us per call"
        k = self.kernels_only(fn) if kernels else None
        if k is not None:
            text += f"; kernels alone {k * 1e6:.1f} us = {k / copy:.2f}x copy"
        self.results.add(name, t / copy, "x copy", peer_name, peer_value, note=f"{text}; {note}" if note else text)
        return t


def pointwise_figures(b: Bench, xp: Any, torch: Any, F: Any) -> dict[str, float]:
    rgb = gpuimg.Image.from_array(xp.asarray(photo_4k(3)))
    rgba = gpuimg.Image.from_array(xp.asarray(photo_4k(4)))
    out = gpuimg.Image.empty(H, W, 3, device=rgb.device)
    out4 = gpuimg.Image.empty(H, W, 4, device=rgb.device)
    gray = gpuimg.Image.empty(H, W, 1, device=rgb.device)
    t_chw = torch.from_dlpack(rgb.array).permute(2, 0, 1).contiguous() if torch is not None else None
    tv = (lambda fn: ("torchvision", fn)) if torch is not None else (lambda fn: None)
    nbytes = rgb.nbytes
    times = {}
    ops = {
        "invert": (lambda: color.invert(rgb, out=out), lambda: F.invert(t_chw)),
        "adjust_brightness 1.2": (lambda: color.adjust_brightness(rgb, 1.2, out=out), lambda: F.adjust_brightness(t_chw, 1.2)),
        "adjust_contrast 0.9": (lambda: color.adjust_contrast(rgb, 0.9, out=out), lambda: F.adjust_contrast(t_chw, 0.9)),
        "adjust_saturation 1.3": (lambda: color.adjust_saturation(rgb, 1.3, out=out), lambda: F.adjust_saturation(t_chw, 1.3)),
        "adjust_hue 0.1": (lambda: color.adjust_hue(rgb, 0.1, out=out), lambda: F.adjust_hue(t_chw, 0.1)),
        "adjust_gamma 0.8": (lambda: color.adjust_gamma(rgb, 0.8, out=out), lambda: F.adjust_gamma(t_chw, 0.8)),
        "threshold 128": (lambda: color.threshold(rgb, 128, out=out), None),
        "equalize_histogram (per channel)": (lambda: color.equalize_histogram(rgb, out=out), lambda: F.equalize(t_chw)),
        "convert rgb -> bgr": (lambda: color.convert(rgb, "bgr", out=out), lambda: t_chw.flip(0)),
    }
    for name, (ours, peer) in ops.items():
        times[name] = b.add(f"{name}, 4K RGB", ours, nbytes, tv(peer) if peer is not None else None)
    b.add("opacity 0.5, 4K RGBA", lambda: color.opacity(rgba, 0.5, out=out4), rgba.nbytes)
    b.add("to_gray (BT.601), 4K RGB", lambda: color.to_gray(rgb, out=gray), nbytes, tv(lambda: F.rgb_to_grayscale(t_chw)), "target <= 1.0x")
    tensor = xp.empty((3, H, W), xp.float32)

    def tv_tensor():
        return F.normalize(F.to_dtype(t_chw, torch.float32, scale=True), list(MEAN), list(STD))

    times["to_tensor"] = b.add("to_tensor uint8 -> normalised float32 NCHW, 4K", lambda: color.to_tensor(rgb, MEAN, STD, out=tensor), nbytes, tv(tv_tensor), "target <= 2.5x")
    half = xp.empty((H, W, 3), xp.float16)
    b.add("to_tensor -> float16 NHWC, 4K", lambda: color.to_tensor(rgb, MEAN, STD, "float16", "NHWC", out=half), nbytes)
    S = color.step
    fused = color.chain(S.brightness(1.2), S.contrast(0.9), S.saturation(1.3), S.gamma(0.8)).to_tensor(MEAN, STD)

    def unfused():
        color.adjust_brightness(rgb, 1.2, out=out)
        color.adjust_contrast(out, 0.9, out=out)
        color.adjust_saturation(out, 1.3, out=out)
        color.adjust_gamma(out, 0.8, out=out)
        color.to_tensor(out, MEAN, STD, out=tensor)

    def tv_chain():
        x = F.adjust_gamma(F.adjust_saturation(F.adjust_contrast(F.adjust_brightness(t_chw, 1.2), 0.9), 1.3), 0.8)
        return F.normalize(F.to_dtype(x, torch.float32, scale=True), list(MEAN), list(STD))

    reset_launch_stats()
    fused(rgb, out=tensor)
    launches = launch_stats()["count"]
    slowest = max(times[k] for k in ("adjust_brightness 1.2", "adjust_contrast 0.9", "adjust_saturation 1.3", "adjust_gamma 0.8"))
    t_fused = b.time(lambda: fused(rgb, out=tensor))
    b.results.add("fused brightness+contrast+saturation+gamma+to_tensor", t_fused / slowest, "x slowest op", higher_is_better=False,
                  note=f"{t_fused * 1e6:.1f} us, {launches} launches; target <= 1.5")
    b.add("fused chain of 4 + to_tensor, 4K", lambda: fused(rgb, out=tensor), nbytes, ("gpuimg unfused (5 ops)", unfused))
    if torch is not None:
        b.add("fused chain of 4 + to_tensor, 4K (vs torchvision)", lambda: fused(rgb, out=tensor), nbytes, ("torchvision", tv_chain))
    batch = gpuimg.ImageBatch.from_images([photo_4k(3)[: H // 2, : W // 2]] * 32, device=rgb.device)
    bout = batch.copy()
    singles = list(batch)
    outs = list(bout)

    def per_image():
        for s, o in zip(singles, outs):
            color.adjust_brightness(s, 1.2, out=o)

    b.add("adjust_brightness, batch of 32 x 1080p (one launch)", lambda: color.adjust_brightness(batch, 1.2, out=bout), batch.nbytes, ("gpuimg, one call per image", per_image))
    return times


def compose_figures(b: Bench, xp: Any, torch: Any, F: Any) -> None:
    if xp is np:
        import scipy.ndimage as ndi
    else:
        import cupyx.scipy.ndimage as ndi

    src = gpuimg.Image.from_array(xp.asarray(photo_4k(4)))
    dst = gpuimg.Image.from_array(xp.asarray(photo_4k(4)[::-1].copy()))
    out = gpuimg.Image.empty(H, W, 4, device=src.device)
    nbytes = src.nbytes
    s32, d32 = src.array.astype(xp.float32), dst.array.astype(xp.float32)

    def cupy_blend():  # straight-alpha "over" as plain CuPy array expressions
        sa, da = s32[..., 3:] / 255, d32[..., 3:] / 255
        oa = sa + da * (1 - sa)
        rgb = (s32[..., :3] * sa + d32[..., :3] * da * (1 - sa)) / xp.maximum(oa, 1e-6)
        return xp.concatenate([rgb, oa * 255], axis=-1).round().astype(xp.uint8)

    b.add("blend 4K RGBA over 4K RGBA", lambda: compose.blend(dst, src, out=out), nbytes, ("CuPy arrays", cupy_blend))
    yy, xx = xp.mgrid[:H, :W].astype(xp.float32)

    def cupy_corners(r: float = 200.0):
        cx = xp.clip(xx + 0.5, r, W - r)
        cy = xp.clip(yy + 0.5, r, H - r)
        cov = xp.clip(r + 0.5 - xp.hypot(xx + 0.5 - cx, yy + 0.5 - cy), 0, 1)
        res = src.array.copy()
        res[..., 3] = (res[..., 3] * cov).round().astype(xp.uint8)
        return res

    b.add("corner_radius 200, 4K RGBA", lambda: compose.corner_radius(src, 200, out=out), nbytes, ("CuPy arrays", cupy_corners))
    sigma = 6.0
    pad = int(np.ceil(3 * sigma))
    shadow_out = gpuimg.Image.empty(H + 2 * pad + 16, W + 2 * pad + 16, 4, device=src.device)
    compose.drop_shadow(src, (8, 8), sigma, out=shadow_out)

    def peer_shadow():  # torchvision blur of the alpha + CuPy blend, or CuPy's gaussian_filter
        canvas = xp.zeros(shadow_out.shape[:2], xp.uint8)
        canvas[pad + 16 : pad + 16 + H, pad + 16 : pad + 16 + W] = src.array[..., 3]
        if torch is not None:
            blurred = xp.from_dlpack(F.gaussian_blur(torch.from_dlpack(canvas)[None], [37, 37], [sigma, sigma])[0])
        else:
            blurred = ndi.gaussian_filter(canvas, sigma)
        sh = blurred.astype(xp.float32) * 0.5 / 255
        layer = src.array.astype(xp.float32)
        res = xp.zeros(shadow_out.shape, xp.float32)
        res[..., 3] = sh
        sa = layer[..., 3:] / 255
        region = res[pad : pad + H, pad : pad + W]
        oa = sa + region[..., 3:] * (1 - sa)
        region[..., :3] = layer[..., :3] * sa / xp.maximum(oa, 1e-6)
        region[..., 3:] = oa
        return res

    b.add("drop_shadow sigma 6, 4K RGBA (expand)", lambda: compose.drop_shadow(src, (8, 8), sigma, out=shadow_out), nbytes,
          ("torchvision blur + CuPy" if torch is not None else "CuPy gaussian_filter", peer_shadow), kernels=False)
    for width in (4, 16):
        def cupy_stroke(width: int = width):
            dist = ndi.distance_transform_edt(src.array[..., 3] < 128)
            cov = xp.clip(width + 1 - dist, 0, 1)
            sa = src.array[..., 3:].astype(xp.float32) / 255
            res = src.array.astype(xp.float32)
            res[..., :3] = res[..., :3] * sa
            res[..., 3] = xp.maximum(sa[..., 0], cov) * 255
            return res

        b.add(f"stroke {width} px outside, 4K RGBA", lambda width=width: compose.stroke(src, width, (0, 0, 0), out=out), nbytes,
              ("CuPy distance_transform_edt", cupy_stroke))
    b.add("gradient 3 stops, 30 degrees, 4K RGBA", lambda: compose.gradient(out, [(0, 0, 0), (200, 40, 90), (255, 255, 255)], angle=30, out=out), nbytes)
    b.add("fill, 4K RGBA", lambda: compose.fill(out, (10, 20, 30, 255), out=out), nbytes, ("CuPy fill", lambda: out.array.fill(7)))


def allocation_check(xp: Any) -> int:
    rgb = gpuimg.Image.from_array(xp.asarray(photo_4k(3)))
    out = gpuimg.Image.empty(H, W, 3, device=rgb.device)
    tensor = xp.empty((3, H, W), xp.float32)
    chain = color.chain(color.step.brightness(1.1), color.step.contrast(1.2)).to_tensor(MEAN, STD)
    chain(rgb, out=tensor)
    color.adjust_hue(rgb, 0.2, out=out)
    gpuimg.reset_memory_stats()
    for k in range(5):
        chain(rgb, out=tensor)
        color.adjust_hue(rgb, 0.1 + 0.05 * k, out=out)
    return gpuimg.memory_stats()["allocations"]


def profile_overhead(xp: Any) -> None:
    """Where an op call's time goes: the kernels alone (launched directly) versus the whole
    Python call, and a cProfile of the call path (printed; for tuning)."""
    import cProfile
    import pstats

    from gpuimg.ops.color import fusion

    rgb = gpuimg.Image.from_array(xp.asarray(photo_4k(3)))
    out = gpuimg.Image.empty(H, W, 3, device=rgb.device)
    copy = harness.copy_time(rgb.nbytes).median
    ops = {
        "invert": lambda: color.invert(rgb, out=out),
        "brightness": lambda: color.adjust_brightness(rgb, 1.2, out=out),
        "contrast": lambda: color.adjust_contrast(rgb, 0.9, out=out),
        "gamma": lambda: color.adjust_gamma(rgb, 0.8, out=out),
        "threshold": lambda: color.threshold(rgb, 128, out=out),
        "hue": lambda: color.adjust_hue(rgb, 0.1, out=out),
        "to_gray": lambda: color.to_gray(rgb),
    }
    real_launch = fusion.launch
    for name, fn in ops.items():
        recorded = []
        fusion.launch = lambda k, g, b, a, s=None, shared_mem=0: (recorded.append((k, g, b, a)), real_launch(k, g, b, a, s))
        fn()
        fusion.launch = real_launch
        kernels_only = harness.time_gpu(lambda: [k(g, b, a) for k, g, b, a in recorded], number=10).median
        whole = harness.time_gpu(fn, number=10).median
        host = harness.time_host(fn, number=50).median
        print(f"{name:12s} kernels {kernels_only * 1e6:7.1f} us ({kernels_only / copy:5.2f} x copy) | whole call {whole * 1e6:7.1f} us"
              f" | host-side call {host * 1e6:6.1f} us | grid {recorded[-1][1] if recorded else None}")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(300):
        color.adjust_gamma(rgb, 0.8, out=out)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(14)


def run(results: harness.Results, args: Any) -> None:
    """Add this script's figures to ``results`` (used by __main__ and by bench/ops.py)."""
    global H, W
    H, W = (int(v) for v in args.size.lower().split("x"))
    if harness.gpu_available():
        import cupy as xp
    else:  # a smoke run of the same code on the host (meaningless numbers)
        xp = np

    if getattr(args, "profile", False):
        profile_overhead(xp)
    torch, F = _torch()
    b = Bench(results, args)
    pointwise_figures(b, xp, torch, F)
    compose_figures(b, xp, torch, F)
    results.meta["steady_state_allocations"] = allocation_check(xp)
    results.meta["copy_us"] = {str(k): v * 1e6 for k, v in b.copies.items()}
    print(f"steady-state allocations over 10 calls: {results.meta['steady_state_allocations']}")


if __name__ == "__main__":
    def options(p: Any) -> None:
        p.add_argument("--size", default="2160x3840", help="HxW of the test image")
        p.add_argument("--profile", action="store_true", help="first print where an op call's time goes")

    arguments = harness.parse_args(options, description=__doc__)
    res = harness.Results("colour, tensors and compositing (4K)")
    run(res, arguments)
    harness.report(res, arguments)
