"""Geometry: resize (every usual filter, antialiasing), fit/cover, crop, flip, rotate, pad, warp.

Every op takes an Image or an ImageBatch and follows ``op(src, ..., out=None, stream=None)``;
sizes are ``(height, width)``; a batch takes one value for all images or one per image
(sizes, crop boxes, angles, matrices). On the GPU each call is ONE kernel launch for the
whole batch: resize-like ops share the fused two-axis resampler in ``_resample.py``;
crop, flip, rotate90 and pad are one integer index-map kernel; rotate and warp_affine
one affine kernel. ``out=src`` works where the shape allows (the source is then read from
a workspace copy).

Example:
    >>> import numpy as np, gpuimg
    >>> from gpuimg.ops.geometry import resize, flip
    >>> img = gpuimg.Image.from_array(np.zeros((300, 400, 3), np.uint8), device="cpu")
    >>> resize(img, (150, 200)).shape
    (150, 200, 3)
    >>> flip(img, horizontal=True).shape
    (300, 400, 3)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from ..errors import check_choice
from ..image import CHANNELS, DTYPES, Image, ImageBatch
from .registry import register_op
from ._engine.args import Source, check_border, check_range, check_src, per_sample, uniform_channels
from ._engine.batch import BLOCK, batch_view, grid_for, kernel_args, launch, pairs, prepare_out, readable_source, same_memory, span_bytes
from ._engine.kernels import PRELUDE as CUDA_PRELUDE, border_index, compiled as raw_kernel, current_config, dtype_entries, dtype_suffix, store_numpy
from ._engine.params import Blob, pack, upload, upload_blob
from ._resample import METHODS, Spec, cached_plan, check_method, resample

__all__ = [
    "resize",
    "resize_shorter",
    "fit",
    "crop",
    "center_crop",
    "flip",
    "rotate90",
    "rotate",
    "pad",
    "warp_affine",
    "METHODS",
]

_DTYPES = tuple(d.name for d in DTYPES)
_CHANNELS = CHANNELS
PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")
WARP_METHODS = ("nearest", "bilinear")


# ============================================================================ helpers
_DTYPE_SET = frozenset(np.dtype(d) for d in _DTYPES)


def _check(src: Source) -> int:
    """Validate src; the channel count a kernel launch dispatches on."""
    if isinstance(src, Image) and src.dtype in _DTYPE_SET and src.channels in _CHANNELS:
        return src.channels  # the common case, without check_src's list building
    check_src(src, channels=_CHANNELS, dtypes=_DTYPES)
    return uniform_channels(src)


def _shapes(src: Source) -> list[tuple[int, int, int]]:
    return src.shapes if isinstance(src, ImageBatch) else [src.shape]


def _is_size(size: Any) -> bool:
    return isinstance(size, tuple | list) and len(size) == 2 and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1 for v in size)


def _sizes(size: Any, count: int, name: str = "size") -> list[tuple[int, int]]:
    """(height, width) per image from one pair or a list of pairs; ValueError otherwise."""
    if _is_size(size):  # the common case, without NumPy's overhead
        return [(int(size[0]), int(size[1]))] * count
    arr = np.asarray(size)
    if arr.ndim == 1:
        arr = np.broadcast_to(arr, (count, arr.shape[0]))
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] != count:
        raise ValueError(f"{name} must be (height, width) or one (height, width) per image ({count}), got {size!r}")
    if not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1):
        raise ValueError(f"{name} must hold positive ints (height, width), got {size!r}")
    return [(int(h), int(w)) for h, w in arr]


def _result(src: Source, out: Source | None, shapes: list[tuple[int, int, int]]) -> Source:
    """``out`` with the result's shapes; out=src is refused when the shape would change."""
    if out is not None and out is src and shapes != _shapes(src):
        raise ValueError(f"out=src (in place) needs the same shape; this result has shapes {shapes[:4]}")
    return prepare_out(src, out, shapes if isinstance(src, ImageBatch) else shapes[0])


def _fill(value: Any, name: str = "fill") -> np.ndarray:
    """A scalar or per-channel background as 4 float32 values (cached: called per op call)."""
    key = value if isinstance(value, int | float) else tuple(np.asarray(value, dtype=np.float64).reshape(-1).tolist())
    return _fill_cached(key, name)


@functools.lru_cache(maxsize=64)
def _fill_cached(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size not in (1, 3, 4) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a number or 3/4 channel values, got {value!r}")
    out = np.zeros(4, np.float32)
    out[:] = arr[0] if arr.size == 1 else 0
    out[: arr.size] = arr
    if arr.size == 3:
        out[3] = 255.0  # an RGB colour on RGBA images is opaque
    return out


# ============================================================================ resize family
def _run_resample(src: Source, out: Source | None, key: Any, geometry_fn: Callable[[], tuple[list, list]],
                  shapes: list[tuple[int, int, int]], sizes: list[tuple[int, int]], channels: int, method: str,
                  antialias: bool, background: Any, stream: Any) -> Source:
    """Resample ``src`` (checked: ``shapes``, ``channels``) into ``sizes``.

    ``geometry_fn`` gives (source boxes, destination rects) on a plan-cache miss only.
    """

    def specs() -> list[Spec]:
        boxes, rects = geometry_fn()
        return [Spec(tuple(map(float, b)), s, r) for b, s, r in zip(boxes, sizes, rects)]

    plan = cached_plan((key, tuple(shapes), tuple(sizes)), src, method, antialias, specs)
    out = _result(src, out, [(h, w, c) for (h, w), (_, _, c) in zip(sizes, shapes)])
    # Same size in place: the GPU reads a workspace copy (the CPU path computes, then writes).
    base = readable_source(src, out, stream).base if out is src and src.device == "cuda" else None
    return resample(src, out, plan, _fill(background, "background"), channels, stream, base)


@register_op
def resize(
    src: Source,
    size: tuple[int, int] | Sequence[tuple[int, int]],
    method: str = "bilinear",
    antialias: bool = True,
    *, out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Resize to ``size`` = (height, width) (or one size per image of a batch).

    ``method``: "nearest", "bilinear", "bicubic", "area", "lanczos"; pixel centres at
    half-pixel. ``antialias=True`` widens the filter when shrinking, exactly as Pillow's
    ``Image.resize`` (BILINEAR/BICUBIC/LANCZOS); ``antialias=False`` is ``cv2.resize``
    (INTER_LINEAR/INTER_CUBIC); "nearest" and "area" are OpenCV's INTER_NEAREST_EXACT and
    INTER_AREA either way. One launch for a whole batch; no intermediate image.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((480, 640, 3), np.uint8), device="cpu")
        >>> resize(img, (240, 320), method="area").shape
        (240, 320, 3)
    """
    check_method(method)
    channels = _check(src)
    shapes = _shapes(src)
    sizes = _sizes(size, len(shapes))

    def geometry_fn() -> tuple[list, list]:
        return [(0, 0, h, w) for h, w, _ in shapes], [(0, 0, h, w) for h, w in sizes]

    return _run_resample(src, out, "resize", geometry_fn, shapes, sizes, channels, method, antialias, 0, stream)


def _shorter_size(h: int, w: int, size: int, max_size: int | None) -> tuple[int, int]:
    """torchvision's rule: the shorter side becomes ``size``, the longer int(size * long / short)."""
    short, long = (h, w) if h <= w else (w, h)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if h <= w else (new_long, new_short)


@register_op
def resize_shorter(
    src: Source,
    size: int | Sequence[int],
    method: str = "bilinear",
    antialias: bool = True,
    max_size: int | None = None,
    *, out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Resize keeping the aspect ratio so the shorter side is ``size`` (torchvision's rule).

    The longer side is ``int(size * long / short)``, as ``torchvision.transforms.v2.Resize(size)``.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((400, 600, 3), np.uint8), device="cpu")
        >>> resize_shorter(img, 256).shape
        (256, 384, 3)
    """
    shapes = _shapes(src) if isinstance(src, Image | ImageBatch) else []
    targets = per_sample(size, len(shapes) or 1, "size", np.int64)
    if np.any(targets < 1):
        raise ValueError(f"size must be a positive int (or one per image), got {size!r}")
    sizes = [_shorter_size(h, w, int(t), max_size) for (h, w, _), t in zip(shapes, targets)]
    return resize(src, sizes if isinstance(src, ImageBatch) else sizes[0], method, antialias, out=out, stream=stream)


FIT_MODES = ("contain", "cover")


def _fit_geometry(h: int, w: int, th: int, tw: int, mode: str) -> tuple[tuple, tuple]:
    """(source box, destination rect) that fit (h, w) into (th, tw) without a 1-pixel gap.

    contain: the scaled image's size is rounded, and the side that limits the scale is
    set to the container's exactly (a truncated product would leave a gap). cover: the
    source box of the container's aspect ratio is cut from the centre, so the output is
    filled edge to edge by construction.
    """
    if mode == "contain":
        if th * w <= tw * h:  # height limits: full height
            rh, rw = th, min(tw, max(1, round(w * th / h)))
        else:
            rh, rw = min(th, max(1, round(h * tw / w))), tw
        return (0, 0, h, w), ((th - rh) // 2, (tw - rw) // 2, rh, rw)
    scale = max(th / h, tw / w)
    bh, bw = min(h, th / scale), min(w, tw / scale)
    return ((h - bh) / 2, (w - bw) / 2, bh, bw), (0, 0, th, tw)


@register_op
def fit(
    src: Source,
    size: tuple[int, int] | Sequence[tuple[int, int]],
    mode: str = "contain",
    background: Any = 0,
    method: str = "bilinear",
    antialias: bool = True,
    *, out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Scale into a (height, width) container and centre it: "contain" (letterbox) or "cover".

    "contain" shows the whole image with ``background`` around it; "cover" fills the
    container and crops the overflow. Either way there is no one-pixel gap from
    truncation (see :func:`_fit_geometry`). Resampling and background fill: one launch.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((300, 451, 3), 200, np.uint8), device="cpu")
        >>> r = fit(img, (224, 224), "contain", background=0)
        >>> r.shape, int(r.array[0, 112, 0]), int(r.array[112, 0, 0])
        ((224, 224, 3), 0, 200)
    """
    check_choice(mode, "mode", FIT_MODES, "a fit mode")
    check_method(method)
    channels = _check(src)
    shapes = _shapes(src)
    sizes = _sizes(size, len(shapes))
    def geometry_fn() -> tuple[list, list]:
        geo = [_fit_geometry(h, w, th, tw, mode) for (h, w, _), (th, tw) in zip(shapes, sizes)]
        return [g[0] for g in geo], [g[1] for g in geo]

    return _run_resample(src, out, ("fit", mode), geometry_fn, shapes, sizes, channels, method, antialias,
                         background, stream)


# ============================================================================ index-map kernel
# out(y, x) = src(a*y + b*x + c, d*y + e*x + f), each coordinate through the border map
# (constant: the fill). One kernel for crop, flip, rotate90 and pad.
_REMAP_SOURCE = CUDA_PRELUDE + r"""
template <typename T, int C>
__device__ void remap(const void* src, const long long* tab, void* dst, const long long* otab,
                      const int* coef, int border, const float* fill) {
    int b = blockIdx.z; Slot s = slot(tab, b); Slot so = slot(otab, b);
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= so.width || y >= so.height) return;
    const int* k = coef + 6 * b;
    int sy = map_border(k[0] * y + k[1] * x + k[2], (int)s.height, border);
    int sx = map_border(k[3] * y + k[4] * x + k[5], (int)s.width, border);
    T* q = row_ptr<T>(dst, so, y) + (long long)x * C;
    if (sy < 0 || sx < 0) {
        #pragma unroll
        for (int c = 0; c < C; ++c) store(q + c, fill[c]);
        return;
    }
    const T* p = row_ptr<T>(src, s, sy) + (long long)sx * C;
    #pragma unroll
    for (int c = 0; c < C; ++c) q[c] = p[c];
}

// Affine warp: (sx, sy) = inverse matrix * (x, y); nearest or bilinear; taps outside the
// image read the fill (cv2.warpAffine with BORDER_CONSTANT). Coordinates go through the
// same fixed point as OpenCV's (1/1024, then 1/32 pixel for bilinear) so results agree.
__device__ __forceinline__ long long fixed_coord(const double* m, int x, int y, int round_delta) {
    return llrint((m[1] * y + m[2]) * 1024.0) + round_delta + llrint(m[0] * x * 1024.0);
}
template <typename T, int C>
__device__ void warp(const void* src, const long long* tab, void* dst, const long long* otab,
                     const double* inv, int bilinear, const float* fill) {
    int b = blockIdx.z; Slot s = slot(tab, b); Slot so = slot(otab, b);
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= so.width || y >= so.height) return;
    const double* m = inv + 6 * b;
    T* q = row_ptr<T>(dst, so, y) + (long long)x * C;
    int W = (int)s.width, H = (int)s.height;
    float acc[C];
    if (!bilinear) {
        int ix = (int)(fixed_coord(m, x, y, 512) >> 10), iy = (int)(fixed_coord(m + 3, x, y, 512) >> 10);
        bool in = ix >= 0 && iy >= 0 && ix < W && iy < H;
        const T* p = in ? row_ptr<T>(src, s, iy) + (long long)ix * C : (const T*)0;
        #pragma unroll
        for (int c = 0; c < C; ++c) acc[c] = in ? (float)p[c] : fill[c];
    } else {
        long long X = fixed_coord(m, x, y, 16) >> 5, Y = fixed_coord(m + 3, x, y, 16) >> 5;
        int x0 = (int)(X >> 5), y0 = (int)(Y >> 5);
        float ax = (float)(X & 31) / 32.f, ay = (float)(Y & 31) / 32.f;
        #pragma unroll
        for (int c = 0; c < C; ++c) acc[c] = 0.f;
        for (int j = 0; j < 2; ++j) {
            int yy = y0 + j; float wy = j ? ay : 1.f - ay;
            for (int i = 0; i < 2; ++i) {
                int xx = x0 + i; float w = wy * (i ? ax : 1.f - ax);
                bool in = xx >= 0 && yy >= 0 && xx < W && yy < H;
                const T* p = in ? row_ptr<T>(src, s, yy) + (long long)xx * C : (const T*)0;
                #pragma unroll
                for (int c = 0; c < C; ++c) acc[c] += w * (in ? (float)p[c] : fill[c]);
            }
        }
    }
    #pragma unroll
    for (int c = 0; c < C; ++c) store(q + c, acc[c]);
}
"""


@functools.lru_cache(maxsize=1)
def _source() -> str:
    kinds = {
        "remap": ("const int* coef, int border, const float* fill", "coef, border, fill"),
        "warp": ("const double* inv, int bilinear, const float* fill", "inv, bilinear, fill"),
    }
    head = "const void* src, const long long* tab, void* dst, const long long* otab, "
    entries = [dtype_entries(name, name, head + sig, f"src, tab, dst, otab, {args}") for name, (sig, args) in kinds.items()]
    return _REMAP_SOURCE + "\n".join(entries)


def _remap_numpy(arr: np.ndarray, coef: np.ndarray, out_hw: tuple[int, int], border: str, fill: np.ndarray) -> np.ndarray:
    h, w = out_hw
    yy, xx = np.mgrid[0:h, 0:w]
    sy = border_index(coef[0] * yy + coef[1] * xx + coef[2], arr.shape[0], border)
    sx = border_index(coef[3] * yy + coef[4] * xx + coef[5], arr.shape[1], border)
    result = arr[np.maximum(sy, 0), np.maximum(sx, 0)]
    outside = (sy < 0) | (sx < 0)
    if outside.any():
        result = result.copy()
        result[outside] = store_numpy(fill[: arr.shape[2]], arr.dtype)
    return result


def _remap(src: Source, out: Source | None, coefs: list[tuple[int, ...]], sizes: list[tuple[int, int]],
           border: str = "constant", fill: Any = 0, stream: Any = None) -> Source:
    """Run the index-map kernel: one (a, b, c, d, e, f) row and output size per image."""
    channels = _check(src)
    code = check_border(border, "mode")
    fill4 = _fill(fill, "value")
    out = _result(src, out, [(h, w, c) for (h, w), (_, _, c) in zip(sizes, _shapes(src))])
    coef = np.asarray(coefs, np.int32).reshape(-1, 6)
    if src.device == "cpu":
        for s, o, i in pairs(src, out):
            o.array[...] = _remap_numpy(s.array, coef[i], o.shape[:2], border, fill4)
        return out
    view = readable_source(src, out, stream)
    oview = batch_view(out, stream)
    coef_ptr, fill_ptr = upload_blob("geometry:remap", _remap_blob(coef, fill4), "cuda", stream)
    launch(
        raw_kernel(_source(), f"remap_{dtype_suffix(src.dtype)}"), grid_for(oview, BLOCK), BLOCK + (1,),
        (np.uint64(view.base), view.table, np.uint64(oview.base), oview.table, coef_ptr, np.int32(code), fill_ptr,
         np.int32(channels)),
        stream,
    )
    return out


_REMAP_BLOBS: dict[bytes, Blob] = {}


def _remap_blob(coef: np.ndarray, fill: np.ndarray) -> Blob:
    """Index-map rows and fill in one upload, cached by content (a pipeline repeats them)."""
    key = coef.tobytes() + fill.tobytes()
    blob = _REMAP_BLOBS.get(key)
    if blob is None:
        if len(_REMAP_BLOBS) >= 64:
            _REMAP_BLOBS.clear()
        blob = _REMAP_BLOBS[key] = pack(coef, fill)
    return blob


def _ints(value: Any, count: int, name: str) -> np.ndarray:
    """One int per image from an int or a sequence (ValueError naming ``name`` otherwise)."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return np.full(count, int(value), np.int64)
    arr = per_sample(value, count, name, np.float64)
    if np.any(arr != np.round(arr)):
        raise ValueError(f"{name} must be an int (or one int per image), got {value!r}")
    return arr.astype(np.int64)


@register_op
def crop(src: Source, top: Any, left: Any, height: Any, width: Any, *, out: Source | None = None,
         stream: Any = None) -> Source:
    """The rectangle (top, left, height, width) of each image (ints, or one per image).

    A rectangle outside the image raises ValueError naming the image's bounds.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((300, 400, 3), np.uint8), device="cpu")
        >>> crop(img, 10, 20, 100, 200).shape
        (100, 200, 3)
    """
    _check(src)
    shapes = _shapes(src)
    n = len(shapes)
    t, l, hh, ww = (_ints(v, n, k) for v, k in ((top, "top"), (left, "left"), (height, "height"), (width, "width")))
    for i, (H, W, _) in enumerate(shapes):
        if hh[i] < 1 or ww[i] < 1 or t[i] < 0 or l[i] < 0 or t[i] + hh[i] > H or l[i] + ww[i] > W:
            raise ValueError(
                f"crop (top={t[i]}, left={l[i]}, height={hh[i]}, width={ww[i]}) of image {i} is outside its bounds "
                f"0 <= top, top + height <= {H}, 0 <= left, left + width <= {W} (height, width >= 1)"
            )
    coefs = [(1, 0, int(t[i]), 0, 1, int(l[i])) for i in range(n)]
    return _remap(src, out, coefs, [(int(a), int(b)) for a, b in zip(hh, ww)], stream=stream)


@register_op
def center_crop(src: Source, size: tuple[int, int] | Sequence[tuple[int, int]], *, out: Source | None = None,
                stream: Any = None) -> Source:
    """The centred (height, width) window; top = round((H - h) / 2) as torchvision.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((256, 341, 3), np.uint8), device="cpu")
        >>> center_crop(img, (224, 224)).shape
        (224, 224, 3)
    """
    _check(src)
    shapes = _shapes(src)
    sizes = _sizes(size, len(shapes))
    tops = [int(round((H - h) / 2.0)) for (H, _, _), (h, _) in zip(shapes, sizes)]
    lefts = [int(round((W - w) / 2.0)) for (_, W, _), (_, w) in zip(shapes, sizes)]
    return crop(src, tops, lefts, [s[0] for s in sizes], [s[1] for s in sizes], out=out, stream=stream)


@register_op
def flip(src: Source, horizontal: bool = False, vertical: bool = False, *, out: Source | None = None,
         stream: Any = None) -> Source:
    """Mirror left-right (``horizontal``), top-bottom (``vertical``), or both.

    Example:
        >>> import numpy as np, gpuimg
        >>> a = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
        >>> flip(gpuimg.Image.from_array(a, device="cpu"), horizontal=True).array[0, :, 0].tolist()
        [2, 1, 0]
    """
    _check(src)
    shapes = _shapes(src)
    coefs = [(-1 if vertical else 1, 0, h - 1 if vertical else 0, 0, -1 if horizontal else 1, w - 1 if horizontal else 0)
             for h, w, _ in shapes]
    return _remap(src, out, coefs, [(h, w) for h, w, _ in shapes], stream=stream)


@register_op
def rotate90(src: Source, k: int = 1, *, out: Source | None = None, stream: Any = None) -> Source:
    """Rotate by k * 90 degrees counter-clockwise, as ``numpy.rot90(a, k)``.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((2, 5, 3), np.uint8), device="cpu")
        >>> rotate90(img).shape
        (5, 2, 3)
    """
    if not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an int (quarter turns), got {k!r}")
    k = int(k) % 4
    _check(src)
    shapes = _shapes(src)
    table = {
        0: lambda h, w: ((1, 0, 0, 0, 1, 0), (h, w)),
        1: lambda h, w: ((0, 1, 0, -1, 0, w - 1), (w, h)),
        2: lambda h, w: ((-1, 0, h - 1, 0, -1, w - 1), (h, w)),
        3: lambda h, w: ((0, -1, h - 1, 1, 0, 0), (w, h)),
    }
    geo = [table[k](h, w) for h, w, _ in shapes]
    return _remap(src, out, [g[0] for g in geo], [g[1] for g in geo], stream=stream)


@register_op
def pad(src: Source, top: Any = 0, bottom: Any = 0, left: Any = 0, right: Any = 0, mode: str = "constant",
        value: Any = 0, *, out: Source | None = None, stream: Any = None) -> Source:
    """Add borders: ``mode`` "constant" (``value``), "edge", "reflect" (also "symmetric", "wrap").

    Modes are numpy.pad's: "reflect" mirrors without repeating the edge pixel
    (cv2.BORDER_REFLECT_101), "symmetric" repeats it (cv2.BORDER_REFLECT).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.ones((2, 2, 1), np.uint8), device="cpu")
        >>> pad(img, 1, 1, 2, 2).shape
        (4, 6, 1)
    """
    check_choice(mode, "mode", PAD_MODES, "a pad mode")
    _check(src)
    shapes = _shapes(src)
    n = len(shapes)
    t, b, l, r = (_ints(v, n, k) for v, k in ((top, "top"), (bottom, "bottom"), (left, "left"), (right, "right")))
    if min(t.min(), b.min(), l.min(), r.min()) < 0:
        raise ValueError(f"top, bottom, left and right must be >= 0, got {top!r}, {bottom!r}, {left!r}, {right!r}")
    coefs = [(1, 0, -int(t[i]), 0, 1, -int(l[i])) for i in range(n)]
    sizes = [(h + int(t[i] + b[i]), w + int(l[i] + r[i])) for i, (h, w, _) in enumerate(shapes)]
    return _remap(src, out, coefs, sizes, border=mode, fill=value, stream=stream)


# ============================================================================ affine warp
def _affine_rows(matrix: Any, count: int) -> np.ndarray:
    m = np.asarray(matrix, np.float64)
    if m.shape == (2, 3):
        m = np.broadcast_to(m, (count, 2, 3))
    if m.shape != (count, 2, 3) or not np.all(np.isfinite(m)):
        raise ValueError(f"matrix must be a finite 2x3 affine matrix or one per image ({count}), got shape {m.shape}")
    return m


def _invert(m: np.ndarray) -> np.ndarray:
    """Inverse of each 2x3 forward matrix (dst = M @ [x, y, 1]), as cv2.invertAffineTransform."""
    a, b, c, d, e, f = (m[:, 0, 0], m[:, 0, 1], m[:, 0, 2], m[:, 1, 0], m[:, 1, 1], m[:, 1, 2])
    det = a * e - b * d
    if np.any(det == 0):
        raise ValueError("matrix is singular (determinant 0); an affine warp needs an invertible matrix")
    inv = np.stack([e, -b, b * f - c * e, -d, a, c * d - a * f], axis=1) / det[:, None]
    return inv


def _fixed_coord(m: np.ndarray, xx: np.ndarray, yy: np.ndarray, round_delta: int) -> np.ndarray:
    """OpenCV's warpAffine coordinate in 1/1024 pixel (the kernel's ``fixed_coord``)."""
    return np.rint((m[1] * yy + m[2]) * 1024.0).astype(np.int64) + round_delta + np.rint(m[0] * xx * 1024.0).astype(np.int64)


def _warp_numpy(arr: np.ndarray, inv: np.ndarray, out_hw: tuple[int, int], bilinear: bool, fill: np.ndarray) -> np.ndarray:
    h, w = out_hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    H, W, C = arr.shape
    fillc = fill[:C].astype(np.float32)

    def tap(iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        inside = (ix >= 0) & (iy >= 0) & (ix < W) & (iy < H)
        vals = arr[np.clip(iy, 0, H - 1), np.clip(ix, 0, W - 1)].astype(np.float32)
        return np.where(inside[..., None], vals, fillc)

    if not bilinear:
        return tap(_fixed_coord(inv[3:], xx, yy, 512) >> 10, _fixed_coord(inv, xx, yy, 512) >> 10)
    X, Y = _fixed_coord(inv, xx, yy, 16) >> 5, _fixed_coord(inv[3:], xx, yy, 16) >> 5
    x0, y0 = X >> 5, Y >> 5
    ax = ((X & 31) / np.float32(32)).astype(np.float32)[..., None]
    ay = ((Y & 31) / np.float32(32)).astype(np.float32)[..., None]
    acc = np.zeros((h, w, C), np.float32)
    for j, wy in ((0, 1 - ay), (1, ay)):
        for i, wx in ((0, 1 - ax), (1, ax)):
            acc += (wy * wx) * tap(y0 + j, x0 + i)
    return acc


def _warp(src: Source, inv: np.ndarray, sizes: list[tuple[int, int]], method: str, fill: Any, out: Source | None,
          stream: Any) -> Source:
    check_choice(method, "method", WARP_METHODS, "a warp method")
    channels = _check(src)
    fill4 = _fill(fill)
    out = _result(src, out, [(h, w, c) for (h, w), (_, _, c) in zip(sizes, _shapes(src))])
    bilinear = method == "bilinear"
    if src.device == "cpu":
        for s, o, i in pairs(src, out):
            o.array[...] = store_numpy(_warp_numpy(s.array, inv[i], o.shape[:2], bilinear, fill4), o.dtype)
        return out
    view = readable_source(src, out, stream)
    oview = batch_view(out, stream)
    launch(
        raw_kernel(_source(), f"warp_{dtype_suffix(src.dtype)}"), grid_for(oview, BLOCK), BLOCK + (1,),
        kernel_args(np.uint64(view.base), view.table, np.uint64(oview.base), oview.table,
                    upload("geometry:affine", inv.astype(np.float64), "cuda", stream), int(bilinear),
                    upload("geometry:fill", fill4, "cuda", stream), channels),
        stream,
    )
    return out


@register_op
def warp_affine(src: Source, matrix: Any, size: Any = None, method: str = "bilinear", fill: Any = 0,
                *, out: Source | None = None, stream: Any = None) -> Source:
    """Affine warp with a forward 2x3 ``matrix`` (dst = M @ [x, y, 1]), as ``cv2.warpAffine``.

    ``size``: output (height, width), default the source's; ``method``: "nearest" or
    "bilinear"; pixels mapped from outside the source get ``fill`` (cv2.BORDER_CONSTANT).
    A batch takes one matrix or one per image.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((100, 200, 3), np.uint8), device="cpu")
        >>> warp_affine(img, [[1, 0, 5], [0, 1, -3]]).shape
        (100, 200, 3)
    """
    _check(src)
    shapes = _shapes(src)
    sizes = [(h, w) for h, w, _ in shapes] if size is None else _sizes(size, len(shapes))
    inv = _invert(_affine_rows(matrix, len(shapes)))
    return _warp(src, inv, sizes, method, fill, out, stream)


def _rotation(h: int, w: int, angle: float, expand: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """Forward matrix rotating ``angle`` degrees counter-clockwise about the image centre.

    The same as cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1); with
    ``expand`` the output grows to hold the whole rotated image (Pillow's rule) and the
    matrix moves the centre to the new centre.
    """
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    out_h, out_w = h, w
    if expand:
        # Pillow's rule: the rotated corners about (w/2, h/2), ceil(max) - floor(min) per
        # axis (cos/sin rounded to 15 digits as Pillow does, so 90 degrees is exact)
        c15, s15 = round(cos, 15), round(sin, 15)
        xs = [c15 * (x - w / 2) + s15 * (y - h / 2) + w / 2 for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
        ys = [-s15 * (x - w / 2) + c15 * (y - h / 2) + h / 2 for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
        out_w = math.ceil(max(xs)) - math.floor(min(xs))
        out_h = math.ceil(max(ys)) - math.floor(min(ys))
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    ncx, ncy = (out_w - 1) / 2.0, (out_h - 1) / 2.0
    m = np.array([[cos, sin, 0.0], [-sin, cos, 0.0]])
    m[0, 2] = ncx - (cos * cx + sin * cy)
    m[1, 2] = ncy - (-sin * cx + cos * cy)
    return m, (out_h, out_w)


@register_op
def rotate(src: Source, angle: Any, expand: bool = False, fill: Any = 0, method: str = "bilinear",
           *, out: Source | None = None, stream: Any = None) -> Source:
    """Rotate by ``angle`` degrees counter-clockwise about the centre (one angle or one per image).

    ``expand=False`` keeps the size (corners are cut, uncovered areas get ``fill``);
    ``expand=True`` grows the output to hold the whole image. Equals ``cv2.warpAffine`` with
    ``cv2.getRotationMatrix2D(((w-1)/2, (h-1)/2), angle, 1)``.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((100, 200, 3), np.uint8), device="cpu")
        >>> rotate(img, 90, expand=True).shape
        (200, 100, 3)
    """
    _check(src)
    shapes = _shapes(src)
    angles = per_sample(angle, len(shapes), "angle", np.float64)
    if not np.all(np.isfinite(angles)):
        raise ValueError(f"angle must be finite degrees, got {angle!r}")
    geo = [_rotation(h, w, float(a), expand) for (h, w, _), a in zip(shapes, angles)]
    inv = _invert(np.stack([g[0] for g in geo]))
    return _warp(src, inv, [g[1] for g in geo], method, fill, out, stream)

