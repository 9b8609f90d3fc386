"""Resampling weights (the exact OpenCV and Pillow formulas) and the one resize kernel.

Every resize-like op (resize, fit, resize_shorter) is a *plan*: per image, a source box,
an output size and a destination rectangle (pixels outside it get the background).
Per axis the plan holds, for every output coordinate, the first source index and a fixed
number of weights (zeros pad short windows; edge taps are folded so a window never
leaves the image). The kernel applies both axes in one pass: each output pixel sums
``ny`` rows of ``nx`` weighted taps, reading the source once and writing the result once
(no intermediate image, one launch per batch).

Which formulas (so results match the references):
- antialias=False: OpenCV's cv2.resize. "nearest" = INTER_NEAREST_EXACT, "bilinear" =
  INTER_LINEAR, "bicubic" = INTER_CUBIC (a = -0.75), "area" = INTER_AREA; borders
  replicate; weights quantised to 1/2048 as OpenCV's 8-bit path does.
- antialias=True: Pillow's Image.resize ("bilinear" = BILINEAR, "bicubic" = BICUBIC
  (a = -0.5), "lanczos" = LANCZOS (a = 3)): the filter widens by the scale when
  downscaling, windows are clipped to the image and renormalised, and (as Pillow does)
  the horizontal result is rounded to the pixel type before the vertical pass.
  "nearest" and "area" are the OpenCV ones either way; "lanczos" without antialias is
  Pillow's formula with an unwidened filter.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple

import numpy as np

from ..memory import scratch
from ._common import Source, batch_view, launch, raw_kernel
from ._kernels import BLOCK, CUDA_PRELUDE, dtype_suffix, grid_for, pack, pairs, store_numpy, upload, upload_blob

__all__ = ["METHODS", "Spec", "Plan", "check_method", "axis_weights", "cached_plan", "resample"]

METHODS = ("nearest", "bilinear", "bicubic", "area", "lanczos")
SMALL_TAPS = 8  # row windows up to this many taps use the unrolled kernel (2x downscale bilinear: 5)
TWO_PASS = True  # False: always the fused one-pass kernel (else _two_pass_pays decides)
_CV_COEF_SCALE = 2048.0  # INTER_RESIZE_COEF_SCALE of OpenCV's fixed-point 8-bit resize


class Spec(NamedTuple):
    """One image of a plan: source box (y, x, h, w; may be fractional), output size, and
    the rectangle of the output the box lands in (the rest is background)."""

    box: tuple[float, float, float, float]
    out_hw: tuple[int, int]
    rect: tuple[int, int, int, int]


def check_method(method: Any) -> str:
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not a resize method; use one of {METHODS}")
    return method


# ============================================================================ weights
def _pillow_filter(method: str) -> tuple[Any, float]:
    if method == "bilinear":
        return (lambda x: np.maximum(0.0, 1.0 - np.abs(x))), 1.0
    if method == "bicubic":
        a = -0.5

        def cubic(x: np.ndarray) -> np.ndarray:
            x = np.abs(x)
            near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
            far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
            return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))

        return cubic, 2.0

    def lanczos(x: np.ndarray) -> np.ndarray:
        return np.where(np.abs(x) < 3.0, np.sinc(x) * np.sinc(x / 3.0), 0.0)

    return lanczos, 3.0


def _pillow_taps(method: str, widen: bool, in_len: int, out_len: int, start: float, length: float):
    """Pillow's precompute_coeffs (Resample.c): window per output, clipped, normalised."""
    filt, support = _pillow_filter(method)
    scale = length / out_len
    filterscale = max(scale, 1.0) if widen else 1.0
    support *= filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    center = start + (np.arange(out_len) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.trunc(center + support + 0.5), in_len).astype(np.int64) - xmin
    offs = np.arange(ksize)
    w = filt((offs[None, :] + xmin[:, None] - center[:, None] + 0.5) / filterscale)
    w = np.where(offs[None, :] < xmax[:, None], w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total != 0, w / np.where(total == 0, 1, total), 0.0)
    return xmin[:, None] + offs[None, :], w


def _cv_quantise(w: np.ndarray) -> np.ndarray:
    return np.rint(w * _CV_COEF_SCALE) / _CV_COEF_SCALE


def _cv_taps(method: str, in_len: int, out_len: int, start: float, length: float, area_overlap: bool):
    """OpenCV's resize coefficients (imgproc/resize.cpp), as (indices, weights) per output."""
    scale = length / out_len
    o = np.arange(out_len, dtype=np.float64)
    if method == "nearest":
        # The source pixel whose area holds the output centre (INTER_NEAREST_EXACT's rule;
        # OpenCV's 16-bit fixed point picks the lower pixel at some exact ties: < 1 % of rows)
        idx = np.floor(start + (o + 0.5) * scale).astype(np.int64)
        return idx[:, None], np.ones((out_len, 1))
    if method == "area" and area_overlap:
        lo = start + o * scale
        first = np.floor(lo).astype(np.int64)
        k = int(math.ceil(scale)) + 1
        idx = first[:, None] + np.arange(k)[None, :]
        overlap = np.minimum(idx + 1, (lo + scale)[:, None]) - np.maximum(idx, lo[:, None])
        return idx, np.maximum(overlap, 0.0) / scale
    if method == "area":  # OpenCV's INTER_AREA when a side grows: linear with area weights
        sx = np.floor(start + o * scale).astype(np.int64)
        f = (o + 1) - (sx + 1 - start) / scale
        f = np.where(f <= 0, 0.0, f - np.floor(f))
    else:
        fx = start + (o + 0.5) * scale - 0.5
        sx = np.floor(fx).astype(np.int64)
        f = fx - sx
    if method in ("bilinear", "area"):
        f = np.where(sx < 0, 0.0, f)
        sx = np.maximum(sx, 0)
        f = np.where(sx >= in_len - 1, 0.0, f)
        sx = np.minimum(sx, in_len - 1)
        w = _cv_quantise(np.stack([1.0 - f, f], axis=1))
        return sx[:, None] + np.arange(2)[None, :], w
    a = -0.75  # INTER_CUBIC
    x = f
    w0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    w1 = ((a + 2) * x - (a + 3)) * x * x + 1
    w2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    w = _cv_quantise(np.stack([w0, w1, w2, 1.0 - w0 - w1 - w2], axis=1))
    return sx[:, None] + np.arange(-1, 3)[None, :], w


def _fold(idx: np.ndarray, w: np.ndarray, in_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, weights[out, n]) with start + n <= in_len: clamped taps merge into edge taps."""
    idx = np.clip(idx, 0, in_len - 1)
    n = min(idx.shape[1], in_len)
    start = np.minimum(idx[:, 0], in_len - n)
    rel = idx - start[:, None]
    keep = w != 0
    rel = np.where(keep, rel, 0)
    n = max(n, int(rel.max()) + 1)
    dense = np.zeros((idx.shape[0], n))
    rows = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)
    np.add.at(dense, (rows[keep], rel[keep]), w[keep])
    return start.astype(np.int32), dense


@functools.lru_cache(maxsize=512)
def axis_weights(method: str, antialias: bool, in_len: int, out_len: int, start: float = 0.0,
                 length: float | None = None, area_overlap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per output coordinate: first source index and the weights (out_len, n), for one axis.

    Example:
        >>> start, w = axis_weights("bilinear", False, 4, 2)
        >>> start.tolist(), w.tolist()
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]])
    """
    length = float(in_len if length is None else length)
    if method in ("bilinear", "bicubic") and antialias or method == "lanczos":
        idx, w = _pillow_taps(method, antialias, in_len, out_len, float(start), length)
    else:
        idx, w = _cv_taps(method, in_len, out_len, float(start), length, area_overlap)
    return _fold(idx, w, in_len)


# ============================================================================ plan
class Plan(NamedTuple):
    """Packed parameters of one resample call: int32 rows, int32 starts, float32 weights."""

    meta: np.ndarray
    starts: np.ndarray
    weights: np.ndarray


# xs_off, xw_off, nx, ys_off, yw_off, ny, rounding (0 none, 1 rows first, 2 columns first), pad, y0, x0, rh, rw
META_COLUMNS = 12


def make_plan(method: str, antialias: bool, round_rows: bool, shapes: Sequence[tuple[int, int]],
              specs: Sequence[Spec]) -> Plan:
    """Pack the weights of every image of a call into three arrays."""
    meta = np.zeros((len(specs), META_COLUMNS), np.int32)
    starts: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    n_starts = n_weights = 0
    for i, ((in_h, in_w), spec) in enumerate(zip(shapes, specs)):
        by, bx, bh, bw = spec.box
        y0, x0, rh, rw = spec.rect
        overlap = rh <= bh and rw <= bw  # OpenCV: area averaging only when no side grows
        row = []
        for in_len, out_len, start, length in ((in_w, rw, bx, bw), (in_h, rh, by, bh)):
            s, w = axis_weights(method, antialias, in_len, out_len, start, length, overlap)
            row += [n_starts, n_weights, w.shape[1]]
            starts.append(s)
            weights.append(w.reshape(-1).astype(np.float32))
            n_starts += len(s)
            n_weights += w.size
        # Pillow runs the vertical pass first when width grows and height shrinks
        order = 0 if not round_rows else (2 if rw > bw and rh < bh else 1)
        meta[i] = (*row, order, 0, y0, x0, rh, rw)
    return Plan(meta, np.concatenate(starts), np.concatenate(weights))


_PLANS: dict[Any, Plan] = {}
_MAX_PLANS = 64  # distinct (shapes, sizes, method) combinations kept; a pipeline repeats a few


def cached_plan(key: Any, src: Source, method: str, antialias: bool, specs_fn: Callable[[], Sequence[Spec]]) -> Plan:
    """The plan for ``key`` (which must determine the specs), built on first use only.

    Steady-state calls (same shapes and sizes as before) do no per-image Python work: the
    key is a few tuples, and the device copies of a cached plan are re-used by ``upload``.
    """
    full_key = (key, method, bool(antialias), src.dtype.kind)
    plan = _PLANS.get(full_key)
    if plan is None:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        shapes = [(s[0], s[1]) for s in (src.shapes if hasattr(src, "images") else [src.shape])]
        round_rows = antialias and method in ("bilinear", "bicubic", "lanczos") and src.dtype.kind != "f"
        plan = _PLANS[full_key] = make_plan(method, bool(antialias), bool(round_rows), shapes, specs_fn())
    return plan


# ============================================================================ NumPy reference
def _resample_numpy(arr: np.ndarray, plan: Plan, i: int, out_shape: tuple[int, int, int], fill: np.ndarray) -> np.ndarray:
    """The kernel's arithmetic in float32: rows first (rounded if asked), then columns."""
    xs_off, xw_off, nx, ys_off, yw_off, ny, round_rows, _, y0, x0, rh, rw = (int(v) for v in plan.meta[i])
    sx = plan.starts[xs_off : xs_off + rw]
    wx = plan.weights[xw_off : xw_off + rw * nx].reshape(rw, nx)
    sy = plan.starts[ys_off : ys_off + rh]
    wy = plan.weights[yw_off : yw_off + rh * ny].reshape(rh, ny)
    src = arr.astype(np.float32)
    if round_rows == 2:  # vertical first: the same arithmetic on the transposed image
        cols = np.zeros((rh, arr.shape[1], arr.shape[2]), np.float32)
        for k in range(ny):
            cols += wy[:, k][:, None, None] * src[sy + k]
        info = np.iinfo(arr.dtype)
        cols = np.clip(np.rint(cols), info.min, info.max)
        acc = np.zeros((rh, rw, arr.shape[2]), np.float32)
        for k in range(nx):
            acc += wx[:, k][None, :, None] * cols[:, sx + k]
        return _place(acc, out_shape, (y0, x0, rh, rw), fill)
    rows = np.zeros((arr.shape[0], rw, arr.shape[2]), np.float32)
    for k in range(nx):
        rows += wx[:, k][None, :, None] * src[:, sx + k]
    if round_rows:
        info = np.iinfo(arr.dtype)
        rows = np.clip(np.rint(rows), info.min, info.max)
    acc = np.zeros((rh, rw, arr.shape[2]), np.float32)
    for k in range(ny):
        acc += wy[:, k][:, None, None] * rows[sy + k]
    return _place(acc, out_shape, (y0, x0, rh, rw), fill)


def _place(acc: np.ndarray, out_shape: tuple[int, int, int], rect: tuple[int, int, int, int], fill: np.ndarray) -> np.ndarray:
    """The output image: background everywhere, ``acc`` in the rectangle."""
    y0, x0, rh, rw = rect
    result = np.empty(out_shape, np.float32)
    result[...] = fill[: out_shape[2]]
    result[y0 : y0 + rh, x0 : x0 + rw] = acc
    return result


# ============================================================================ CUDA
_SOURCE = CUDA_PRELUDE + r"""
template <typename T> __device__ __forceinline__ float round_row(float v) { return v; }
template <> __device__ __forceinline__ float round_row<u8>(float v) { return fminf(fmaxf(rintf(v), 0.f), 255.f); }
template <> __device__ __forceinline__ float round_row<u16>(float v) { return fminf(fmaxf(rintf(v), 0.f), 65535.f); }

// One output pixel per thread: ny source rows x nx taps, both axes' weights from the plan.
template <typename T, int C, int MAXT>
__device__ void resample(const void* src, const long long* tab, void* dst, const long long* otab,
                         const int* meta, const int* starts, const float* weights, const float* fill) {
    int b = blockIdx.z; Slot s = slot(tab, b); Slot so = slot(otab, b);
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= so.width || y >= so.height) return;
    const int* m = meta + 12 * b;
    T* q = row_ptr<T>(dst, so, y) + (long long)x * C;
    int xr = x - m[9], yr = y - m[8];
    if (xr < 0 || yr < 0 || xr >= m[11] || yr >= m[10]) {
        #pragma unroll
        for (int c = 0; c < C; ++c) store(q + c, fill[c]);
        return;
    }
    int nx = m[2], ny = m[5];
    bool rounding = m[6] == 1;
    int sx = starts[m[0] + xr], sy = starts[m[3] + yr];
    const float* wx = weights + m[1] + (long long)xr * nx;
    const float* wy = weights + m[4] + (long long)yr * ny;
    float acc[C];
    #pragma unroll
    for (int c = 0; c < C; ++c) acc[c] = 0.f;
    if (m[6] == 2) {  // Pillow's vertical-first order: columns rounded, then the row
        for (int kx = 0; kx < nx; ++kx) {
            float wxk = wx[kx];
            if (wxk == 0.f) continue;
            float r[C];
            #pragma unroll
            for (int c = 0; c < C; ++c) r[c] = 0.f;
            for (int ky = 0; ky < ny; ++ky) {
                const T* p = row_ptr<T>(src, s, sy + ky) + (long long)(sx + kx) * C;
                float wyk = wy[ky];
                #pragma unroll
                for (int c = 0; c < C; ++c) r[c] += wyk * to_f(p[c]);
            }
            #pragma unroll
            for (int c = 0; c < C; ++c) acc[c] += wxk * round_row<T>(r[c]);
        }
        #pragma unroll
        for (int c = 0; c < C; ++c) store(q + c, acc[c]);
        return;
    }
    // MAXT > 0 (every row window has at most MAXT taps): the row weights stay in registers
    // and the tap loop unrolls, instead of re-reading nx weights for each of the ny rows.
    float wxr[MAXT > 0 ? MAXT : 1];
    if constexpr (MAXT > 0) {
        #pragma unroll
        for (int kx = 0; kx < MAXT; ++kx) wxr[kx] = kx < nx ? wx[kx] : 0.f;
    }
    for (int ky = 0; ky < ny; ++ky) {
        float wyk = wy[ky];
        if (wyk == 0.f) continue;  // padded taps: no memory traffic
        const T* p = row_ptr<T>(src, s, sy + ky) + (long long)sx * C;
        float r[C];
        #pragma unroll
        for (int c = 0; c < C; ++c) r[c] = 0.f;
        if constexpr (MAXT > 0) {
            #pragma unroll
            for (int kx = 0; kx < MAXT; ++kx) {
                if (kx < nx) {
                    #pragma unroll
                    for (int c = 0; c < C; ++c) r[c] += wxr[kx] * to_f(p[kx * C + c]);
                }
            }
        } else {
            for (int kx = 0; kx < nx; ++kx) {
                float wxk = wx[kx];
                #pragma unroll
                for (int c = 0; c < C; ++c) r[c] += wxk * to_f(p[kx * C + c]);
            }
        }
        #pragma unroll
        for (int c = 0; c < C; ++c) acc[c] += wyk * (rounding ? round_row<T>(r[c]) : r[c]);
    }
    #pragma unroll
    for (int c = 0; c < C; ++c) store(q + c, acc[c]);
}

// Two-pass form for large windows (cost nx + ny taps per pixel instead of nx * ny): one
// axis per launch, per-output start and weights from the same plan. Pass 1 writes a float
// intermediate (rows-first: in_h x rw; columns-first, Pillow's order: rh x in_w), rounded to
// the pixel type when the plan asks (as Pillow's 8-bit intermediate); pass 2 writes the
// output, its rectangle and background. The arithmetic equals the fused kernel's.
template <typename TI, typename TO, typename TR, int C>
__device__ void resample_pass(const void* in, const long long* itab, void* out, const long long* otab,
                              const int* meta, const int* starts, const float* weights, const float* fill,
                              int pass) {
    int b = blockIdx.z; Slot si = slot(itab, b); Slot so = slot(otab, b);
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= so.width || y >= so.height) return;
    const int* m = meta + 12 * b;
    TO* q = row_ptr<TO>(out, so, y) + (long long)x * C;
    int ox = x, oy = y;
    if (pass == 2) {
        ox = x - m[9]; oy = y - m[8];
        if (ox < 0 || oy < 0 || ox >= m[11] || oy >= m[10]) {
            #pragma unroll
            for (int c = 0; c < C; ++c) store(q + c, fill[c]);
            return;
        }
    }
    int first = m[6] == 2 ? 1 : 0;                  // columns first in Pillow's mixed case
    int axis = pass == 1 ? first : 1 - first;
    float acc[C];
    #pragma unroll
    for (int c = 0; c < C; ++c) acc[c] = 0.f;
    if (axis == 0) {
        int n = m[2], s0 = starts[m[0] + ox];
        const float* w = weights + m[1] + (long long)ox * n;
        const TI* p = row_ptr<TI>(in, si, oy) + (long long)s0 * C;
        for (int k = 0; k < n; ++k) {
            float wk = w[k];
            #pragma unroll
            for (int c = 0; c < C; ++c) acc[c] += wk * to_f(p[k * C + c]);
        }
    } else {
        int n = m[5], s0 = starts[m[3] + oy];
        const float* w = weights + m[4] + (long long)oy * n;
        for (int k = 0; k < n; ++k) {
            float wk = w[k];
            if (wk == 0.f) continue;
            const TI* p = row_ptr<TI>(in, si, s0 + k) + (long long)ox * C;
            #pragma unroll
            for (int c = 0; c < C; ++c) acc[c] += wk * to_f(p[c]);
        }
    }
    if (pass == 1 && m[6] != 0) {
        #pragma unroll
        for (int c = 0; c < C; ++c) acc[c] = round_row<TR>(acc[c]);
    }
    #pragma unroll
    for (int c = 0; c < C; ++c) store(q + c, acc[c]);
}
"""


@functools.lru_cache(maxsize=1)
def _module_source() -> str:
    entries = []
    sig = ("const void* src, const long long* tab, void* dst, const long long* otab, const int* meta, "
           "const int* starts, const float* weights, const float* fill, int C")
    args = "src, tab, dst, otab, meta, starts, weights, fill"
    for suf, t in (("u8", "u8"), ("u16", "u16"), ("f32", "float")):
        for maxt, name in ((0, "resample"), (SMALL_TAPS, "resample_small")):
            body = (f"switch (C) {{ case 1: resample<{t}, 1, {maxt}>({args}); break; "
                    f"case 3: resample<{t}, 3, {maxt}>({args}); break; default: resample<{t}, 4, {maxt}>({args}); }}")
            entries.append(f'extern "C" __global__ void {name}_{suf}({sig}) {{ {body} }}')
        psig = ("const void* in, const long long* itab, void* out, const long long* otab, const int* meta, "
                "const int* starts, const float* weights, const float* fill, int pass, int C")
        pargs = "in, itab, out, otab, meta, starts, weights, fill, pass"
        for pas, (ti, to) in ((1, (t, "float")), (2, ("float", t))):
            body = (f"switch (C) {{ case 1: resample_pass<{ti}, {to}, {t}, 1>({pargs}); break; "
                    f"case 3: resample_pass<{ti}, {to}, {t}, 3>({pargs}); break; "
                    f"default: resample_pass<{ti}, {to}, {t}, 4>({pargs}); }}")
            entries.append(f'extern "C" __global__ void resample_pass{pas}_{suf}({psig}) {{ {body} }}')
    return _SOURCE + "\n".join(entries)


def resample(src: Source, out: Source, plan: Plan, fill: np.ndarray, channels: int, stream: Any = None,
             read_base: int | None = None) -> Source:
    """Run a plan: ``out`` already has its shapes; ``fill`` is 4 floats (the background).

    ``read_base``: where the GPU reads the source pixels (a workspace copy when in place).
    """
    if src.device == "cpu":
        for s, o, i in pairs(src, out):
            o.array[...] = store_numpy(_resample_numpy(s.array, plan, i, o.shape, fill), o.dtype)
        return out
    view, oview = batch_view(src, stream), batch_view(out, stream)
    if read_base is not None:
        view = view._replace(base=read_base)
    blob, small, two_pass = _blob(plan, fill, src)
    meta, starts, weights, fill_dev = upload_blob("resample:params", blob, "cuda", stream)
    if two_pass and TWO_PASS:
        _two_passes(src, out, view, oview, plan, (meta, starts, weights, fill_dev), channels, stream)
        return out
    name = "resample_small" if small else "resample"
    kernel = raw_kernel(_module_source(), f"{name}_{dtype_suffix(src.dtype)}")
    launch(
        kernel, grid_for(oview, BLOCK), BLOCK + (1,),
        (np.uint64(view.base), view.table, np.uint64(oview.base), oview.table, meta, starts, weights, fill_dev,
         np.int32(channels)),
        stream,
    )
    return out


_BLOBS: dict[tuple[int, bytes], tuple[Plan, Blob, bool, bool]] = {}


def _two_pass_pays(plan: Plan, shapes: Sequence[tuple[int, ...]]) -> bool:
    """Cost model: taps of the fused kernel (nx * ny per output) against two passes (nx + ny,
    plus the intermediate's write and read, counted as 4 taps a value), with a margin of 2
    for the second launch. Measured on an H200: bicubic/lanczos 2x downscales of 4K gain
    1.6x/2.8x; bilinear 2x and a batch to 224x224 stay fused."""
    fused = two = 0
    for (h, w, *_), m in zip(shapes, plan.meta.tolist()):
        nx, ny, order, rh, rw = m[2], m[5], m[6], m[10], m[11]
        fused += rh * rw * nx * ny
        mid = rh * w if order == 2 else h * rw
        two += (mid * ny + rh * rw * nx if order == 2 else mid * nx + rh * rw * ny) + 4 * mid
    return 2 * two < fused


def _blob(plan: Plan, fill: np.ndarray, src: Source) -> tuple[Blob, bool, bool]:
    """The plan's arrays and the background in one upload; whether every row window fits
    the register-unrolled kernel; whether two passes pay. Cached with the plan."""
    key = (id(plan), fill.tobytes())
    hit = _BLOBS.get(key)
    if hit is None or hit[0] is not plan:
        if len(_BLOBS) >= 2 * _MAX_PLANS:
            _BLOBS.clear()
        shapes = src.shapes if hasattr(src, "images") else [src.shape]
        data = pack(plan.meta, plan.starts, plan.weights, np.asarray(fill, np.float32))
        small = int(plan.meta[:, 2].max()) <= SMALL_TAPS
        hit = _BLOBS[key] = (plan, data, small, _two_pass_pays(plan, shapes))
    return hit[1], hit[2], hit[3]


_MID_TABLES: dict[tuple[int, tuple], tuple[Plan, np.ndarray, int, int, int]] = {}


def _mid_table(plan: Plan, shapes: list[tuple[int, int, int]]) -> tuple[np.ndarray, int, int, int]:
    """Kernel-table rows of the float intermediate of every image, its bytes, max h and w."""
    key = (id(plan), tuple(shapes))
    hit = _MID_TABLES.get(key)
    if hit is None or hit[0] is not plan:
        if len(_MID_TABLES) >= 2 * _MAX_PLANS:
            _MID_TABLES.clear()
        rows = np.zeros((len(shapes), 5), np.int64)
        offset = 0
        for i, (h, w, c) in enumerate(shapes):
            order, rh, rw = int(plan.meta[i, 6]), int(plan.meta[i, 10]), int(plan.meta[i, 11])
            mh, mw = (rh, w) if order == 2 else (h, rw)
            rows[i] = (offset, mh, mw, mw * c * 4, c)
            offset += -(-mh * mw * c * 4 // 256) * 256
        hit = _MID_TABLES[key] = (plan, rows, max(offset, 4), int(rows[:, 1].max()), int(rows[:, 2].max()))
    return hit[1], hit[2], hit[3], hit[4]


def _two_passes(src: Source, out: Source, view: Any, oview: Any, plan: Plan, params: tuple, channels: int,
                stream: Any) -> None:
    """Pass 1 into a workspace intermediate, pass 2 into ``out``: two launches per batch."""
    shapes = src.shapes if hasattr(src, "images") else [src.shape]
    rows, nbytes, mh, mw = _mid_table(plan, shapes)
    mid = scratch("resample:mid", nbytes, "cuda")
    mid_tab = upload("resample:midtable", rows, "cuda", stream, token=rows)
    suf = dtype_suffix(src.dtype)
    source = _module_source()
    for pas, (ibase, itab, obase, otab, grid_src) in enumerate(
        ((view.base, view.table, mid.ptr, mid_tab, (mw, mh, view.count)),
         (mid.ptr, mid_tab, oview.base, oview.table, (oview.max_width, oview.max_height, oview.count))),
        start=1,
    ):
        launch(
            raw_kernel(source, f"resample_pass{pas}_{suf}"), grid_for(grid_src, BLOCK), BLOCK + (1,),
            (np.uint64(ibase), itab, np.uint64(obase), otab, *params, np.int32(pas), np.int32(channels)),
            stream,
        )
