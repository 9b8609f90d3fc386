"""Helpers shared by the geometry ops: source checks, sizes, output preparation, fills."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ArgumentError
from ...image import CHANNELS, DTYPES, Image, ImageBatch
from .._engine.args import Source, check_src, uniform_channels
from .._engine.batch import prepare_out
from .._engine.cache import memoized

_DTYPES = tuple(d.name for d in DTYPES)
_CHANNELS = CHANNELS


# ============================================================================ helpers
_DTYPE_SET = frozenset(np.dtype(d) for d in _DTYPES)


def _check(src: Source) -> int:
    """Validate src; the channel count a kernel launch dispatches on."""
    if isinstance(src, Image) and src.dtype in _DTYPE_SET and src.channels in _CHANNELS:
        return src.channels  # the common case, without check_src's list building
    check_src(src, channels=_CHANNELS, dtypes=_DTYPES)
    return uniform_channels(src)


def _shapes(src: Source) -> list[tuple[int, int, int]]:
    return src.shapes if isinstance(src, ImageBatch) else [src.shape]


def _is_size(size: Any) -> bool:
    return isinstance(size, tuple | list) and len(size) == 2 and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1 for v in size)


def _sizes(size: Any, count: int, name: str = "size") -> list[tuple[int, int]]:
    """(height, width) per image from one pair or a list of pairs; ValueError otherwise."""
    if _is_size(size):  # the common case, without NumPy's overhead
        return [(int(size[0]), int(size[1]))] * count
    arr = np.asarray(size)
    if arr.ndim == 1:
        arr = np.broadcast_to(arr, (count, arr.shape[0]))
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] != count:
        raise ArgumentError(f"{name} must be (height, width) or one (height, width) per image ({count}), got {size!r}")
    if not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1):
        raise ArgumentError(f"{name} must hold positive ints (height, width), got {size!r}")
    return [(int(h), int(w)) for h, w in arr]


def _result(src: Source, out: Source | None, shapes: list[tuple[int, int, int]]) -> Source:
    """``out`` with the result's shapes; out=src is refused when the shape would change."""
    if out is not None and out is src and shapes != _shapes(src):
        raise ArgumentError(f"out=src (in place) needs the same shape; this result has shapes {shapes[:4]}")
    return prepare_out(src, out, shapes if isinstance(src, ImageBatch) else shapes[0])


def _fill(value: Any, name: str = "fill") -> np.ndarray:
    """A scalar or per-channel background as 4 float32 values (cached: called per op call)."""
    key = value if isinstance(value, int | float) else tuple(np.asarray(value, dtype=np.float64).reshape(-1).tolist())
    return _fill_cached(key, name)


@memoized("geometry:fills", max_items=64)
def _fill_cached(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size not in (1, 3, 4) or not np.all(np.isfinite(arr)):
        raise ArgumentError(f"{name} must be a number or 3/4 channel values, got {value!r}")
    out = np.zeros(4, np.float32)
    out[:] = arr[0] if arr.size == 1 else 0
    out[: arr.size] = arr
    if arr.size == 3:
        out[3] = 255.0  # an RGB colour on RGBA images is opaque
    return out
