"""Resampling weights: OpenCV's and Pillow's formulas, on the host and on the GPU.

Every resize-like op (resize, fit, resize_shorter) is a *plan*: per image, a source box,
an output size and a destination rectangle (pixels outside it get the background).
Per axis the plan holds, for every output coordinate, the first source index and a fixed
number of weights (zeros pad short windows; edge taps are folded so a window never
leaves the image). The kernel applies both axes in one pass: each output pixel sums
``ny`` rows of ``nx`` weighted taps, reading the source once and writing the result once
(no intermediate image, one launch per batch).

Which formulas (the references and tolerances are in resize's docstring):
- antialias=False: OpenCV's cv2.resize. "nearest" = INTER_NEAREST_EXACT (the centre
  walked step by step as OpenCV and Pillow do, so ties pick their pixel), "bilinear" =
  INTER_LINEAR, "bicubic" = INTER_CUBIC (a = -0.75), "area" = INTER_AREA (upscaling with
  OpenCV's 1 / (out / in) scale and float32 fraction); borders replicate; weights
  quantised to 1/2048 as OpenCV's 8-bit path does (its fixed-point sums are not
  emulated: within 1 level).
- antialias=True: Pillow's Image.resize ("bilinear" = BILINEAR, "bicubic" = BICUBIC
  (a = -0.5), "lanczos" = LANCZOS (a = 3)): the filter widens by the scale when
  downscaling, windows are clipped to the image and renormalised, and (as Pillow does)
  the first pass is rounded (half up) to the pixel type before the second, and so is
  the result. Weights stay float (Pillow's are 22-bit fixed point: within 1 level).
  "nearest" and "area" are the OpenCV ones either way; "lanczos" without antialias is
  Pillow's formula with an unwidened filter (and its rounding).
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from ...memory import scratch
from .._engine.batch import launch
from .._engine.cache import memoized
from .._engine.kernels import compiled as raw_kernel

if TYPE_CHECKING:
    from ._plan import Plan

__all__ = ["axis_weights"]

_CV_COEF_SCALE = 2048.0  # INTER_RESIZE_COEF_SCALE of OpenCV's fixed-point 8-bit resize


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
        # The source pixel whose area holds the output centre, with the centre walked as
        # OpenCV's INTER_NEAREST_EXACT and Pillow's NEAREST walk it: start + scale / 2, then
        # + scale per pixel, summed in double one step after the other (np.cumsum is
        # sequential), truncated. At exact half-pixel ties the accumulated rounding is what
        # picks the pixel (often the lower one), so the sum must be this one, not (o + 0.5) * scale.
        steps = np.full(out_len, scale)
        steps[0] = start + scale * 0.5
        idx = np.trunc(np.cumsum(steps)).astype(np.int64)
        return idx[:, None], np.ones((out_len, 1))
    if method == "area" and area_overlap:
        lo = start + o * scale
        first = np.floor(lo).astype(np.int64)
        k = int(math.ceil(scale)) + 1
        idx = first[:, None] + np.arange(k)[None, :]
        overlap = np.minimum(idx + 1, (lo + scale)[:, None]) - np.maximum(idx, lo[:, None])
        return idx, np.maximum(overlap, 0.0) / scale
    if method == "area":  # OpenCV's INTER_AREA when a side grows: linear with area weights
        # as resize.cpp computes them: scale = 1 / (out / in) in double (not in / out: at
        # exact ties that picks the lower pixel), the fraction in float32.
        inv = out_len / length
        sx = np.floor(start + o * (1.0 / inv)).astype(np.int64)
        f32 = ((o + 1) - ((sx + 1) - start) * inv).astype(np.float32)
        f32 = np.where(f32 <= 0, np.float32(0), f32 - np.floor(f32)).astype(np.float32)
        f32 = np.where(sx >= in_len - 1, np.float32(0), f32)
        sx = np.minimum(sx, in_len - 1)
        w = _cv_quantise(np.stack([np.float32(1) - f32, f32], axis=1).astype(np.float64))
        return sx[:, None] + np.arange(2)[None, :], w
    else:
        fx = start + (o + 0.5) * scale - 0.5
        sx = np.floor(fx).astype(np.int64)
        f = fx - sx
    if method == "bilinear":
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


@memoized("resample:axis-weights", max_items=512)  # the CPU path's weights, per axis length pair
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
    if (ax.kind == 8) {  // the centre walked step by step, as the host's np.cumsum
        double xo = ax.start + scale * 0.5;
        for (int k = 0; k < o; ++k) xo += scale;
        t.first = (long long)trunc(xo);
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
    if (ax.kind == 10) {  // OpenCV's scale 1 / (out / in), the fraction in float32
        double inv = (double)ax.out_len / ax.length;
        sx = (long long)floor(ax.start + od * (1.0 / inv));
        float f32 = (float)((od + 1.0) - ((double)(sx + 1) - ax.start) * inv);
        f32 = f32 <= 0.f ? 0.f : f32 - floorf(f32);
        if (sx >= ax.in_len - 1) f32 = 0.f;
        if (sx > ax.in_len - 1) sx = ax.in_len - 1;
        t.w[0] = cv_quantise((double)(1.f - f32));
        t.w[1] = cv_quantise((double)f32);
        t.first = sx;
        t.count = 2;
        return t;
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
