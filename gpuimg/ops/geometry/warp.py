"""The index-map kernel (crop/flip/rotate90/pad run on it) and the affine warp: warp_affine, rotate."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ...errors import check_choice
from ..registry import register_op
from .._engine.args import Source, check_border, per_sample
from .._engine.batch import BLOCK, batch_view, grid_for, kernel_args, launch, pairs, readable_source
from .._engine.kernels import PRELUDE as CUDA_PRELUDE, border_index, compiled as raw_kernel, dtype_entries, dtype_suffix, store_numpy
from .._engine.params import Blob, pack, upload, upload_blob
from ._common import _check, _fill, _result, _shapes, _sizes

__all__ = ["warp_affine", "rotate", "WARP_METHODS"]

WARP_METHODS = ("nearest", "bilinear")


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
