"""Neighbourhood filters: gaussian/box/median blur, unsharp mask, sharpen, convolution, Sobel.

Every op takes an Image or an ImageBatch (any mix of sizes, 1/3/4 channels; uint8, uint16
or float32) and follows ``op(src, ..., out=None, stream=None)``. On the GPU a whole batch
is one kernel launch per pass, indexing the batch's table; the NumPy code beside each
kernel is the CPU fallback and the oracle the kernels are tested against.

Borders (``border=``) and the OpenCV border each one matches (see ``_engine.args.BORDERS``):
"reflect" = cv2.BORDER_REFLECT_101 (the default, as in OpenCV), "symmetric" =
cv2.BORDER_REFLECT, "edge" = cv2.BORDER_REPLICATE, "wrap" = cv2.BORDER_WRAP, "constant"
= cv2.BORDER_CONSTANT with ``value``.

Example:
    >>> import numpy as np, gpuimg
    >>> from gpuimg.ops.filters import gaussian_blur
    >>> img = gpuimg.Image.from_array(np.zeros((32, 48, 3), np.uint8), device="cpu")
    >>> gaussian_blur(img, 2.0).shape
    (32, 48, 3)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..image import CHANNELS, DTYPES, Image
from .registry import register_op
from ._engine.args import Source, check_border, check_range, check_src, per_sample, uniform_channels
from ._engine.batch import BLOCK, batch_view, grid_for, kernel_args, launch, pairs, prepare_out, readable_source, same_memory, span_bytes
from ._engine.kernels import PRELUDE as CUDA_PRELUDE, border_index, compiled as raw_kernel, current_config, dtype_entries, dtype_suffix, store_numpy
from ._engine.params import Blob, pack, upload, upload_blob
from ..memory import scratch

__all__ = [
    "gaussian_blur",
    "gaussian_kernel",
    "box_blur",
    "unsharp_mask",
    "sharpen",
    "convolve",
    "sobel",
    "median_blur",
]

_DTYPES = tuple(d.name for d in DTYPES)
_CHANNELS = CHANNELS
MAX_MEDIAN_SIZE = 9  # the per-thread window lives in registers/local memory: 81 values


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


@functools.lru_cache(maxsize=1)
def _module_source() -> str:
    return _SOURCE + _instances()


def _kernel(name: str, dtype: np.dtype) -> Any:
    return raw_kernel(_module_source(), f"{name}_{dtype_suffix(dtype)}")


# The fast path of separable filters: a shared-memory tile per block, the radius R a
# compile-time constant (weights and sliding windows live in registers, loops unroll).
# One small module per (R, dtype), built on first use.
_TILE_SOURCE = r"""
#define TILE_W 32
#define TILE_H 16
// A block loads its TILE_H x TILE_W tile plus the R-pixel halo ONCE (border-mapped, as
// float), filters rows into shared memory, then columns straight to the output: one read
// and one write of the image, one launch. Each thread computes a run of outputs from a
// sliding window held in registers, so shared-memory reads per output are ~(run+2R)/run
// instead of 2R+1. mode 1 adds the unsharp-mask epilogue (centre pixel from the tile).
template <typename T, int C, int R>
__device__ void sep_tile(const void* src, const long long* tab, void* dst, const long long* otab,
                         const float* w, const int* taps, int border, float cval, int mode,
                         const float* amount, const float* threshold) {
    constexpr int N = 2 * R + 1, IW = TILE_W + 2 * R, IH = TILE_H + 2 * R;
    constexpr int RH = 8, RV = 4, RUNS_H = TILE_W / RH, RUNS_V = TILE_H / RV;
    extern __shared__ float smem[];
    float* in = smem;                 // IH x IW x C
    float* mid = smem + IH * IW * C;  // IH x TILE_W x C
    int b = blockIdx.z; Slot s = slot(tab, b); Slot so = slot(otab, b);
    int x0 = blockIdx.x * TILE_W, y0 = blockIdx.y * TILE_H;
    if (x0 >= s.width || y0 >= s.height) return;  // the whole block leaves together
    int H = (int)s.height, W = (int)s.width, tid = threadIdx.x, nt = blockDim.x;
    float wr[N];
    #pragma unroll
    for (int k = 0; k < N; ++k) wr[k] = w[taps[2 * b] + k];
    if (x0 >= R && y0 >= R && x0 + TILE_W + R <= W && y0 + TILE_H + R <= H) {
        // interior tile (most of them): each haloed row is one contiguous run of bytes
        for (int i = tid; i < IH * IW * C; i += nt) {
            int row = i / (IW * C), e = i - row * IW * C;
            in[i] = to_f(row_ptr<T>(src, s, y0 - R + row)[(long long)(x0 - R) * C + e]);
        }
    } else {
        for (int i = tid; i < IH * IW; i += nt) {
            int row = i / IW, col = i - row * IW;
            int gy = map_border(y0 - R + row, H, border), gx = map_border(x0 - R + col, W, border);
            const T* p = (gy < 0 || gx < 0) ? (const T*)0 : row_ptr<T>(src, s, gy) + (long long)gx * C;
            #pragma unroll
            for (int c = 0; c < C; ++c) in[i * C + c] = p ? to_f(p[c]) : cval;
        }
    }
    __syncthreads();
    for (int i = tid; i < IH * C * RUNS_H; i += nt) {
        int run = i % RUNS_H, t = i / RUNS_H, c = t % C, row = t / C;
        const float* p = in + (row * IW + run * RH) * C + c;
        float v[RH + 2 * R];
        #pragma unroll
        for (int j = 0; j < RH + 2 * R; ++j) v[j] = p[j * C];
        #pragma unroll
        for (int o = 0; o < RH; ++o) {
            float acc = 0.f;
            #pragma unroll
            for (int k = 0; k < N; ++k) acc += wr[k] * v[o + k];
            mid[(row * TILE_W + run * RH + o) * C + c] = acc;
        }
    }
    __syncthreads();
    float a = mode ? amount[b] : 0.f, th = mode ? threshold[b] : 0.f;
    for (int i = tid; i < TILE_W * C * RUNS_V; i += nt) {
        int cc = i % (TILE_W * C), run = i / (TILE_W * C), col = cc / C, c = cc - col * C;
        const float* p = mid + run * RV * TILE_W * C + cc;
        float v[RV + 2 * R];
        #pragma unroll
        for (int j = 0; j < RV + 2 * R; ++j) v[j] = p[j * TILE_W * C];
        int gx = x0 + col;
        #pragma unroll
        for (int o = 0; o < RV; ++o) {
            int row = run * RV + o, gy = y0 + row;
            float acc = 0.f;
            #pragma unroll
            for (int k = 0; k < N; ++k) acc += wr[k] * v[o + k];
            if (mode == 1) {
                float orig = in[((row + R) * IW + col + R) * C + c], d = orig - acc;
                acc = fabsf(d) >= th ? orig + a * d : orig;
            }
            if (gy < H && gx < W) store(row_ptr<T>(dst, so, gy) + (long long)gx * C + c, acc);
        }
    }
}
"""
TILE = (32, 16)  # TILE_W, TILE_H of sep_tile
MAX_TILE_RADIUS = 16
_TILE_SMEM_LIMIT = 48 * 1024  # the default dynamic shared memory per block, no opt-in needed


def tile_smem_bytes(radius: int, channels: int) -> int:
    """Shared memory sep_tile needs: the haloed input tile and the row-filtered tile, float."""
    tw, th = TILE
    return 4 * channels * (th + 2 * radius) * ((tw + 2 * radius) + tw)


def _one_dtype(entries: str, dtype: np.dtype) -> str:
    """The entry of ``dtype`` among :func:`dtype_entries`' three (a variant module holds one)."""
    suf = dtype_suffix(dtype)
    return next(line for line in entries.splitlines() if f"_{suf}(" in line)


@functools.lru_cache(maxsize=None)  # the source is built once per variant, not per call
def _tile_source(radius: int, dtype: np.dtype) -> str:
    params = ("const void* src, const long long* tab, void* dst, const long long* otab, const float* w, const int* taps, "
              "int border, float cval, int mode, const float* amount, const float* threshold")
    args = "src, tab, dst, otab, w, taps, border, cval, mode, amount, threshold"
    entry = _one_dtype(dtype_entries(f"sep_tile{radius}", "sep_tile", params, args, "{t}, {c}, %d" % radius), dtype)
    return CUDA_PRELUDE + _TILE_SOURCE + entry


def _tile_kernel(radius: int, dtype: np.dtype) -> Any:
    return raw_kernel(_tile_source(radius, dtype), f"sep_tile{radius}_{dtype_suffix(dtype)}")


# The median is its own small module per (size, dtype), with the selection network for
# that size generated below (so only the sizes used are compiled).
_MEDIAN_SOURCE = r"""
#define MIN(a, b) min(a, b)
#define MAX(a, b) max(a, b)
// Median of a K x K window with replicated borders (cv2.medianBlur), per channel: the
// window is loaded into registers and the selection network generated on the host (a
// pruned Batcher sorting network, inserted below) leaves the median in `med`.
template <typename T, int C, int K>
__device__ void median(const void* src, const long long* tab, void* dst, const long long* otab) {
    int b = blockIdx.z; Slot s = slot(tab, b); Slot so = slot(otab, b);
    int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= s.width || y >= s.height) return;
    const int R = K / 2;
    T* q = row_ptr<T>(dst, so, y) + (long long)x * C;
    const T* rows[K];
    int cols[K];
    #pragma unroll
    for (int k = 0; k < K; ++k) {
        rows[k] = row_ptr<T>(src, s, map_border(y + k - R, (int)s.height, 2));
        cols[k] = map_border(x + k - R, (int)s.width, 2) * C;
    }
    #pragma unroll
    for (int c = 0; c < C; ++c) {
        T v[K * K];
        #pragma unroll
        for (int ky = 0; ky < K; ++ky) {
            #pragma unroll
            for (int kx = 0; kx < K; ++kx) v[ky * K + kx] = rows[ky][cols[kx] + c];
        }
        MEDIAN_NETWORK
        q[c] = med;
    }
}
"""


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort network on n (a power of two) wires."""
    pairs, p = [], 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@functools.lru_cache(maxsize=None)
def median_network(count: int) -> tuple[list[str], int]:
    """CUDA statements that leave the median of v[0..count-1] in ``med``, and how many min/max pairs.

    A Batcher network on the next power of two, the missing wires fixed at -inf/+inf (the
    same number each side, so the median stays in the middle), pruned to the comparators
    the middle output depends on, and evaluated symbolically so comparators with a
    constant input vanish: 114 compare-exchanges for 5x5 instead of 234 for a partial
    selection sort (tested against numpy.median in test_filters.py).
    """
    n = 1
    while n < count:
        n *= 2
    lo = (n - count) // 2
    mid = lo + count // 2
    needed, kept = {mid}, []
    for i, j in reversed(_batcher_pairs(n)):
        if i in needed or j in needed:
            kept.append((i, j))
            needed |= {i, j}
    wires = ["LO"] * lo + [f"v[{k}]" for k in range(count)] + ["HI"] * (n - count - lo)
    lines, temp = [], 0
    for i, j in reversed(kept):
        a, b = wires[i], wires[j]
        if a == "LO" or b == "HI":
            continue  # already in order
        if a == "HI" or b == "LO":
            wires[i], wires[j] = b, a  # a known swap: relabel, no code
            continue
        lines.append(f"T t{temp} = MIN({a}, {b}); T t{temp + 1} = MAX({a}, {b});")
        wires[i], wires[j] = f"t{temp}", f"t{temp + 1}"
        temp += 2
    lines.append(f"T med = {wires[mid]};")
    return lines, temp // 2


def _median_numpy_network(values: np.ndarray) -> np.ndarray:
    """Evaluate the generated network in NumPy (for the test of the generator)."""
    lines, _ = median_network(values.shape[-1])
    env = {f"v[{k}]": values[..., k] for k in range(values.shape[-1])}
    for line in lines[:-1]:
        for part in line.split("; "):
            name, expr = part.rstrip(";").split(" = ")
            fn, args = expr.split("(", 1)
            a, b = (env[x.strip()] for x in args.rstrip(")").split(","))
            env[name.split()[1]] = np.minimum(a, b) if fn == "MIN" else np.maximum(a, b)
    return env[lines[-1].split(" = ")[1].rstrip(";")]


# uint8 fast path: each thread takes 4 consecutive BYTES of an output row (channels
# interleaved; a byte's neighbours in x are +-C bytes away) and runs the same network on
# packed 32-bit words with the SIMD byte min/max (__vminu4/__vmaxu4): 4 medians per
# comparator, and one or two aligned 32-bit loads per window element instead of 4 bytes.
_MEDIAN_SIMD_SOURCE = r"""
#define MIN(a, b) __vminu4(a, b)
#define MAX(a, b) __vmaxu4(a, b)
template <int K>
__device__ void median_u8x4(const void* src, const long long* tab, void* dst, const long long* otab) {
    int b = blockIdx.z; Slot s = slot(tab, b); Slot so = slot(otab, b);
    int j = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    int C = (int)s.channels, W = (int)s.width, rowbytes = W * C;
    int ob = 4 * j;
    if (ob >= rowbytes || y >= s.height) return;
    const int R = K / 2;
    // interior: every byte's x-neighbours exist, so each window row is 4 contiguous bytes
    bool interior = ob - R * C >= 0 && ob + 3 + R * C < rowbytes;
    typedef unsigned int T;
    T v[K * K];
    #pragma unroll
    for (int ky = 0; ky < K; ++ky) {
        const u8* row = row_ptr<u8>(src, s, map_border(y + ky - R, (int)s.height, 2));
        #pragma unroll
        for (int kx = 0; kx < K; ++kx) {
            T word;
            if (interior) {
                const u8* p = row + ob + (kx - R) * C;
                size_t addr = (size_t)p;
                const unsigned* a = (const unsigned*)(addr & ~(size_t)3);
                int shift = (int)(addr & 3);
                word = shift ? __funnelshift_r(a[0], a[1], 8 * shift) : a[0];
            } else {
                word = 0;
                #pragma unroll
                for (int i = 0; i < 4; ++i) {
                    int byte = min(ob + i, rowbytes - 1), px = byte / C, c = byte - px * C;
                    int sx = min(max(px + kx - R, 0), W - 1);
                    word |= (T)row[sx * C + c] << (8 * i);
                }
            }
            v[ky * K + kx] = word;
        }
    }
    MEDIAN_NETWORK
    u8* q = row_ptr<u8>(dst, so, y) + ob;
    #pragma unroll
    for (int i = 0; i < 4; ++i)
        if (ob + i < rowbytes) q[i] = (u8)(med >> (8 * i));
}
"""


@functools.lru_cache(maxsize=None)  # the source is built once per variant, not per call
def _median_simd_source(size: int) -> str:
    entry = (
        f'extern "C" __global__ void median{size}_u8x4(const void* src, const long long* tab, void* dst, '
        f"const long long* otab) {{ median_u8x4<{size}>(src, tab, dst, otab); }}"
    )
    network = "\n    ".join(median_network(size * size)[0])
    return CUDA_PRELUDE + _MEDIAN_SIMD_SOURCE.replace("MEDIAN_NETWORK", network) + entry


def _median_simd_kernel(size: int) -> Any:
    return raw_kernel(_median_simd_source(size), f"median{size}_u8x4")


@functools.lru_cache(maxsize=None)  # the source is built once per variant, not per call
def _median_source(size: int, dtype: np.dtype) -> str:
    params = "const void* src, const long long* tab, void* dst, const long long* otab"
    entry = _one_dtype(dtype_entries(f"median{size}", "median", params, "src, tab, dst, otab", "{t}, {c}, %d" % size), dtype)
    network = "\n        ".join(median_network(size * size)[0])
    return CUDA_PRELUDE + _MEDIAN_SOURCE.replace("MEDIAN_NETWORK", network) + entry


def _median_kernel(size: int, dtype: np.dtype) -> Any:
    return raw_kernel(_median_source(size, dtype), f"median{size}_{dtype_suffix(dtype)}")


# ============================================================================ NumPy reference
def _sep_pass_numpy(arr: np.ndarray, weights: np.ndarray, axis: int, border: str, cval: float) -> np.ndarray:
    """One 1-D pass in float32, tap by tap in the kernel's order (so rounding agrees)."""
    n = arr.shape[axis]
    r = len(weights) // 2
    acc = np.zeros(arr.shape, np.float32)
    positions = np.arange(n)
    for i in range(-r, r + 1):
        idx = border_index(positions + i, n, border)
        taken = np.take(arr, np.maximum(idx, 0), axis=axis).astype(np.float32)
        if border == "constant":
            mask = (idx < 0).reshape([-1 if a == axis else 1 for a in range(arr.ndim)])
            taken = np.where(mask, np.float32(cval), taken)
        acc += np.float32(weights[i + r]) * taken
    return acc


def _separable_numpy(arr: np.ndarray, weights: np.ndarray, border: str, cval: float) -> np.ndarray:
    return _sep_pass_numpy(_sep_pass_numpy(arr, weights, 1, border, cval), weights, 0, border, cval)


def _conv2d_numpy(arr: np.ndarray, kernels: np.ndarray, border: str, cval: float) -> np.ndarray:
    """Correlation with each of ``kernels`` (nk, kh, kw); hypot of two results when nk == 2."""
    h, w = arr.shape[:2]
    nk, kh, kw = kernels.shape
    ys = border_index(np.arange(-(kh // 2), h + kh - 1 - kh // 2), h, border)
    xs = border_index(np.arange(-(kw // 2), w + kw - 1 - kw // 2), w, border)
    padded = arr[np.maximum(ys, 0)][:, np.maximum(xs, 0)].astype(np.float32)
    if border == "constant":
        padded[ys < 0] = cval
        padded[:, xs < 0] = cval
    acc = np.zeros((nk, *arr.shape), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            window = padded[ky : ky + h, kx : kx + w]
            for k in range(nk):
                acc[k] += np.float32(kernels[k, ky, kx]) * window
    return np.sqrt(acc[0] ** 2 + acc[1] ** 2) if nk == 2 else acc[0]


def _median_numpy(arr: np.ndarray, size: int) -> np.ndarray:
    r = size // 2
    padded = np.pad(arr, ((r, r), (r, r), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(0, 1))
    flat = windows.reshape(*arr.shape, size * size)
    return np.partition(flat, size * size // 2, axis=-1)[..., size * size // 2]


# ============================================================================ shared drivers
def _check(src: Source, border: str) -> int:
    check_src(src, channels=_CHANNELS, dtypes=_DTYPES)
    return check_border(border)


def _count(src: Source) -> int:
    return len(src) if hasattr(src, "images") else 1


def _pack_weights(per_image: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated 1-D weights and int32 rows (offset, radius), one per image."""
    unique: dict[bytes, int] = {}
    chunks, rows, offset = [], [], 0
    for w in per_image:
        key = w.tobytes()
        if key not in unique:  # a batch with one sigma uploads one kernel
            unique[key] = offset
            chunks.append(w)
            offset += len(w)
        rows.append((unique[key], len(w) // 2))
    return np.concatenate(chunks).astype(np.float32), np.asarray(rows, np.int32)


class _Packed(NamedTuple):
    """Device-ready weights of one separable call (cached: the steady state re-uses it)."""

    fused: bool
    radius: int
    blob: Blob  # the weights (float32) and the per-image (offset, radius) rows (int32)


_PACKED: dict[Any, _Packed] = {}


def _packed(key: Any, weights: Sequence[np.ndarray], channels: int) -> _Packed:
    hit = _PACKED.get((key, channels))
    if hit is not None:
        return hit
    radius = max(len(w) // 2 for w in weights)
    fused = radius <= MAX_TILE_RADIUS and tile_smem_bytes(radius, channels) <= _TILE_SMEM_LIMIT
    # the tile kernel has one compile-time radius: smaller kernels are padded with zeros
    w, taps = _pack_weights([np.pad(w, radius - len(w) // 2) for w in weights] if fused else weights)
    if len(_PACKED) >= 64:
        _PACKED.clear()
    packed = _PACKED[(key, channels)] = _Packed(fused, radius, pack(w, taps))
    return packed


def _separable(
    src: Source,
    weights: Sequence[np.ndarray],
    border: str,
    value: float,
    out: Source | None,
    stream: Any,
    unsharp: tuple[np.ndarray, np.ndarray] | None = None,
    key: Any = None,
) -> Source:
    """Run a separable filter (same 1-D weights on both axes, one set per image).

    ``unsharp``: (amount, threshold) per image turns the second pass into unsharp masking.
    ``key``: hashable identity of ``weights`` (e.g. the sigmas and radii), so the packed
    device weights are built once per distinct call.
    """
    code = _check(src, border)
    out = prepare_out(src, out)
    if src.device == "cpu":
        for s, o, i in pairs(src, out):
            blurred = _separable_numpy(s.array, weights[i], border, value)
            if unsharp is not None:
                orig = s.array.astype(np.float32)
                diff = orig - blurred
                amount, threshold = np.float32(unsharp[0][i]), np.float32(unsharp[1][i])
                blurred = np.where(np.abs(diff) >= threshold, orig + amount * diff, orig)
            o.array[...] = store_numpy(blurred, o.dtype)
        return out
    channels = uniform_channels(src)
    packed = _packed(key, weights, channels)
    fused, radius = packed.fused, packed.radius
    w_dev, taps_dev = upload_blob("filters:weights", packed.blob, "cuda", stream)
    mode, amount_ptr, threshold_ptr = 0, w_dev, w_dev  # unread when mode is 0
    if unsharp is not None:
        params = upload("filters:unsharp", np.stack([unsharp[0], unsharp[1]]).astype(np.float32), "cuda", stream)
        mode, amount_ptr, threshold_ptr = 1, np.uint64(params.data.ptr), np.uint64(params.data.ptr + 4 * params.shape[1])
    if fused:
        view = readable_source(src, out, stream)  # blocks read halos that other blocks write
        oview = batch_view(out, stream)
        grid = (-(-view.max_width // TILE[0]), -(-view.max_height // TILE[1]), view.count)
        launch(
            _tile_kernel(radius, src.dtype), grid, (256, 1, 1),
            kernel_args(np.uint64(view.base), view.table, np.uint64(oview.base), oview.table, w_dev, taps_dev, code,
                        float(value), mode, amount_ptr, threshold_ptr, channels),
            stream, shared_mem=tile_smem_bytes(radius, channels),
        )
        return out
    view, oview = batch_view(src, stream), batch_view(out, stream)
    tmp = scratch("filters:separable", span_bytes(src) // src.dtype.itemsize * 4 + 4, "cuda")
    grid = grid_for(view, BLOCK)
    launch(
        _kernel("sep_h", src.dtype), grid, BLOCK + (1,),
        kernel_args(np.uint64(view.base), view.table, np.uint64(tmp.ptr), w_dev, taps_dev, code, float(value), channels),
        stream,
    )
    launch(
        _kernel("sep_v", src.dtype), grid, BLOCK + (1,),
        kernel_args(np.uint64(tmp.ptr), view.table, np.uint64(oview.base), oview.table, w_dev, taps_dev, code, float(value),
                    mode, np.uint64(view.base), amount_ptr, threshold_ptr, channels),
        stream,
    )
    return out


def _conv(src: Source, kernels: np.ndarray, border: str, value: float, out: Source | None, stream: Any) -> Source:
    """Dense 2-D correlation (or the magnitude of two), one launch per batch."""
    code = _check(src, border)
    out = prepare_out(src, out)
    kernels = np.asarray(kernels, np.float32)
    if src.device == "cpu":
        for s, o, _ in pairs(src, out):
            o.array[...] = store_numpy(_conv2d_numpy(s.array, kernels, border, value), o.dtype)
        return out
    view = readable_source(src, out, stream)
    oview = batch_view(out, stream)
    w_dev = upload("filters:conv", kernels.reshape(-1), "cuda", stream)
    nk, kh, kw = kernels.shape
    launch(
        _kernel("conv2d", src.dtype), grid_for(view, BLOCK), BLOCK + (1,),
        kernel_args(np.uint64(view.base), view.table, np.uint64(oview.base), oview.table, w_dev, kh, kw, nk, code,
                    float(value), uniform_channels(src)),
        stream,
    )
    return out


# ============================================================================ public ops
def _positive(values: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{name} must be > 0 and finite, got {values.tolist()}")


@functools.lru_cache(maxsize=256)
def gaussian_kernel(sigma: float, radius: int) -> np.ndarray:
    """The 1-D gaussian weights of cv2.getGaussianKernel(2 * radius + 1, sigma), normalised.

    Example:
        >>> gaussian_kernel(1.0, 1).round(3).tolist()
        [0.274, 0.452, 0.274]
    """
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def default_radius(sigma: float, dtype: Any = np.uint8) -> int:
    """OpenCV's kernel size for a sigma: round(sigma * (3 for uint8, else 4) * 2 + 1) | 1, halved.

    Example:
        >>> default_radius(3.0)
        9
    """
    truncate = 3 if np.dtype(dtype) == np.uint8 else 4
    ksize = int(round(sigma * truncate * 2 + 1)) | 1
    return ksize // 2


def _radii(src: Source, sigmas: np.ndarray, radius: Any) -> np.ndarray:
    if radius is None:
        return np.array([default_radius(s, src.dtype) for s in sigmas], np.int64)
    radii = per_sample(radius, len(sigmas), "radius", np.float64)
    if np.any(radii < 0) or np.any(radii != np.round(radii)):
        raise ValueError(f"radius must be a non-negative int (or one per image), got {radii.tolist()}")
    return radii.astype(np.int64)


@register_op
def gaussian_blur(
    src: Source,
    sigma: float | Sequence[float],
    radius: int | Sequence[int] | None = None,
    border: str = "reflect",
    value: float = 0.0,
    *, out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Gaussian blur, separable (two passes), any sigma; matches ``cv2.GaussianBlur``.

    ``sigma``: one value or one per image of a batch (> 0). ``radius``: taps each side
    (kernel size ``2 * radius + 1``); None picks OpenCV's size for the sigma, so
    ``gaussian_blur(img, 3)`` equals ``cv2.GaussianBlur(a, (19, 19), 3)``. ``border``: see
    the module docstring (default "reflect" = cv2.BORDER_REFLECT_101). ``out=src`` works
    in place (the middle pass lives in a workspace buffer).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((8, 8, 1), 10, np.uint8), device="cpu")
        >>> int(gaussian_blur(img, 1.5).array.max())
        10
    """
    check_src(src, channels=_CHANNELS, dtypes=_DTYPES)
    sigmas = per_sample(sigma, _count(src), "sigma", np.float64)
    _positive(sigmas, "sigma")
    radii = _radii(src, sigmas, radius)
    weights = [gaussian_kernel(float(s), int(r)) for s, r in zip(sigmas, radii)]
    return _separable(src, weights, border, value, out, stream, key=("gauss", sigmas.tobytes(), radii.tobytes()))


@register_op
def box_blur(
    src: Source,
    radius: int | Sequence[int],
    border: str = "reflect",
    value: float = 0.0,
    *, out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Mean over a (2 * radius + 1) square; matches ``cv2.blur(a, (k, k))`` (k = 2r + 1).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((8, 8, 3), 7, np.uint8), device="cpu")
        >>> int(box_blur(img, 2).array[4, 4, 0])
        7
    """
    check_src(src, channels=_CHANNELS, dtypes=_DTYPES)
    radii = per_sample(radius, _count(src), "radius", np.float64)
    if np.any(radii < 0) or np.any(radii != np.round(radii)):
        raise ValueError(f"radius must be a non-negative int (or one per image), got {radii.tolist()}")
    weights = [np.full(2 * int(r) + 1, 1.0 / (2 * int(r) + 1)) for r in radii]
    return _separable(src, weights, border, value, out, stream, key=("box", radii.tobytes()))


@register_op
def unsharp_mask(
    src: Source,
    sigma: float | Sequence[float] = 1.0,
    amount: float | Sequence[float] = 1.0,
    threshold: float | Sequence[float] = 0.0,
    radius: int | Sequence[int] | None = None,
    border: str = "reflect",
    *, out: Source | None = None,
    stream: Any = None,
) -> Source:
    """``src + amount * (src - gaussian_blur(src, sigma))`` where the difference >= threshold.

    The same as ``skimage.filters.unsharp_mask(a, radius=sigma, amount=amount,
    preserve_range=True)`` with ``border="edge"`` and ``radius=round(4 * sigma)``; pixels
    whose difference to the blur is under ``threshold`` stay as they are (Pillow's
    UnsharpMask threshold). Two passes, the second fused with the sharpening.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((8, 8, 3), 9, np.uint8), device="cpu")
        >>> int(unsharp_mask(img, 1.0, 2.0).array[0, 0, 0])
        9
    """
    check_src(src, channels=_CHANNELS, dtypes=_DTYPES)
    n = _count(src)
    sigmas = per_sample(sigma, n, "sigma", np.float64)
    _positive(sigmas, "sigma")
    amounts = per_sample(amount, n, "amount")
    thresholds = per_sample(threshold, n, "threshold")
    if not np.all(np.isfinite(amounts)) or np.any(thresholds < 0):
        raise ValueError(f"amount must be finite and threshold >= 0, got {amounts.tolist()}, {thresholds.tolist()}")
    radii = _radii(src, sigmas, radius)
    weights = [gaussian_kernel(float(s), int(r)) for s, r in zip(sigmas, radii)]
    key = ("gauss", sigmas.tobytes(), radii.tobytes())
    return _separable(src, weights, border, 0.0, out, stream, unsharp=(amounts, thresholds), key=key)


def _sharpen_kernel(amount: float) -> np.ndarray:
    """centre + amount * (centre - mean of the 8 neighbours); amount 1 is Pillow's SHARPEN."""
    k = np.full((3, 3), -amount / 8.0)
    k[1, 1] = 1.0 + amount
    return k


@register_op
def sharpen(src: Source, amount: float = 1.0, border: str = "reflect", *, out: Source | None = None, stream: Any = None) -> Source:
    """3x3 sharpening: ``c + amount * (c - mean(8 neighbours))``.

    ``amount=1`` is Pillow's ``ImageFilter.SHARPEN`` kernel (32 centre, -2 around, / 16).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((6, 6, 1), 50, np.uint8), device="cpu")
        >>> int(sharpen(img, 2.0).array[3, 3, 0])
        50
    """
    if not np.isfinite(amount):
        raise ValueError(f"amount must be finite, got {amount!r}")
    return _conv(src, _sharpen_kernel(float(amount))[None], border, 0.0, out, stream)


@register_op
def convolve(
    src: Source,
    kernel: Any,
    border: str = "reflect",
    value: float = 0.0,
    *, out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Correlate with a small 2-D ``kernel`` (anchor at its centre), like ``cv2.filter2D``.

    Each channel is filtered independently; results are rounded and saturated to the
    dtype. Kernels up to 31x31 (larger ones belong to an FFT, not a direct sum).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((6, 6, 1), 4, np.uint8), device="cpu")
        >>> int(convolve(img, np.ones((3, 3)) / 9).array[2, 2, 0])
        4
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or not (1 <= k.shape[0] <= 31 and 1 <= k.shape[1] <= 31) or not np.all(np.isfinite(k)):
        raise ValueError(f"kernel must be a finite 2-D array of 1..31 x 1..31 values, got shape {k.shape}")
    return _conv(src, k[None], border, value, out, stream)


_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)


@register_op
def sobel(src: Source, border: str = "reflect", *, out: Source | None = None, stream: Any = None) -> Source:
    """Edge magnitude ``sqrt(gx**2 + gy**2)`` of the 3x3 Sobel derivatives, per channel.

    gx and gy are ``cv2.Sobel(a, cv2.CV_32F, 1, 0)`` and ``(0, 1)`` (same border); the
    magnitude is rounded and saturated to the source dtype. One launch.

    Example:
        >>> import numpy as np, gpuimg
        >>> a = np.zeros((6, 6, 1), np.uint8); a[:, 3:] = 100
        >>> int(sobel(gpuimg.Image.from_array(a, device="cpu")).array[2, 3, 0])
        255
    """
    return _conv(src, np.stack([_SOBEL_X, _SOBEL_X.T]), border, 0.0, out, stream)


@register_op
def median_blur(src: Source, size: int, *, out: Source | None = None, stream: Any = None) -> Source:
    """Median of each ``size`` x ``size`` window (odd, 3..9), replicated borders.

    Matches ``cv2.medianBlur(a, size)`` exactly (which also replicates borders).

    Example:
        >>> import numpy as np, gpuimg
        >>> a = np.zeros((5, 5, 1), np.uint8); a[2, 2] = 255
        >>> int(median_blur(gpuimg.Image.from_array(a, device="cpu"), 3).array[2, 2, 0])
        0
    """
    check_src(src, channels=_CHANNELS, dtypes=_DTYPES)
    if not isinstance(size, int | np.integer) or size % 2 == 0 or not 3 <= size <= MAX_MEDIAN_SIZE:
        raise ValueError(f"size must be an odd int from 3 to {MAX_MEDIAN_SIZE}, got {size!r}")
    out = prepare_out(src, out)
    if src.device == "cpu":
        for s, o, _ in pairs(src, out):
            o.array[...] = _median_numpy(s.array, int(size))
        return out
    view = readable_source(src, out, stream)
    oview = batch_view(out, stream)
    channels = uniform_channels(src)
    if current_config().simd_median and src.dtype == np.uint8:
        grid = grid_for((-(-view.max_width * channels // 4), view.max_height, view.count), BLOCK)
        args = (np.uint64(view.base), view.table, np.uint64(oview.base), oview.table)
        launch(_median_simd_kernel(int(size)), grid, BLOCK + (1,), args, stream)
        return out
    launch(
        _median_kernel(int(size), src.dtype), grid_for(view, BLOCK), BLOCK + (1,),
        kernel_args(np.uint64(view.base), view.table, np.uint64(oview.base), oview.table, channels),
        stream,
    )
    return out

