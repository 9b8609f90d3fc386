"""The index-map kernel (crop/flip/rotate90/pad run on it) and the affine warp: warp_affine, rotate."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ...errors import ArgumentError, ArgumentTypeError, check_choice
from ..registry import register_op
from .._engine.args import Source, check_border, per_sample
from .._engine.batch import BLOCK, batch_view, grid_for, kernel_args, launch, pairs, readable_source
from .._engine.cache import cache
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

// Affine warp: (sx, sy) = inverse matrix * (x, y, 1) in double precision, as the exact
// coordinate (OpenCV 5's float32 one differs by ~1e-5 pixel; OpenCV 4 rounds it to 1/32
// pixel). Every operation is spelled out (__dmul_rn, __fadd_rn, ...) so that nvcc does not
// contract it into an FMA: the NumPy twin (_warp_numpy) computes the same bits.
//   nearest: rint(s), ties to even (OpenCV 5's cvRound / v_round);
//   bilinear: OpenCV 5's lerps in float32, v0 = p00 + ax (p01 - p00), v1 likewise,
//            v = v0 + ay (v1 - v0), then rounded (saturate_cast).
// Taps outside the image go through the border map; constant reads the fill.
__device__ __forceinline__ double warp_coord(const double* m, int x, int y) {
    double s = __dadd_rn(__dmul_rn(m[0], (double)x), __dadd_rn(__dmul_rn(m[1], (double)y), m[2]));
    return fmin(fmax(s, -1e9), 1e9);  // far outside either way; keeps the int conversion defined
}
__device__ __forceinline__ int nearest_index(double s) { return (int)rint(s); }
__device__ __forceinline__ float warp_lerp(float a, float b, float t) {
    return __fadd_rn(a, __fmul_rn(t, __fsub_rn(b, a)));
}
template <typename T, int C>
__device__ __forceinline__ void warp_tap(const void* src, const Slot& s, int y, int x, int border, const float* fill,
                                         float* v) {
    int yy = map_border(y, (int)s.height, border), xx = map_border(x, (int)s.width, border);
    const T* p = (yy >= 0 && xx >= 0) ? row_ptr<T>(src, s, yy) + (long long)xx * C : (const T*)0;
    #pragma unroll
    for (int c = 0; c < C; ++c) v[c] = p ? (float)p[c] : fill[c];
}
template <typename T, int C>
__device__ void warp(const void* src, const long long* tab, void* dst, const long long* otab,
                     const double* inv, int bilinear, int border, const float* fill) {
    int b = blockIdx.z; Slot s = slot(tab, b); Slot so = slot(otab, b);
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= so.width || y >= so.height) return;
    const double* m = inv + 6 * b;
    T* q = row_ptr<T>(dst, so, y) + (long long)x * C;
    double sx = warp_coord(m, x, y), sy = warp_coord(m + 3, x, y);
    float p00[C];
    if (!bilinear) {
        warp_tap<T, C>(src, s, nearest_index(sy), nearest_index(sx), border, fill, p00);
        #pragma unroll
        for (int c = 0; c < C; ++c) store(q + c, p00[c]);
        return;
    }
    double fx = floor(sx), fy = floor(sy);
    int x0 = (int)fx, y0 = (int)fy;
    float ax = (float)__dsub_rn(sx, fx), ay = (float)__dsub_rn(sy, fy);
    float p01[C], p10[C], p11[C];
    warp_tap<T, C>(src, s, y0, x0, border, fill, p00);
    warp_tap<T, C>(src, s, y0, x0 + 1, border, fill, p01);
    warp_tap<T, C>(src, s, y0 + 1, x0, border, fill, p10);
    warp_tap<T, C>(src, s, y0 + 1, x0 + 1, border, fill, p11);
    #pragma unroll
    for (int c = 0; c < C; ++c) store(q + c, warp_lerp(warp_lerp(p00[c], p01[c], ax), warp_lerp(p10[c], p11[c], ax), ay));
}
"""


@functools.lru_cache(maxsize=1)  # no arguments: one value, nothing to bound
def _source() -> str:
    kinds = {
        "remap": ("const int* coef, int border, const float* fill", "coef, border, fill"),
        "warp": ("const double* inv, int bilinear, int border, const float* fill", "inv, bilinear, border, fill"),
    }
    head = "const void* src, const long long* tab, void* dst, const long long* otab, "
    entries = [dtype_entries(name, name, head + sig, f"src, tab, dst, otab, {args}") for name, (sig, args) in kinds.items()]
    return _REMAP_SOURCE + "\n".join(entries)


def _remap_numpy(arr: np.ndarray, coef: np.ndarray, out_hw: tuple[int, int], border: str, fill: np.ndarray) -> np.ndarray:
    """The index map on the CPU (a copy, never a view: ``out`` may be ``arr``). Crops, flips
    and pads map rows and columns apart: one row index and one column index per output
    line then, and a single gather of the outer product (no per-pixel index grids)."""
    h, w = out_hw
    if coef[1] == 0 and coef[3] == 0:
        sy = border_index(coef[0] * np.arange(h) + coef[2], arr.shape[0], border)
        sx = border_index(coef[4] * np.arange(w) + coef[5], arr.shape[1], border)
        result = arr[np.ix_(np.maximum(sy, 0), np.maximum(sx, 0))]
        rows_out, cols_out = sy < 0, sx < 0
        if rows_out.any() or cols_out.any():
            value = store_numpy(fill[: arr.shape[2]], arr.dtype)
            result[rows_out] = value
            result[:, cols_out] = value
        return result
    yy, xx = np.mgrid[0:h, 0:w]
    sy = border_index(coef[0] * yy + coef[1] * xx + coef[2], arr.shape[0], border)
    sx = border_index(coef[3] * yy + coef[4] * xx + coef[5], arr.shape[1], border)
    result = arr[np.maximum(sy, 0), np.maximum(sx, 0)]
    outside = (sy < 0) | (sx < 0)
    if outside.any():
        result = result.copy()
        result[outside] = store_numpy(fill[: arr.shape[2]], arr.dtype)
    return result


def _fill_arg(value: Any, name: str) -> np.ndarray:
    """_fill, with an ArgumentTypeError naming ``name`` for what is not numbers (a colour name, None)."""
    wrong = ArgumentTypeError(f"{name} must be a number or 3/4 channel values, got {value!r}")
    if isinstance(value, str | bytes):
        raise wrong
    try:
        return _fill(value, name)
    except (TypeError, ValueError) as err:
        if str(err).startswith(name):
            raise
        raise wrong from None


def _remap(src: Source, out: Source | None, coefs: list[tuple[int, ...]], sizes: list[tuple[int, int]],
           border: str = "constant", fill: Any = 0, stream: Any = None, fill_name: str = "value") -> Source:
    """Run the index-map kernel: one (a, b, c, d, e, f) row and output size per image."""
    channels = _check(src)
    code = check_border(border, "mode")
    fill4 = _fill_arg(fill, fill_name)
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


_remap_blobs = cache("remap:blobs", max_items=64)


def _remap_blob(coef: np.ndarray, fill: np.ndarray) -> Blob:
    """Index-map rows and fill in one upload, cached by content (a pipeline repeats them)."""
    return _remap_blobs.get_or_make(coef.tobytes() + fill.tobytes(), lambda: pack(coef, fill))


# ============================================================================ affine warp
def _affine_rows(matrix: Any, count: int) -> np.ndarray:
    try:
        m = np.asarray(matrix, np.float64)
    except (TypeError, ValueError):
        raise ArgumentTypeError(f"matrix must be a 2x3 affine matrix of numbers (or one per image), got {matrix!r}") from None
    if m.shape == (2, 3):
        m = np.broadcast_to(m, (count, 2, 3))
    if m.shape != (count, 2, 3) or not np.all(np.isfinite(m)):
        raise ArgumentError(f"matrix must be a finite 2x3 affine matrix or one per image ({count}), got shape {m.shape}")
    return m


def _invert(m: np.ndarray) -> np.ndarray:
    """Inverse of each 2x3 forward matrix (dst = M @ [x, y, 1]), as cv2.invertAffineTransform."""
    a, b, c, d, e, f = (m[:, 0, 0], m[:, 0, 1], m[:, 0, 2], m[:, 1, 0], m[:, 1, 1], m[:, 1, 2])
    det = a * e - b * d
    if np.any(det == 0):
        raise ArgumentError("matrix is singular (determinant 0); an affine warp needs an invertible matrix")
    inv = np.stack([e, -b, b * f - c * e, -d, a, c * d - a * f], axis=1) / det[:, None]
    return inv


def _warp_coord(m: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """The kernel's ``warp_coord``: m0 x + (m1 y + m2) in float64, clipped to +-1e9."""
    return np.clip(m[0] * xx + (m[1] * yy + m[2]), -1e9, 1e9)


def _nearest_index(s: np.ndarray) -> np.ndarray:
    """The kernel's ``nearest_index``: the nearest pixel, ties to even (cvRound)."""
    return np.rint(s).astype(np.int64)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The kernel's ``warp_lerp`` in float32: a + t (b - a), no fused multiply-add."""
    return a + t * (b - a)


def _warp_numpy(arr: np.ndarray, inv: np.ndarray, out_hw: tuple[int, int], bilinear: bool, border: str,
                fill: np.ndarray) -> np.ndarray:
    """The CPU twin of the ``warp`` kernel (same operations in the same order and precision)."""
    h, w = out_hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    H, W, C = arr.shape
    fillc = fill[:C].astype(np.float32)
    sx, sy = _warp_coord(inv, xx, yy), _warp_coord(inv[3:], xx, yy)

    def tap(iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        iy, ix = border_index(iy, H, border), border_index(ix, W, border)
        vals = arr[np.maximum(iy, 0), np.maximum(ix, 0)].astype(np.float32)
        return np.where(((iy >= 0) & (ix >= 0))[..., None], vals, fillc)

    if not bilinear:
        return tap(_nearest_index(sy), _nearest_index(sx))
    fx, fy = np.floor(sx), np.floor(sy)
    x0, y0 = fx.astype(np.int64), fy.astype(np.int64)
    ax, ay = (sx - fx).astype(np.float32)[..., None], (sy - fy).astype(np.float32)[..., None]
    top = _lerp(tap(y0, x0), tap(y0, x0 + 1), ax)
    bottom = _lerp(tap(y0 + 1, x0), tap(y0 + 1, x0 + 1), ax)
    return _lerp(top, bottom, ay)


def _warp(src: Source, inv: np.ndarray, sizes: list[tuple[int, int]], method: str, border: str, fill: Any,
          out: Source | None, stream: Any) -> Source:
    check_choice(method, "method", WARP_METHODS, "a warp method")
    code = check_border(border, "border")
    channels = _check(src)
    # the fill as the image stores it (OpenCV saturate_casts borderValue to the depth first)
    fill4 = store_numpy(_fill_arg(fill, "fill"), src.dtype).astype(np.float32)
    out = _result(src, out, [(h, w, c) for (h, w), (_, _, c) in zip(sizes, _shapes(src))])
    bilinear = method == "bilinear"
    if src.device == "cpu":
        for s, o, i in pairs(src, out):
            o.array[...] = store_numpy(_warp_numpy(s.array, inv[i], o.shape[:2], bilinear, border, fill4), o.dtype)
        return out
    view = readable_source(src, out, stream)
    oview = batch_view(out, stream)
    launch(
        raw_kernel(_source(), f"warp_{dtype_suffix(src.dtype)}"), grid_for(oview, BLOCK), BLOCK + (1,),
        kernel_args(np.uint64(view.base), view.table, np.uint64(oview.base), oview.table,
                    upload("geometry:affine", inv.astype(np.float64), "cuda", stream), int(bilinear), code,
                    upload("geometry:fill", fill4, "cuda", stream), channels),
        stream,
    )
    return out


_PARITY = """Pixel parity (measured on the photos in assets/, every dtype and channel count):
    source coordinates are exact (float64) and the arithmetic is OpenCV 5's own
    ``cv2.warpAffine`` (5.1): nearest (INTER_NEAREST) takes rint(s), ties to even, as
    OpenCV 5's cvRound; bilinear (INTER_LINEAR) lerps in float32 (p00 + ax (p01 - p00),
    then the rows with ay) and rounds. Against OpenCV 5 with IPP off
    (``cv2.ipp.setUseIPP(False)``) results are identical where its float32 coordinate is
    exact (translations by halves, scales by powers of two, quarter turns) and otherwise
    within 1 level in uint8 and 1e-4 of the range in uint16 (7 levels) and float32 (its
    coordinate is ~1e-5 pixel off, times the local contrast); nearest differs only
    where the exact coordinate is within OpenCV's float32 error (~1e-4 pixel) of a tie.
    OpenCV 5 with IPP on (x86 wheels; constant and replicate borders) rounds nearest ties
    up and bilinear halves up under "edge": up to 1 level and the other pixel at ties.
    OpenCV 4 rounds coordinates to 1/32 pixel: bilinear up to ~6 levels off, nearest
    ties up."""


def _check_expand(expand: Any) -> bool:
    if not isinstance(expand, bool | np.bool_):
        raise ArgumentTypeError(f"expand must be True or False, got {expand!r}")
    return bool(expand)


@register_op
def warp_affine(src: Source, matrix: Any, size: Any = None, method: str = "bilinear", fill: Any = 0,
                border: str = "constant", *, out: Source | None = None, stream: Any = None) -> Source:
    """Affine warp with a forward 2x3 ``matrix`` (dst = M @ [x, y, 1]), as ``cv2.warpAffine``.

    ``size``: output (height, width), default the source's; ``method``: "nearest" or
    "bilinear"; ``border``: how taps outside the source read, "constant" (``fill``;
    cv2.BORDER_CONSTANT), "edge" (BORDER_REPLICATE), "reflect" (BORDER_REFLECT_101),
    "symmetric" (BORDER_REFLECT) or "wrap" (BORDER_WRAP). A batch takes one matrix or one
    per image.

    {parity}

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
    return _warp(src, inv, sizes, method, border, fill, out, stream)


warp_affine.__doc__ = (warp_affine.__doc__ or "").replace("{parity}", _PARITY)

# cos and sin of the quarter turns, exact (math.cos(math.pi / 2) is 6e-17, not 0)
_QUARTER_TURNS = {0.0: (1.0, 0.0), 90.0: (0.0, 1.0), 180.0: (-1.0, 0.0), 270.0: (0.0, -1.0)}


def _rotation(h: int, w: int, angle: float, expand: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """Forward matrix rotating ``angle`` degrees counter-clockwise about the image centre.

    The same as cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1), with exact
    cos/sin at multiples of 90 degrees. With ``expand`` the output size is Pillow's
    (Image.rotate(expand=True)): at 90 and 270 degrees (w, h) swapped and at 0 and 180 the
    same size (Pillow transposes there), otherwise the rotated corners about (w/2, h/2),
    ceil(max) - floor(min) per axis with cos/sin rounded to 15 digits; the matrix moves
    the centre to the new centre ((out - 1) / 2).
    """
    turn = angle % 360.0
    if turn in _QUARTER_TURNS:
        cos, sin = _QUARTER_TURNS[turn]
    else:
        rad = math.radians(angle)
        cos, sin = math.cos(rad), math.sin(rad)
    out_h, out_w = h, w
    if expand and turn in (90.0, 270.0):
        out_h, out_w = w, h
    elif expand and turn not in _QUARTER_TURNS:
        c15, s15 = round(cos, 15), round(sin, 15)
        corners = ((0, 0), (w, 0), (w, h), (0, h))
        xs = [c15 * (x - w / 2) + s15 * (y - h / 2) + w / 2 for x, y in corners]
        ys = [-s15 * (x - w / 2) + c15 * (y - h / 2) + h / 2 for x, y in corners]
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
           border: str = "constant", *, out: Source | None = None, stream: Any = None) -> Source:
    """Rotate by ``angle`` degrees counter-clockwise about the centre (one angle or one per image).

    ``expand=False`` keeps the size (corners are cut, uncovered areas get ``fill``, or the
    ``border`` rule of warp_affine); ``expand=True`` grows the output to hold the whole
    image, with Pillow's size (``Image.rotate(angle, expand=True)``). Equals
    ``cv2.warpAffine`` with ``cv2.getRotationMatrix2D(((w-1)/2, (h-1)/2), angle, 1)``
    (centred on the new size with ``expand``); multiples of 90 degrees are exact: with
    ``expand`` the result is ``numpy.rot90(a, angle // 90)`` (0 levels, either method).

    {parity}

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((101, 200, 3), np.uint8), device="cpu")
        >>> rotate(img, 90, expand=True).shape
        (200, 101, 3)
        >>> rotate(img, 30, expand=True).shape  # PIL.Image.rotate(30, expand=True) on 200x101
        (189, 224, 3)
    """
    _check(src)
    expand = _check_expand(expand)
    shapes = _shapes(src)
    angles = per_sample(angle, len(shapes), "angle", np.float64)
    geo = [_rotation(h, w, float(a), expand) for (h, w, _), a in zip(shapes, angles)]
    inv = _invert(np.stack([g[0] for g in geo]))
    return _warp(src, inv, [g[1] for g in geo], method, border, fill, out, stream)


rotate.__doc__ = (rotate.__doc__ or "").replace("{parity}", _PARITY)
