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
import threading
from collections.abc import Sequence
from typing import Any, Callable, NamedTuple

import numpy as np

from ..errors import check_choice
from ..image import slot_layout
from ..memory import scratch
from ._engine.args import Source, check_border, check_range, check_src, per_sample, uniform_channels
from ._engine.batch import BLOCK, batch_view, grid_for, kernel_args, launch, pairs, prepare_out, readable_source, same_memory, span_bytes
from ._engine.kernels import PRELUDE as CUDA_PRELUDE, border_index, compiled as raw_kernel, current_config, dtype_entries, dtype_suffix, store_numpy
from ._engine.params import Blob, pack, upload, upload_blob

__all__ = ["METHODS", "Spec", "Plan", "check_method", "axis_weights", "cached_plan", "resample"]

METHODS = ("nearest", "bilinear", "bicubic", "area", "lanczos")
_CV_COEF_SCALE = 2048.0  # INTER_RESIZE_COEF_SCALE of OpenCV's fixed-point 8-bit resize


class Spec(NamedTuple):
    """One image of a plan: source box (y, x, h, w; may be fractional), output size, and
    the rectangle of the output the box lands in (the rest is background)."""

    box: tuple[float, float, float, float]
    out_hw: tuple[int, int]
    rect: tuple[int, int, int, int]


def check_method(method: Any) -> str:
    check_choice(method, "method", METHODS, "a resize method")
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
# Kinds of axis, one code each (the GPU weights kernel switches on it):
# Pillow taps 0 bilinear, 1 bicubic, 2 lanczos (+ _WIDEN when antialiased);
# OpenCV taps 8 nearest, 9 area (overlap), 10 area (linear, a side grows), 11 bilinear, 12 bicubic.
_PILLOW_KIND = {"bilinear": 0, "bicubic": 1, "lanczos": 2}
_PILLOW_SUPPORT = (1.0, 2.0, 3.0)
_WIDEN = 4
_CV_KIND = {"nearest": 8, "bilinear": 11, "bicubic": 12}
_CV_TAPS = {8: 1, 10: 2, 11: 2, 12: 4}
# starts, weights, in_len, out_len, start, length, kind, taps after folding (n)
AXIS_COLUMNS = 8


def axis_kind(method: str, antialias: bool, area_overlap: bool) -> int:
    """The axis code of a method (which formula family, see the table above)."""
    if method in ("bilinear", "bicubic") and antialias or method == "lanczos":
        return _PILLOW_KIND[method] + (_WIDEN if antialias else 0)
    if method == "area":
        return 9 if area_overlap else 10
    return _CV_KIND[method]


def axis_taps(kind: int, in_len: int, out_len: int, length: float) -> int:
    """Weights per output coordinate after folding (what :func:`axis_weights` returns as
    ``w.shape[1]``), from the window size alone: the host lays out the weight tables
    without computing a weight."""
    scale = length / out_len
    if kind < 8:
        filterscale = max(scale, 1.0) if kind & _WIDEN else 1.0
        taps = int(math.ceil(_PILLOW_SUPPORT[kind & 3] * filterscale)) * 2 + 1
    elif kind == 9:
        taps = int(math.ceil(scale)) + 1
    else:
        taps = _CV_TAPS[kind]
    return min(taps, in_len)


class Plan:
    """Parameters of one resample call: per image a row of ``meta`` (int32, see
    META_COLUMNS), per axis a row of ``axes`` (float64, see AXIS_COLUMNS).

    The weights themselves are computed where they are used: on the GPU by one small
    kernel into the workspace (a batch of never-seen sizes costs one launch, not
    milliseconds of host NumPy per image), on the CPU by :func:`axis_weights` on first
    use of ``starts``/``weights`` (the reference the GPU kernel is tested against).
    """

    __slots__ = ("meta", "axes", "n_starts", "n_weights", "method", "antialias", "_host")

    def __init__(self, meta: np.ndarray, axes: np.ndarray, method: str, antialias: bool):
        self.meta, self.axes, self.method, self.antialias = meta, axes, method, antialias
        self.n_starts = int(axes[:, 3].sum())
        self.n_weights = int((axes[:, 3] * axes[:, 7]).sum())
        self._host: tuple[np.ndarray, np.ndarray] | None = None

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        if self._host is None:
            starts, weights = [], []
            for row in self.axes:
                s, w = axis_weights(self.method, self.antialias, int(row[2]), int(row[3]), float(row[4]),
                                    float(row[5]), int(row[6]) != 10)
                starts.append(s)
                weights.append(w.reshape(-1).astype(np.float32))
            self._host = (np.concatenate(starts), np.concatenate(weights))
        return self._host

    @property
    def starts(self) -> np.ndarray:
        """First source index of every output coordinate of every axis (int32, host)."""
        return self._tables()[0]

    @property
    def weights(self) -> np.ndarray:
        """The weights, ``n`` per output coordinate of every axis (float32, host)."""
        return self._tables()[1]


# xs_off, xw_off, nx, ys_off, yw_off, ny, rounding (0 none, 1 rows first, 2 columns first), pad, y0, x0, rh, rw
META_COLUMNS = 12


def make_plan(method: str, antialias: bool, round_rows: bool, shapes: Sequence[tuple[int, int]],
              specs: Sequence[Spec]) -> Plan:
    """Lay out the weight tables of every image of a call (a few scalar steps per image)."""
    meta = np.zeros((len(specs), META_COLUMNS), np.int32)
    axes = np.zeros((2 * len(specs), AXIS_COLUMNS), np.float64)
    n_starts = n_weights = 0
    for i, ((in_h, in_w), spec) in enumerate(zip(shapes, specs)):
        by, bx, bh, bw = spec.box
        y0, x0, rh, rw = spec.rect
        overlap = rh <= bh and rw <= bw  # OpenCV: area averaging only when no side grows
        kind = axis_kind(method, antialias, overlap)
        row = []
        for a, (in_len, out_len, start, length) in enumerate(((in_w, rw, bx, bw), (in_h, rh, by, bh))):
            n = axis_taps(kind, in_len, out_len, float(length))
            axes[2 * i + a] = (n_starts, n_weights, in_len, out_len, start, length, kind, n)
            row += [n_starts, n_weights, n]
            n_starts += out_len
            n_weights += out_len * n
        # Pillow runs the vertical pass first when width grows and height shrinks
        order = 0 if not round_rows else (2 if rw > bw and rh < bh else 1)
        meta[i] = (*row, order, 0, y0, x0, rh, rw)
    return Plan(meta, axes, method, bool(antialias))


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


# The weights of every axis of a plan, on the GPU: the same formulas, in the same order
# and in double precision, as _pillow_taps/_cv_taps + _fold (compiled without fused
# multiply-adds so each step rounds as NumPy's does); NumPy's pairwise summation for the
# Pillow normalisation. Float32 results agree with the host tables (tests/test_geometry.py).
_WEIGHTS_SOURCE = r"""
struct Axis { long long s_off, w_off; int in_len, out_len; double start, length; int kind, n; };

__device__ Axis axis_at(const double* a) {
    Axis x = {(long long)a[0], (long long)a[1], (int)a[2], (int)a[3], a[4], a[5], (int)a[6], (int)a[7]};
    return x;
}

__device__ double pillow_filter(int f, double x) {
    if (f == 0) return fmax(0.0, 1.0 - fabs(x));
    if (f == 1) {
        const double a = -0.5;
        x = fabs(x);
        double near_ = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        double far_ = (((x - 5.0) * x + 8.0) * x - 4.0) * a;
        return x < 1.0 ? near_ : (x < 2.0 ? far_ : 0.0);
    }
    if (fabs(x) >= 3.0) return 0.0;
    double y = 3.141592653589793 * (x == 0.0 ? 1.0e-20 : x);
    double x3 = x / 3.0;
    double y3 = 3.141592653589793 * (x3 == 0.0 ? 1.0e-20 : x3);
    return (sin(y) / y) * (sin(y3) / y3);
}

struct Pillow { int f, ksize; long long xmin, xmax; double center, fs; };

__device__ double pillow_tap(const Pillow& p, int k) {
    if (k >= p.xmax) return 0.0;
    return pillow_filter(p.f, (((double)(k + p.xmin) - p.center) + 0.5) / p.fs);
}

// numpy's pairwise_sum (the order np.sum adds a row in): blocks of up to 128 taps with 8
// partial sums, split in halves (rounded to multiples of 8) above that. The halving is
// walked with a small explicit stack (no device recursion, so no stack-size limit).
__device__ double pairwise_leaf(const Pillow& p, int lo, int n) {
    if (n < 8) {
        double r = 0.0;
        for (int i = 0; i < n; ++i) r += pillow_tap(p, lo + i);
        return r;
    }
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = pillow_tap(p, lo + j);
    int i = 8;
    for (; i < n - (n % 8); i += 8)
        for (int j = 0; j < 8; ++j) r[j] += pillow_tap(p, lo + i + j);
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += pillow_tap(p, lo + i);
    return res;
}

__device__ double pairwise(const Pillow& p, int lo, int n) {
    if (n <= 128) return pairwise_leaf(p, lo, n);
    int s_lo[32], s_n[32], s_state[32];
    double vals[32];
    int top = 0, vtop = 0;
    s_lo[0] = lo; s_n[0] = n; s_state[0] = 0; top = 1;
    while (top > 0) {
        int k = top - 1;
        if (s_n[k] <= 128) {
            vals[vtop++] = pairwise_leaf(p, s_lo[k], s_n[k]);
            --top;
            continue;
        }
        int n2 = s_n[k] / 2;
        n2 -= n2 % 8;
        if (s_state[k] == 0) {
            s_state[k] = 1;
            s_lo[top] = s_lo[k]; s_n[top] = n2; s_state[top] = 0; ++top;
        } else if (s_state[k] == 1) {
            s_state[k] = 2;
            s_lo[top] = s_lo[k] + n2; s_n[top] = s_n[k] - n2; s_state[top] = 0; ++top;
        } else {
            double b = vals[--vtop], a = vals[--vtop];
            vals[vtop++] = a + b;
            --top;
        }
    }
    return vals[0];
}

__device__ double cv_quantise(double w) { return rint(w * 2048.0) / 2048.0; }

// Raw taps of output o: first index, count, and weight k (before folding).
struct Taps { long long first; int count; double w[4]; double lo, scale; int kind; Pillow p; double total; };

__device__ double tap(const Taps& t, int k) {
    if (t.kind < 8) {
        double w = pillow_tap(t.p, k);
        return t.total != 0.0 ? w / t.total : 0.0;
    }
    if (t.kind == 9) {
        double idx = (double)(t.first + k);
        double overlap = fmin(idx + 1.0, t.lo + t.scale) - fmax(idx, t.lo);
        return fmax(overlap, 0.0) / t.scale;
    }
    return t.w[k];
}

__device__ Taps taps_of(const Axis& ax, int o) {
    Taps t;
    t.kind = ax.kind;
    double scale = ax.length / ax.out_len;
    t.scale = scale;
    double od = (double)o;
    if (ax.kind < 8) {
        Pillow& p = t.p;
        p.f = ax.kind & 3;
        p.fs = (ax.kind & 4) ? fmax(scale, 1.0) : 1.0;
        double support = (p.f == 0 ? 1.0 : (p.f == 1 ? 2.0 : 3.0)) * p.fs;
        p.ksize = (int)ceil(support) * 2 + 1;
        p.center = ax.start + (od + 0.5) * scale;
        p.xmin = (long long)fmax(trunc(p.center - support + 0.5), 0.0);
        p.xmax = (long long)fmin(trunc(p.center + support + 0.5), (double)ax.in_len) - p.xmin;
        t.total = pairwise(p, 0, p.ksize);
        t.first = p.xmin;
        t.count = p.ksize;
        return t;
    }
    if (ax.kind == 8) {
        t.first = (long long)floor(ax.start + (od + 0.5) * scale);
        t.count = 1;
        t.w[0] = 1.0;
        return t;
    }
    if (ax.kind == 9) {
        t.lo = ax.start + od * scale;
        t.first = (long long)floor(t.lo);
        t.count = (int)ceil(scale) + 1;
        return t;
    }
    long long sx;
    double f;
    if (ax.kind == 10) {
        sx = (long long)floor(ax.start + od * scale);
        f = (od + 1.0) - ((double)(sx + 1) - ax.start) / scale;
        f = f <= 0.0 ? 0.0 : f - floor(f);
    } else {
        double fx = ax.start + (od + 0.5) * scale - 0.5;
        sx = (long long)floor(fx);
        f = fx - (double)sx;
    }
    if (ax.kind == 12) {
        const double a = -0.75;
        double x = f;
        double w0 = ((a * (x + 1.0) - 5.0 * a) * (x + 1.0) + 8.0 * a) * (x + 1.0) - 4.0 * a;
        double w1 = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        double w2 = ((a + 2.0) * (1.0 - x) - (a + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
        double w3 = ((1.0 - w0) - w1) - w2;
        t.w[0] = cv_quantise(w0); t.w[1] = cv_quantise(w1); t.w[2] = cv_quantise(w2); t.w[3] = cv_quantise(w3);
        t.first = sx - 1;
        t.count = 4;
        return t;
    }
    if (sx < 0) f = 0.0;
    if (sx < 0) sx = 0;
    if (sx >= ax.in_len - 1) f = 0.0;
    if (sx > ax.in_len - 1) sx = ax.in_len - 1;
    t.w[0] = cv_quantise(1.0 - f);
    t.w[1] = cv_quantise(f);
    t.first = sx;
    t.count = 2;
    return t;
}

// One thread per output coordinate of one axis (blockIdx.y): its start and n weights.
// Folding as _fold: indices clamp into the image, taps landing on one index add up (in
// tap order, from 0.0, as np.add.at does), and zero-weight taps are left out.
extern "C" __global__ void resample_weights(const double* axes, int* starts, float* weights) {
    Axis ax = axis_at(axes + 8 * (long long)blockIdx.y);
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= ax.out_len) return;
    Taps t = taps_of(ax, o);
    int last = ax.in_len - 1;
    long long i0 = t.first < 0 ? 0 : (t.first > last ? last : t.first);
    long long st = i0 < (long long)(ax.in_len - ax.n) ? i0 : (long long)(ax.in_len - ax.n);
    starts[ax.s_off + o] = (int)st;
    float* w = weights + ax.w_off + (long long)o * ax.n;
    for (int j = 0; j < ax.n; ++j) w[j] = 0.f;
    long long run = -1;
    double sum = 0.0;
    for (int k = 0; k < t.count; ++k) {
        double wk = tap(t, k);
        if (wk == 0.0) continue;
        long long idx = t.first + k;
        idx = idx < 0 ? 0 : (idx > last ? last : idx);
        long long rel = idx - st;
        if (rel != run) {
            if (run >= 0) w[run] = (float)sum;
            run = rel;
            sum = 0.0;
        }
        sum += wk;
    }
    if (run >= 0) w[run] = (float)sum;
}
"""


@functools.lru_cache(maxsize=None)  # built once per small_taps value
def _module_source(small_taps: int) -> str:
    params = ("const void* src, const long long* tab, void* dst, const long long* otab, const int* meta, "
              "const int* starts, const float* weights, const float* fill")
    args = "src, tab, dst, otab, meta, starts, weights, fill"
    ppar = ("const void* in, const long long* itab, void* out, const long long* otab, const int* meta, "
            "const int* starts, const float* weights, const float* fill, int pass")
    pargs = "in, itab, out, otab, meta, starts, weights, fill, pass"
    entries = [
        dtype_entries("resample", "resample", params, args, "{t}, {c}, 0"),
        dtype_entries("resample_small", "resample", params, args, "{t}, {c}, %d" % small_taps),
        dtype_entries("resample_pass1", "resample_pass", ppar, pargs, "{t}, float, {t}, {c}"),
        dtype_entries("resample_pass2", "resample_pass", ppar, pargs, "float, {t}, {t}, {c}"),
    ]
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
    meta, axes, fill_dev = upload_blob("resample:params", blob, "cuda", stream)
    starts, weights = _device_weights(plan, axes, stream)
    config = current_config()
    if two_pass and config.two_pass:
        _two_passes(src, out, view, oview, plan, (meta, starts, weights, fill_dev), channels, stream)
        return out
    name = "resample_small" if small else "resample"
    kernel = raw_kernel(_module_source(config.small_taps), f"{name}_{dtype_suffix(src.dtype)}")
    launch(
        kernel, grid_for(oview, BLOCK), BLOCK + (1,),
        (np.uint64(view.base), view.table, np.uint64(oview.base), oview.table, meta, starts, weights, fill_dev,
         np.int32(channels)),
        stream,
    )
    return out


_weights_held = threading.local()  # per thread, like the workspace: which plan its tables hold
_WEIGHTS_BLOCK = 128


def _device_weights(plan: Plan, axes: np.uint64, stream: Any) -> tuple[np.uint64, np.uint64]:
    """Pointers to the plan's starts and weights in the workspace, computed there by one
    launch of ``resample_weights`` unless the workspace already holds this plan's."""
    starts_bytes = -(-4 * plan.n_starts // 256) * 256
    buf = scratch("resample:weights", starts_bytes + 4 * max(plan.n_weights, 1), "cuda")
    held = getattr(_weights_held, "value", None)
    if held is None or held[0] is not plan or held[1] != buf.generation or held[2] != buf.ptr:
        out_max = int(plan.axes[:, 3].max())
        grid = (-(-out_max // _WEIGHTS_BLOCK), len(plan.axes), 1)
        kernel = raw_kernel(_WEIGHTS_SOURCE, "resample_weights", ("--std=c++17", "--fmad=false"))
        launch(kernel, grid, (_WEIGHTS_BLOCK, 1, 1), (axes, np.uint64(buf.ptr), np.uint64(buf.ptr + starts_bytes)), stream)
        _weights_held.value = (plan, buf.generation, buf.ptr)  # holds the plan: its id stays unique
    return np.uint64(buf.ptr), np.uint64(buf.ptr + starts_bytes)


_BLOBS: dict[tuple[int, bytes], tuple[Plan, Blob, bool, bool]] = {}


def _two_pass_pays(plan: Plan, shapes: Sequence[tuple[int, ...]]) -> bool:
    """Cost model: taps of the fused kernel (nx * ny per output) against two passes (nx + ny,
    plus the intermediate's write and read, counted as 4 taps a value), with a margin of 2
    for the second launch. Measured: bicubic/lanczos 2x downscales of 4K gain
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
        data = pack(plan.meta, plan.axes, np.asarray(fill, np.float32))
        small = int(plan.meta[:, 2].max()) <= current_config().small_taps
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
        mids = []
        for i, (h, w, c) in enumerate(shapes):
            order, rh, rw = int(plan.meta[i, 6]), int(plan.meta[i, 10]), int(plan.meta[i, 11])
            mids.append(((rh, w) if order == 2 else (h, rw)) + (c,))
        rows, _, total = slot_layout(mids, 1, np.float32)
        hit = _MID_TABLES[key] = (plan, rows, max(int(total), 4), int(rows[:, 1].max()), int(rows[:, 2].max()))
    return hit[1], hit[2], hit[3], hit[4]


def _two_passes(src: Source, out: Source, view: Any, oview: Any, plan: Plan, params: tuple, channels: int,
                stream: Any) -> None:
    """Pass 1 into a workspace intermediate, pass 2 into ``out``: two launches per batch."""
    shapes = src.shapes if hasattr(src, "images") else [src.shape]
    rows, nbytes, mh, mw = _mid_table(plan, shapes)
    mid = scratch("resample:mid", nbytes, "cuda")
    mid_tab = upload("resample:midtable", rows, "cuda", stream, key=rows)
    suf = dtype_suffix(src.dtype)
    source = _module_source(current_config().small_taps)
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
