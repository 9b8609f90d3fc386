"""Median blur: the per-(size, dtype) kernel, the packed-byte uint8 kernel, the generated
selection network, the NumPy twin, and median_blur."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ArgumentError
from ..registry import register_op
from .._engine.args import Source, check_src, uniform_channels
from .._engine.batch import BLOCK, batch_view, grid_for, kernel_args, launch, pairs, prepare_out, readable_source
from .._engine.cache import memoized
from .._engine.kernels import PRELUDE as CUDA_PRELUDE, compiled as raw_kernel, current_config, dtype_entries, dtype_suffix
from ._common import _CHANNELS, _DTYPES, _one_dtype

MAX_MEDIAN_SIZE = 9  # the per-thread window lives in registers/local memory: 81 values


# ============================================================================ CUDA kernels
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


@memoized("median:networks", max_items=64)  # one network per window area
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


@memoized("median:simd-sources", max_items=64)  # one source per variant, not per call
def _median_simd_source(size: int) -> str:
    entry = (
        f'extern "C" __global__ void median{size}_u8x4(const void* src, const long long* tab, void* dst, '
        f"const long long* otab) {{ median_u8x4<{size}>(src, tab, dst, otab); }}"
    )
    network = "\n    ".join(median_network(size * size)[0])
    return CUDA_PRELUDE + _MEDIAN_SIMD_SOURCE.replace("MEDIAN_NETWORK", network) + entry


def _median_simd_kernel(size: int) -> Any:
    return raw_kernel(_median_simd_source(size), f"median{size}_u8x4")


@memoized("median:sources", max_items=64)  # one source per variant, not per call
def _median_source(size: int, dtype: np.dtype) -> str:
    params = "const void* src, const long long* tab, void* dst, const long long* otab"
    entry = _one_dtype(dtype_entries(f"median{size}", "median", params, "src, tab, dst, otab", "{t}, {c}, %d" % size), dtype)
    network = "\n        ".join(median_network(size * size)[0])
    return CUDA_PRELUDE + _MEDIAN_SOURCE.replace("MEDIAN_NETWORK", network) + entry


def _median_kernel(size: int, dtype: np.dtype) -> Any:
    return raw_kernel(_median_source(size, dtype), f"median{size}_{dtype_suffix(dtype)}")


# ============================================================================ NumPy reference
def _median_numpy(arr: np.ndarray, size: int) -> np.ndarray:
    r = size // 2
    padded = np.pad(arr, ((r, r), (r, r), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(0, 1))
    flat = windows.reshape(*arr.shape, size * size)
    return np.partition(flat, size * size // 2, axis=-1)[..., size * size // 2]



# ============================================================================ public op
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
        raise ArgumentError(f"size must be an odd int from 3 to {MAX_MEDIAN_SIZE}, got {size!r}")
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
