"""Argument checks every op shares: one copy each, clear errors naming the bad value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import check_choice
from ...image import Image, ImageBatch

__all__ = ["Source", "check_src", "uniform_channels", "per_sample", "check_range", "BORDERS", "check_border"]

Source = Image | ImageBatch

# Border names (NumPy's np.pad names) and the OpenCV border each one is:
#   "reflect"   -> cv2.BORDER_REFLECT_101  (dcb|abcd|cba), the default of cv2 filters
#   "symmetric" -> cv2.BORDER_REFLECT      (cba|abcd|dcb)
#   "edge"      -> cv2.BORDER_REPLICATE    (aaa|abcd|ddd)
#   "wrap"      -> cv2.BORDER_WRAP         (bcd|abcd|abc)
#   "constant"  -> cv2.BORDER_CONSTANT     (vvv|abcd|vvv)
# The kernel code of a border is its index here (the CUDA ``map_border`` follows it).
BORDERS = ("reflect", "symmetric", "edge", "wrap", "constant")
_BORDER_CODE = {name: i for i, name in enumerate(BORDERS)}


def check_border(border: Any, name: str = "border") -> int:
    """The kernel code of ``border``; ValueError naming the allowed names otherwise."""
    return _BORDER_CODE[check_choice(border, name, BORDERS, "a border mode")]


def check_src(src: Any, name: str = "src", channels: Sequence[int] | None = None, dtypes: Sequence[Any] | None = None) -> None:
    """Raise a clear TypeError/ValueError unless ``src`` is an Image/ImageBatch that fits."""
    if not isinstance(src, Image | ImageBatch):
        raise TypeError(f"{name} must be a gpuimg.Image or ImageBatch, got {type(src).__name__}")
    if dtypes is not None and src.dtype not in [np.dtype(d) for d in dtypes]:
        allowed = [np.dtype(d).name for d in dtypes]
        raise ValueError(f"{name} has dtype {src.dtype.name}; this op takes {allowed}")
    if channels is not None:
        have = {s[2] for s in src.shapes} if isinstance(src, ImageBatch) else {src.channels}
        bad = have - set(channels)
        if bad:
            raise ValueError(f"{name} has {sorted(bad)} channels; this op takes {list(channels)}")


def uniform_channels(src: Source) -> int:
    """The channel count of ``src``: a kernel launch handles one, so a batch mixing them is refused."""
    if isinstance(src, Image):
        return src.channels
    channels = src.uniform_channels
    if channels is None:
        raise ValueError(f"src mixes channel counts {sorted({s[2] for s in src.shapes})}; this op needs one per batch")
    return channels


def per_sample(value: Any, count: int, name: str, dtype: Any = np.float32) -> np.ndarray:
    """``value`` as one entry per image: a scalar is repeated, a sequence must have ``count``."""
    if np.ndim(value) == 0:
        return np.full(count, value, dtype=dtype)
    arr = np.asarray(value, dtype=dtype)
    if arr.shape[0] != count:
        raise ValueError(f"{name} has {arr.shape[0]} values for {count} images; give one value or one per image")
    return arr


def check_range(value: Any, name: str, low: float, high: float) -> None:
    """ValueError naming ``name`` unless ``value`` (a number or one per image) is in [low, high]."""
    if isinstance(value, int | float) and not isinstance(value, bool):  # the common case, without NumPy
        if not low <= value <= high:
            raise ValueError(f"{name}={value!r} is out of range; allowed values are in [{low}, {high}]")
        return
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < low) or np.any(arr > high):
        raise ValueError(f"{name}={value!r} is out of range; allowed values are in [{low}, {high}]")
