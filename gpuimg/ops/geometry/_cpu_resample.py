"""The CPU path of the resampler: Pillow's own resize where it is the reference, a gather
for nearest, the NumPy reference (resample._resample_numpy) for everything else.

gpuimg's antialiased bilinear/bicubic/lanczos *are* Pillow's ``Image.resize`` formulas
(resize's docstring: within 1 level, Pillow's 22-bit fixed-point weights against gpuimg's
float ones), so on uint8 L/RGB/RGBA images the CPU path hands the image to Pillow when
it is installed: the reference's own pixels, at the reference's speed, and Pillow frees
the GIL while it resamples, so the images of a batch run on a few threads. uint16,
float32, 2 channels, OpenCV's formulas (``antialias=False`` bilinear/bicubic, area) and
lanczos shrinking without antialias (no Pillow filter for it) keep the NumPy reference.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from .._engine.batch import pairs
from .._engine.kernels import store_numpy
from ._plan import _WIDEN, Plan

__all__ = ["resample_cpu", "pillow_path", "use_pillow"]

# Pillow's pass order where one side grows and the other shrinks changed in Pillow 13
# (resize's docstring): an older Pillow is used only where the order does not matter.
_PIL: Any = None
_PIL_MIXED_OK = False
_PIL_LOADED = False
_ENABLED = True


def _pillow() -> Any:
    """PIL.Image, imported on first use (None when Pillow is not installed)."""
    global _PIL, _PIL_MIXED_OK, _PIL_LOADED
    if not _PIL_LOADED:
        try:
            import PIL
            from PIL import Image as PILImage
        except ImportError:  # Pillow is optional: the NumPy reference serves alone
            PILImage = None
        else:
            _PIL_MIXED_OK = int(PIL.__version__.split(".")[0]) >= 13
        _PIL, _PIL_LOADED = PILImage, True
    return _PIL


def use_pillow(enabled: bool) -> bool:
    """Route the CPU resampler through Pillow where it is the reference (the default), or
    never (``False``: the NumPy reference everywhere, the arithmetic the GPU kernel does);
    returns the previous setting.

    Example:
        >>> previous = use_pillow(False); use_pillow(previous)
        False
    """
    global _ENABLED
    previous, _ENABLED = _ENABLED, bool(enabled)
    return previous


# Pillow's filter per axis kind (_plan's table) when antialiased: bilinear, bicubic, lanczos
_PIL_FILTERS = {0: "BILINEAR", 1: "BICUBIC", 2: "LANCZOS"}
_PIL_MODES = {1: "L", 3: "RGB"}


def pillow_path(plan: Plan, i: int, dtype: np.dtype, channels: int) -> tuple[str, int] | None:
    """(Pillow mode, Pillow filter) when image ``i`` of ``plan`` is Pillow's own resize, else None.

    Example:
        >>> from gpuimg.ops.geometry._plan import Spec, make_plan
        >>> plan = make_plan("bicubic", True, True, [(480, 640)], [Spec((0, 0, 480, 640), (256, 341), (0, 0, 256, 341))])
        >>> pillow_path(plan, 0, np.dtype("uint8"), 3) is not None or _pillow() is None
        True
    """
    if not _ENABLED or dtype != np.uint8 or channels not in (1, 3, 4) or _pillow() is None:
        return None
    kinds = plan.axes[2 * i : 2 * i + 2, 6].astype(int)
    if kinds[0] != kinds[1] or kinds[0] >= 8:
        return None
    kind = int(kinds[0])
    if not kind & _WIDEN:
        # lanczos without antialias: Pillow's formula, unwidened, equals Pillow's only
        # where no axis shrinks (the widening is max(scale, 1))
        lengths = plan.axes[2 * i : 2 * i + 2]
        if np.any(lengths[:, 5] > lengths[:, 3]):
            return None
    if int(plan.meta[i, 6]) == 2 and not _PIL_MIXED_OK:
        return None
    mode = _PIL_MODES.get(channels) or ("RGBA" if int(plan.meta[i, 7]) else "RGBa")
    return mode, getattr(_PIL.Resampling, _PIL_FILTERS[kind & 3])


def _resample_pillow(arr: np.ndarray, plan: Plan, i: int, mode: str, pil_filter: int) -> np.ndarray:
    """Image ``i`` resampled by Pillow: (rh, rw, channels) uint8."""
    height, width, channels = arr.shape
    (_, _, _, _, bx, bw, _, _), (_, _, _, _, by, bh, _, _) = plan.axes[2 * i : 2 * i + 2].tolist()
    rh, rw = int(plan.meta[i, 10]), int(plan.meta[i, 11])
    # RGB is unpacked into Pillow's 4-byte pixels either way; L and RGBA share the buffer
    buf = arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
    im = _PIL.frombuffer(mode, (width, height), buf, "raw", mode, 0, 1)
    res = im.resize((rw, rh), pil_filter, box=(bx, by, bx + bw, by + bh), reducing_gap=None)
    return np.asarray(res).reshape(rh, rw, channels)


def _gather(arr: np.ndarray, plan: Plan, i: int) -> np.ndarray | None:
    """One tap of weight 1 per output on both axes (nearest): the pixels themselves, exact
    for every dtype (inf and NaN included); None for any other plan."""
    xs_off, xw_off, nx, ys_off, yw_off, ny, *_, rh, rw = (int(v) for v in plan.meta[i])
    if nx != 1 or ny != 1 or int(plan.meta[i, 7]):
        return None
    wx, wy = plan.weights[xw_off : xw_off + rw], plan.weights[yw_off : yw_off + rh]
    if not (np.all(wx == 1) and np.all(wy == 1)):
        return None
    sx, sy = plan.starts[xs_off : xs_off + rw], plan.starts[ys_off : ys_off + rh]
    return arr[sy[:, None], sx[None, :]]


def _place(o: np.ndarray, acc: np.ndarray, plan: Plan, i: int, fill: np.ndarray) -> None:
    """``acc`` into its rectangle of ``o``, the background (rounded as the kernel stores it) around it."""
    y0, x0, rh, rw = (int(v) for v in plan.meta[i, 8:12])
    if (rh, rw) != o.shape[:2]:
        o[...] = store_numpy(fill[: o.shape[2]], o.dtype)
    o[y0 : y0 + rh, x0 : x0 + rw] = acc


def _one(s: Any, o: Any, i: int, plan: Plan, fill: np.ndarray, channels: int) -> None:
    from .resample import _resample_numpy

    arr, dst = s.array, o.array
    pil = pillow_path(plan, i, arr.dtype, channels)
    if pil is not None:
        _place(dst, _resample_pillow(arr, plan, i, *pil), plan, i, fill)
        return
    got = _gather(arr, plan, i)
    if got is not None:
        _place(dst, got, plan, i, fill)
        return
    dst[...] = store_numpy(_resample_numpy(arr, plan, i, o.shape, fill), o.dtype)


# A few threads serve a batch: Pillow and NumPy's large loops free the GIL. Sized by the
# processors this process may run on, so that shards pinned to a core each keep to theirs.
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_MAX_THREADS = 4


def _threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(_MAX_THREADS, cores))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_threads(), thread_name_prefix="gpuimg-resample")
        return _POOL


def resample_cpu(src: Any, out: Any, plan: Plan, fill: np.ndarray, channels: int) -> None:
    """Every image of ``src`` resampled into ``out`` (shapes already set), a batch on a
    few threads. Each image is computed before it is written, so ``out`` may be ``src``
    (same size, in place).

    Example:
        >>> import gpuimg
        >>> from gpuimg.ops.geometry._plan import Spec, make_plan
        >>> img = gpuimg.Image.from_array(np.full((4, 4, 3), 9, np.uint8), device="cpu")
        >>> out = gpuimg.Image.empty(2, 2, device="cpu")
        >>> plan = make_plan("bilinear", True, True, [(4, 4)], [Spec((0, 0, 4, 4), (2, 2), (0, 0, 2, 2))])
        >>> resample_cpu(img, out, plan, np.zeros(4, np.float32), 3); out.array[:, :, 0].tolist()
        [[9, 9], [9, 9]]
    """
    jobs = pairs(src, out)
    work: Callable[[tuple[Any, Any, int]], None] = lambda job: _one(*job, plan, fill, channels)
    if len(jobs) == 1 or _threads() == 1:
        for job in jobs:
            work(job)
        return
    for _ in _pool().map(work, jobs):
        pass
