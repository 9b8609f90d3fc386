"""Private pieces shared by the filters submodules: the family's one CUDA module (the
separable passes and the dense 2-D correlation), its entries, the variant-entry picker
and the argument check."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ...image import CHANNELS, DTYPES
from .._engine.args import Source, check_border, check_src
from .._engine.kernels import PRELUDE as CUDA_PRELUDE, compiled as raw_kernel, dtype_entries, dtype_suffix

_DTYPES = tuple(d.name for d in DTYPES)
_CHANNELS = CHANNELS


# ============================================================================ CUDA kernels
# One source for the family. C (channels) is a template parameter chosen by a switch, so
# per-channel accumulators stay in registers; every kernel indexes the batch table.
_SOURCE = CUDA_PRELUDE + r"""
// Horizontal pass of a separable filter: T pixels -> float scratch laid out like src
// (element offsets = byte offsets / sizeof(T)).
template <typename T, int C>
__device__ void sep_h(const void* src, const long long* tab, float* tmp, const float* w,
                      const int* taps, int border, float cval) {
    int b = blockIdx.z; Slot s = slot(tab, b);
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= s.width || y >= s.height) return;
    int r = taps[2 * b + 1]; const float* k = w + taps[2 * b];
    const T* row = row_ptr<T>(src, s, y);
    float acc[C];
    #pragma unroll
    for (int c = 0; c < C; ++c) acc[c] = 0.f;
    for (int i = -r; i <= r; ++i) {
        float wt = k[i + r];
        int j = map_border(x + i, (int)s.width, border);
        #pragma unroll
        for (int c = 0; c < C; ++c) acc[c] += wt * (j < 0 ? cval : to_f(row[(long long)j * C + c]));
    }
    float* out = tmp + s.offset / sizeof(T) + y * (s.pitch / sizeof(T)) + (long long)x * C;
    #pragma unroll
    for (int c = 0; c < C; ++c) out[c] = acc[c];
}

// Vertical pass: float scratch -> T output. mode 1 is the unsharp-mask epilogue:
// out = orig + amount * (orig - blurred) where |orig - blurred| >= threshold.
template <typename T, int C>
__device__ void sep_v(const float* tmp, const long long* tab, void* dst, const long long* otab,
                      const float* w, const int* taps, int border, float cval, int mode,
                      const void* orig, const float* amount, const float* threshold) {
    int b = blockIdx.z; Slot s = slot(tab, b); Slot so = slot(otab, b);
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= s.width || y >= s.height) return;
    int r = taps[2 * b + 1]; const float* k = w + taps[2 * b];
    long long base = s.offset / sizeof(T) + (long long)x * C, pitch = s.pitch / sizeof(T);
    float acc[C];
    #pragma unroll
    for (int c = 0; c < C; ++c) acc[c] = 0.f;
    for (int i = -r; i <= r; ++i) {
        float wt = k[i + r];
        int j = map_border(y + i, (int)s.height, border);
        const float* p = tmp + base + (long long)j * pitch;
        #pragma unroll
        for (int c = 0; c < C; ++c) acc[c] += wt * (j < 0 ? cval : p[c]);
    }
    T* q = row_ptr<T>(dst, so, y) + (long long)x * C;
    if (mode == 1) {
        const T* o = row_ptr<T>(orig, s, y) + (long long)x * C;
        float a = amount[b], th = threshold[b];
        #pragma unroll
        for (int c = 0; c < C; ++c) {
            float v = (float)o[c], d = v - acc[c];
            acc[c] = fabsf(d) >= th ? v + a * d : v;
        }
    }
    #pragma unroll
    for (int c = 0; c < C; ++c) store(q + c, acc[c]);
}

// Dense 2-D correlation with nk (1 or 2) kernels of kh x kw, anchor at (kh/2, kw/2) as in
// cv2.filter2D; with two kernels the result is the magnitude hypot(k0 * src, k1 * src).
template <typename T, int C>
__device__ void conv2d(const void* src, const long long* tab, void* dst, const long long* otab,
                       const float* w, int kh, int kw, int nk, int border, float cval) {
    int b = blockIdx.z; Slot s = slot(tab, b); Slot so = slot(otab, b);
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= s.width || y >= s.height) return;
    float a0[C], a1[C];
    #pragma unroll
    for (int c = 0; c < C; ++c) { a0[c] = 0.f; a1[c] = 0.f; }
    const float* w1 = w + kh * kw;
    for (int ky = 0; ky < kh; ++ky) {
        int yy = map_border(y + ky - kh / 2, (int)s.height, border);
        const T* row = yy < 0 ? (const T*)0 : row_ptr<T>(src, s, yy);
        for (int kx = 0; kx < kw; ++kx) {
            int xx = map_border(x + kx - kw / 2, (int)s.width, border);
            float wt0 = w[ky * kw + kx], wt1 = nk > 1 ? w1[ky * kw + kx] : 0.f;
            #pragma unroll
            for (int c = 0; c < C; ++c) {
                float v = (yy < 0 || xx < 0) ? cval : to_f(row[(long long)xx * C + c]);
                a0[c] += wt0 * v; a1[c] += wt1 * v;
            }
        }
    }
    T* q = row_ptr<T>(dst, so, y) + (long long)x * C;
    #pragma unroll
    for (int c = 0; c < C; ++c) store(q + c, nk > 1 ? sqrtf(a0[c] * a0[c] + a1[c] * a1[c]) : a0[c]);
}

"""

# One extern "C" entry per (kernel, dtype), dispatching on the channel count at run time.


_SIGNATURES = {
    "sep_h": ("const void* src, const long long* tab, float* tmp, const float* w, const int* taps, int border, float cval",
              "src, tab, tmp, w, taps, border, cval"),
    "sep_v": ("const float* tmp, const long long* tab, void* dst, const long long* otab, const float* w, const int* taps, "
              "int border, float cval, int mode, const void* orig, const float* amount, const float* threshold",
              "tmp, tab, dst, otab, w, taps, border, cval, mode, orig, amount, threshold"),
    "conv2d": ("const void* src, const long long* tab, void* dst, const long long* otab, const float* w, int kh, int kw, "
               "int nk, int border, float cval", "src, tab, dst, otab, w, kh, kw, nk, border, cval"),
}


def _instances() -> str:
    return "\n".join(dtype_entries(name, name, sig, args) for name, (sig, args) in _SIGNATURES.items())


@functools.lru_cache(maxsize=1)  # no arguments: one value, nothing to bound
def _module_source() -> str:
    return _SOURCE + _instances()


def _kernel(name: str, dtype: np.dtype) -> Any:
    return raw_kernel(_module_source(), f"{name}_{dtype_suffix(dtype)}")


def _one_dtype(entries: str, dtype: np.dtype) -> str:
    """The entry of ``dtype`` among :func:`dtype_entries`' three (a variant module holds one)."""
    suf = dtype_suffix(dtype)
    return next(line for line in entries.splitlines() if f"_{suf}(" in line)


def _check(src: Source, border: str) -> int:
    check_src(src, channels=_CHANNELS, dtypes=_DTYPES)
    return check_border(border)
