"""Kernel helpers shared by geometry.py and filters.py (private).

- Border modes: one name list, one NumPy index map and one CUDA index map with the same
  semantics, so the CPU path (the oracle) and the GPU kernels agree by construction.
- CUDA snippets every kernel of the two families includes (border map, saturating store).
- :func:`upload`: small per-call parameter arrays (weights, per-sample rows) go to a
  named scratch buffer, uploaded only when their bytes changed since the last call.
- :func:`readable_source`: what an in-place neighbourhood/remap op reads from (a scratch
  copy of the source when ``out`` shares its memory).
- :func:`dtype_suffix` / :func:`grid_for`: kernel name per dtype and the launch grid.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np

from ..memory import scratch
from ._common import BatchView, Source, batch_view, count_launch, get_stream

__all__ = [
    "BORDERS",
    "CV2_BORDERS",
    "check_border",
    "border_index",
    "BLOCK",
    "CUDA_PRELUDE",
    "upload",
    "readable_source",
    "dtype_suffix",
    "grid_for",
    "store_numpy",
    "span_bytes",
    "Blob",
    "pack",
    "upload_blob",
    "pairs",
    "kernel_args",
]

# Border names (NumPy's np.pad names) and the OpenCV border each one is:
#   "reflect"   -> cv2.BORDER_REFLECT_101  (dcb|abcd|cba), the default of cv2 filters
#   "symmetric" -> cv2.BORDER_REFLECT      (cba|abcd|dcb)
#   "edge"      -> cv2.BORDER_REPLICATE    (aaa|abcd|ddd)
#   "wrap"      -> cv2.BORDER_WRAP         (bcd|abcd|abc)
#   "constant"  -> cv2.BORDER_CONSTANT     (vvv|abcd|vvv)
BORDERS = ("reflect", "symmetric", "edge", "wrap", "constant")
CV2_BORDERS = {"reflect": 4, "symmetric": 2, "edge": 1, "wrap": 3, "constant": 0}
_BORDER_CODE = {name: i for i, name in enumerate(BORDERS)}


def check_border(border: Any, name: str = "border") -> int:
    """The kernel code of ``border``; ValueError naming the allowed names otherwise."""
    if border not in _BORDER_CODE:
        raise ValueError(f"{name}={border!r} is not a border mode; use one of {BORDERS}")
    return _BORDER_CODE[border]


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


# The same map in CUDA (mode codes follow BORDERS), plus typed saturating stores.
BLOCK = (32, 8)  # threads per block of the 2-D (x, y, image) kernels: a warp spans 32 pixels of a row

CUDA_PRELUDE = r"""
typedef unsigned char u8;
typedef unsigned short u16;
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
// One image of a batch: table row (offset bytes, height, width, pitch bytes, channels).
struct Slot { long long offset, height, width, pitch, channels; };
__device__ __forceinline__ Slot slot(const long long* table, int b) {
    const long long* r = table + 5 * (long long)b;
    Slot s = {r[0], r[1], r[2], r[3], r[4]};
    return s;
}
template <typename T> __device__ __forceinline__ T* row_ptr(const void* base, const Slot& s, long long y) {
    return (T*)((char*)base + s.offset + y * s.pitch);
}
"""


def store_numpy(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float results to ``dtype`` the way the CUDA ``store`` does (round half even, saturate)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def dtype_suffix(dtype: np.dtype) -> str:
    """Kernel-name suffix of a pixel dtype: u8, u16 or f32."""
    return {"uint8": "u8", "uint16": "u16", "float32": "f32"}[np.dtype(dtype).name]


def grid_for(view: BatchView | tuple[int, int, int], block: tuple[int, int] = BLOCK) -> tuple[int, int, int]:
    """Grid covering (max width, max height, count) with ``block`` threads (one per pixel)."""
    if isinstance(view, BatchView):
        width, height, count = view.max_width, view.max_height, view.count
    else:
        width, height, count = view
    return (-(-width // block[0]), -(-height // block[1]), count)


_uploaded = threading.local()


def upload(name: str, host: np.ndarray, device: str, stream: Any = None, token: Any = None) -> Any:
    """``host`` (a small parameter array) on the device, in the scratch buffer ``name``.

    The copy is skipped when the same bytes were uploaded last time (or, cheaper, when the
    caller passes the same ``token`` object as last time: a cached plan), so a steady
    stream of identical calls does no host-to-device traffic. The copy is ordered on
    ``stream`` like the kernels that read it.
    """
    host = np.ascontiguousarray(host)
    buf = scratch(name, max(host.nbytes, 1), device)
    last = getattr(_uploaded, "last", None)
    if last is None:
        last = _uploaded.last = {}
    key = (device, name)
    prev = last.get(key)
    same_layout = prev is not None and prev[0] == buf.generation and prev[2].dtype == host.dtype and prev[2].shape == host.shape
    if same_layout and (prev[1] is token if token is not None else np.array_equal(prev[2], host)):
        return prev[3]  # unchanged: no copy, and the device view is re-used (building one costs ~10 us)
    view = prev[3] if same_layout else buf.view(0, host.shape, host.dtype, host.strides)
    view.set(host, stream=get_stream(stream))
    # keep the token alive so its identity cannot be reused by another object
    last[key] = (buf.generation, token, host if token is not None else host.copy(), view)
    return view


class Blob(NamedTuple):
    """Several small parameter arrays packed into one upload, and each one's byte offset."""

    data: np.ndarray
    offsets: tuple[int, ...]


def pack(*arrays: np.ndarray) -> Blob:
    """Pack ``arrays`` (each 16-byte aligned) into one uint8 array, so a call uploads once.

    Example:
        >>> b = pack(np.zeros(3, np.int32), np.ones(2, np.float32))
        >>> b.offsets, b.data.size
        ((0, 16), 24)
    """
    offsets, chunks, size = [], [], 0
    for a in arrays:
        raw = np.ascontiguousarray(a).view(np.uint8).reshape(-1)
        pad = -size % 16
        chunks += [np.zeros(pad, np.uint8), raw]
        offsets.append(size + pad)
        size += pad + raw.size
    return Blob(np.concatenate(chunks) if chunks else np.zeros(0, np.uint8), tuple(offsets))


def upload_blob(name: str, blob: Blob, device: str, stream: Any = None) -> tuple[np.uint64, ...]:
    """Upload a cached :class:`Blob` (skipped when the same blob was the last one) -> pointers."""
    view = upload(name, blob.data, device, stream, token=blob)
    base = int(view.data.ptr)
    return tuple(np.uint64(base + off) for off in blob.offsets)


def span_bytes(src: Source) -> int:
    """Bytes from ``src.data_ptr`` to the end of its last pixel."""
    if hasattr(src, "used_bytes"):
        return int(src.used_bytes)
    return (src.height - 1) * src.pitch + src.row_bytes


def readable_source(src: Source, out: Source, stream: Any = None, name: str = "inplace") -> BatchView:
    """The batch view a kernel reads ``src`` through: a scratch copy when ``out`` aliases it.

    An op that reads neighbours (or other positions) of the pixel it writes cannot run in
    place on one buffer; the copy goes to the workspace, never a fresh allocation.
    """
    view = batch_view(src, stream)
    if src.device != "cuda" or src.data_ptr != out.data_ptr:
        return view
    import cupy

    nbytes = span_bytes(src)
    buf = scratch(name, nbytes, "cuda")
    cupy.cuda.runtime.memcpyAsync(buf.ptr, src.data_ptr, nbytes, 3, get_stream(stream).ptr)
    count_launch()  # a device copy is a pass over memory too: count it honestly
    return view._replace(base=buf.ptr)


def pairs(src: Source, out: Source) -> list[tuple[Any, Any, int]]:
    """(source image, output image, index) per image: what the NumPy paths loop over."""
    if hasattr(src, "images"):
        return [(s, o, i) for i, (s, o) in enumerate(zip(src.images, out.images))]
    return [(src, out, 0)]


def kernel_args(*values: Any) -> tuple[Any, ...]:
    """Kernel arguments with explicit C types: Python ints become int32, floats float32.

    Pointers are passed as ``np.uint64`` by the caller; CuPy would otherwise pass a
    Python int as 64-bit, which a kernel declaring ``int`` would misread.
    """
    out = []
    for v in values:
        if isinstance(v, bool | int) and not isinstance(v, np.integer):
            out.append(np.int32(v))
        elif isinstance(v, float):
            out.append(np.float32(v))
        else:
            out.append(v)
    return tuple(out)
