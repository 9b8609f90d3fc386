"""THE CUDA prelude, THE per-dtype entry generator, THE per-device compile cache, and the
tuning :class:`KernelConfig` of every op family.

- :data:`PRELUDE`: typedefs, the border map (same semantics as :func:`border_index`, the
  NumPy twin, so CPU oracle and GPU agree by construction), integer/float conversions,
  saturating stores and THE ``Slot`` (one row of an ImageBatch kernel table).
- :func:`dtype_entries`: one ``extern "C"`` entry per pixel dtype, dispatching on the
  channel count at run time to a template instance.
- :func:`compiled`: a kernel of a source, compiled once per device (NVRTC).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...device import device_key
from .cache import cache

__all__ = [
    "PRELUDE",
    "CTYPES",
    "dtype_suffix",
    "dtype_entries",
    "compiled",
    "border_index",
    "store_numpy",
    "KernelConfig",
    "kernel_config",
    "current_config",
]

PRELUDE = r"""
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;
__device__ __forceinline__ int map_border(int i, int n, int mode) {
    if (i >= 0 && i < n) return i;
    if (mode == 2) return i < 0 ? 0 : n - 1;
    if (mode == 3) { i %= n; return i < 0 ? i + n : i; }
    if (mode == 1) { int p = 2 * n; i %= p; if (i < 0) i += p; return i < n ? i : p - 1 - i; }
    if (mode == 0) {
        if (n == 1) return 0;
        int p = 2 * (n - 1); i %= p; if (i < 0) i += p; return i < n ? i : p - i;
    }
    return -1;
}
// Integer pixels to float without the (quarter-rate) I2F instruction: OR the value into
// the mantissa of 2^23 and subtract 2^23 (exact for values below 2^23).
__device__ __forceinline__ float to_f(u8 v) { return __int_as_float(0x4B000000 | v) - 8388608.f; }
__device__ __forceinline__ float to_f(u16 v) { return __int_as_float(0x4B000000 | v) - 8388608.f; }
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ void store(u8* p, float v) { *p = (u8)fminf(fmaxf(rintf(v), 0.f), 255.f); }
__device__ __forceinline__ void store(u16* p, float v) { *p = (u16)fminf(fmaxf(rintf(v), 0.f), 65535.f); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
// Conversions at full FP32 rate: I2F/F2I/FRND run at a quarter of it and would bound a
// byte-wise kernel below the memory bandwidth. The 2^23 magic-number forms are exact for
// the ranges used here (bytes; |x| < 2^22 for rounding).
__device__ __forceinline__ float b2f(u32 b) { return __int_as_float(0x4B000000u | b) - 8388608.f; }
__device__ __forceinline__ u32 f2b(float x) { return __float_as_uint(x + 8388608.f) & 0xFFu; }  // x integral, 0..255
__device__ __forceinline__ float rnd(float x) { return (x + 12582912.f) - 12582912.f; }  // rint (ties to even)
__device__ __forceinline__ float flr(float x) { const float r = rnd(x); return r > x ? r - 1.f : r; }
// torchvision stores uint8 results by truncation after a clamp; Pillow/OpenCV round.
__device__ __forceinline__ float q_trunc(float x) { return flr(fminf(fmaxf(x, 0.f), 255.f)); }
__device__ __forceinline__ float q_round(float x) { return rnd(fminf(fmaxf(x, 0.f), 255.f)); }
// torchvision's gray level (float weights 0.2989/0.587/0.114), floored as its uint8 ops do.
__device__ __forceinline__ float tv_gray(float r, float g, float b) {
    return flr(r * 0.2989f + g * 0.587f + b * 0.114f);
}
__device__ __forceinline__ unsigned short f2h(float f) {
    unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
// One image of a batch: table row (offset bytes, height, width, pitch bytes, channels);
// ``p`` is the image's first byte when the slot was read with its base pointer.
struct Slot { long long offset, height, width, pitch, channels; u8* p; };
__device__ __forceinline__ Slot slot(const long long* table, int b) {
    const long long* r = table + 5 * (long long)b;
    Slot s = {r[0], r[1], r[2], r[3], r[4], nullptr};
    return s;
}
__device__ __forceinline__ Slot slot(const u8* base, const i64* tab, int i) {
    const i64* r = tab + i * 5;
    Slot s = {r[0], r[1], r[2], r[3], r[4], (u8*)base + r[0]};
    return s;
}
template <typename T> __device__ __forceinline__ T* row_ptr(const void* base, const Slot& s, long long y) {
    return (T*)((char*)base + s.offset + y * s.pitch);
}
"""

CTYPES = {"u8": "u8", "u16": "u16", "f32": "float"}  # kernel-name suffix -> C type


def dtype_suffix(dtype: Any) -> str:
    """Kernel-name suffix of a pixel dtype: u8, u16 or f32.

    Example:
        >>> dtype_suffix(np.uint16)
        'u16'
    """
    return {"uint8": "u8", "uint16": "u16", "float32": "f32"}[np.dtype(dtype).name]


def dtype_entries(entry: str, template: str, params: str, args: str, instance: str = "{t}, {c}") -> str:
    """One ``extern "C" __global__ void {entry}_{u8,u16,f32}({params}, int C)`` per pixel
    dtype, each switching on the channel count C (1, 3, else 4) to ``template<instance>``.

    ``instance`` formats the template arguments from ``{t}`` (the C type) and ``{c}`` (the
    channel count), e.g. ``"{t}, {c}, 8"`` or ``"{t}, float, {t}, {c}"``.

    Example:
        >>> print(dtype_entries("k", "k_impl", "const void* src", "src").splitlines()[0])
        extern "C" __global__ void k_u8(const void* src, int C) { switch (C) { case 1: k_impl<u8, 1>(src); break; case 3: k_impl<u8, 3>(src); break; default: k_impl<u8, 4>(src); } }
    """
    lines = []
    for suffix, t in CTYPES.items():
        cases = [f"case {c}: {template}<{instance.format(t=t, c=c)}>({args}); break;" for c in (1, 3)]
        default = f"default: {template}<{instance.format(t=t, c=4)}>({args});"
        body = f"switch (C) {{ {' '.join(cases)} {default} }}"
        lines.append(f'extern "C" __global__ void {entry}_{suffix}({params}, int C) {{ {body} }}')
    return "\n".join(lines)


# Bounds: a run uses a few dozen kernels (families x dtypes x variants, fused chains); a
# module holds one source's entries, so modules are fewer than functions.
_modules = cache("kernels:modules", max_items=128)
_functions = cache("kernels:functions", max_items=512)
_compile_lock = threading.Lock()


def compiled(source: str, name: str, options: tuple[str, ...] = ("--std=c++17",)) -> Any:
    """The kernel ``name`` of CUDA ``source``, compiled once per device (NVRTC) and cached
    under (device id, source, options)."""
    key = (device_key("cuda"), source, options, name)
    return _functions.get_or_make(key, lambda: _compile(key))


def _compile(key: tuple[Any, ...]) -> Any:
    # One compile at a time: two threads missing the same kernel compile it once.
    with _compile_lock:
        fn = _functions.peek(key)
        if fn is None:
            device, source, options, name = key
            fn = _modules.get_or_make((device, source, options), lambda: _raw_module(source, options)).get_function(name)
        return fn


def _raw_module(source: str, options: tuple[str, ...]) -> Any:
    import cupy

    return cupy.RawModule(code=source, options=options)


def border_index(index: np.ndarray, n: int, border: str) -> np.ndarray:
    """Map (possibly out-of-range) indices into [0, n) like the CUDA ``map_border``; -1 = constant.

    Periodic forms, so any radius works (also radii larger than the image).

    Example:
        >>> border_index(np.array([-2, -1, 0, 3, 4]), 4, "reflect").tolist()
        [2, 1, 0, 3, 2]
    """
    i = np.asarray(index, dtype=np.int64)
    inside = (i >= 0) & (i < n)
    if border == "edge":
        m = np.clip(i, 0, n - 1)
    elif border == "wrap":
        m = np.mod(i, n)
    elif border == "symmetric":
        m = np.mod(i, 2 * n)
        m = np.where(m < n, m, 2 * n - 1 - m)
    elif border == "reflect":
        if n == 1:
            m = np.zeros_like(i)
        else:
            m = np.mod(i, 2 * (n - 1))
            m = np.where(m < n, m, 2 * (n - 1) - m)
    else:  # constant
        m = np.full_like(i, -1)
    return np.where(inside, i, m)


def store_numpy(values: np.ndarray, dtype: Any) -> np.ndarray:
    """Float results to ``dtype`` the way the CUDA ``store`` does (round half even, saturate)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


# ----------------------------------------------------------------------------- tuning


@dataclasses.dataclass(frozen=True)
class KernelConfig:
    """Kernel variants the ops choose among (the defaults are the measured best).

    ``simd_median``: uint8 median blur uses the packed-byte kernel (False: one thread per
    pixel). ``two_pass``: resize may split into two separable passes when that does less
    work (False: always the fused one-pass kernel). ``small_taps``: resize row windows up
    to this many taps use the unrolled kernel.

    Example:
        >>> KernelConfig().small_taps
        8
    """

    simd_median: bool = True
    two_pass: bool = True
    small_taps: int = 8  # 2x downscale bilinear needs 5


_config: contextvars.ContextVar[KernelConfig] = contextvars.ContextVar("gpuimg_kernel_config", default=KernelConfig())


def current_config() -> KernelConfig:
    """The :class:`KernelConfig` in effect here (see :func:`kernel_config`)."""
    return _config.get()


@contextlib.contextmanager
def kernel_config(**changes: Any) -> Iterator[KernelConfig]:
    """Run a block with some :class:`KernelConfig` fields changed (scoped to this context).

    Example:
        >>> with kernel_config(two_pass=False) as cfg:
        ...     cfg.two_pass, current_config().two_pass
        (False, False)
        >>> current_config().two_pass
        True
    """
    config = dataclasses.replace(_config.get(), **changes)
    token = _config.set(config)
    try:
        yield config
    finally:
        _config.reset(token)
