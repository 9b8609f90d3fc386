"""Separable filters: the shared-memory tile kernel (one module per radius and dtype),
the two-pass fallback driver, their NumPy twin, and gaussian_blur, box_blur, unsharp_mask."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ...errors import ArgumentError
from ..registry import register_op
from .._engine.args import Source, check_src, per_sample, uniform_channels
from .._engine.batch import BLOCK, batch_view, grid_for, kernel_args, launch, pairs, prepare_out, readable_source, span_bytes
from .._engine.cache import cache, memoized
from .._engine.kernels import PRELUDE as CUDA_PRELUDE, border_index, compiled as raw_kernel, dtype_entries, dtype_suffix, store_numpy
from .._engine.params import Blob, pack, upload, upload_blob
from ...memory import scratch
from ._common import _CHANNELS, _DTYPES, _check, _kernel, _one_dtype


# ============================================================================ CUDA kernels
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



@memoized("separable:sources", max_items=64)  # one source per (radius, dtype) variant
def _tile_source(radius: int, dtype: np.dtype) -> str:
    params = ("const void* src, const long long* tab, void* dst, const long long* otab, const float* w, const int* taps, "
              "int border, float cval, int mode, const float* amount, const float* threshold")
    args = "src, tab, dst, otab, w, taps, border, cval, mode, amount, threshold"
    entry = _one_dtype(dtype_entries(f"sep_tile{radius}", "sep_tile", params, args, "{t}, {c}, %d" % radius), dtype)
    return CUDA_PRELUDE + _TILE_SOURCE + entry


def _tile_kernel(radius: int, dtype: np.dtype) -> Any:
    return raw_kernel(_tile_source(radius, dtype), f"sep_tile{radius}_{dtype_suffix(dtype)}")



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


# ============================================================================ driver
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


_packed_weights = cache("separable:weights", max_items=64)


def _packed(key: Any, weights: Sequence[np.ndarray], channels: int) -> _Packed:

    def make() -> _Packed:
        radius = max(len(w) // 2 for w in weights)
        fused = radius <= MAX_TILE_RADIUS and tile_smem_bytes(radius, channels) <= _TILE_SMEM_LIMIT
        # the tile kernel has one compile-time radius: smaller kernels are padded with zeros
        w, taps = _pack_weights([np.pad(w, radius - len(w) // 2) for w in weights] if fused else weights)
        return _Packed(fused, radius, pack(w, taps))

    return _packed_weights.get_or_make((key, channels), make)


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



# ============================================================================ public ops
def _positive(values: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ArgumentError(f"{name} must be > 0 and finite, got {values.tolist()}")


@memoized("filters:gaussian-weights", max_items=256)
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
        raise ArgumentError(f"radius must be a non-negative int (or one per image), got {radii.tolist()}")
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
        raise ArgumentError(f"radius must be a non-negative int (or one per image), got {radii.tolist()}")
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

    skimage's definition (``skimage.filters.unsharp_mask(a, radius=sigma, amount=amount,
    preserve_range=True)``: ``a + amount * (a - gaussian(a, sigma, mode="reflect"))``, scipy's
    "reflect" being gpuimg's ``border="symmetric"``) with ``radius=round(4 * sigma)``, within
    1 level (tests/test_filters.py); the default border is "reflect" (OpenCV's). Pixels
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
        raise ArgumentError(f"amount must be finite and threshold >= 0, got {amounts.tolist()}, {thresholds.tolist()}")
    radii = _radii(src, sigmas, radius)
    weights = [gaussian_kernel(float(s), int(r)) for s, r in zip(sigmas, radii)]
    key = ("gauss", sigmas.tobytes(), radii.tobytes())
    return _separable(src, weights, border, 0.0, out, stream, unsharp=(amounts, thresholds), key=key)
