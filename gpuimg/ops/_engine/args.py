"""Argument checks every op shares: one copy each, clear errors naming the bad value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ArgumentError, ArgumentTypeError, check_choice
from ...image import Image, ImageBatch

__all__ = ["Source", "as_source", "is_array_like", "check_src", "uniform_channels", "per_sample", "number", "numbers", "check_range", "BORDERS", "check_border"]

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
    """The kernel code of ``border``; ArgumentError naming the allowed names otherwise."""
    return _BORDER_CODE[check_choice(border, name, BORDERS, "a border mode")]


def is_array_like(value: Any) -> bool:
    """Whether ``value`` is an array an Image can wrap without a copy (NumPy, CuPy, torch,
    JAX, Numba: anything exposing the array interface, ``__cuda_array_interface__`` or
    ``__dlpack__``); lists and scalars are not.

    Example:
        >>> is_array_like(np.zeros((2, 2))), is_array_like([[0, 0]])
        (True, False)
    """
    return isinstance(value, np.ndarray) or any(
        hasattr(value, attr) for attr in ("__cuda_array_interface__", "__dlpack__", "__array_interface__"))


def as_source(value: Any, name: str = "src") -> Any:
    """``value`` as an op source: an array in HWC (or HW for gray) wrapped zero-copy by
    :meth:`Image.from_array` (the op's result is then an Image); anything else unchanged
    (:func:`check_src` judges it). ArgumentError naming ``name`` for a layout that cannot be
    wrapped (a CHW tensor gets how to pass it channel-last).

    Example:
        >>> a = np.zeros((4, 6, 3), np.uint8)
        >>> img = as_source(a); img.shape, img.array.base is not None
        ((4, 6, 3), True)
        >>> as_source(np.zeros((3, 32, 48), np.uint8), "dst")
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: dst: array of shape (3, 32, 48) looks channel-first (CHW: ...
    """
    if isinstance(value, Image | ImageBatch) or not is_array_like(value):
        return value
    try:
        return Image.from_array(value)
    except ValueError as exc:
        raise ArgumentError(f"{name}: {exc}", argument=name) from None


def check_src(src: Any, name: str = "src", channels: Sequence[int] | None = None, dtypes: Sequence[Any] | None = None) -> None:
    """Raise a clear TypeError/ValueError unless ``src`` is an Image/ImageBatch that fits."""
    if not isinstance(src, Image | ImageBatch):
        raise ArgumentTypeError(f"{name} must be a gpuimg.Image or ImageBatch, or an (H, W[, C]) NumPy/CuPy array or "
                                f"torch tensor, got {type(src).__name__}")
    if dtypes is not None and src.dtype not in [np.dtype(d) for d in dtypes]:
        allowed = [np.dtype(d).name for d in dtypes]
        raise ArgumentError(f"{name} has dtype {src.dtype.name}; this op takes {allowed}", argument=name,
                            value=src.dtype.name)
    if channels is not None:
        have = {s[2] for s in src.shapes} if isinstance(src, ImageBatch) else {src.channels}
        bad = have - set(channels)
        if bad:
            raise ArgumentError(f"{name} has {sorted(bad)} channels; this op takes {list(channels)}", argument=name,
                                value=sorted(bad))


def uniform_channels(src: Source) -> int:
    """The channel count of ``src``: a kernel launch handles one, so a batch mixing them is refused."""
    if isinstance(src, Image):
        return src.channels
    channels = src.uniform_channels
    if channels is None:
        raise ArgumentError(f"src mixes channel counts {sorted({s[2] for s in src.shapes})}; this op needs one per batch")
    return channels


def per_sample(value: Any, count: int, name: str, dtype: Any = np.float32, *, finite: bool = True) -> np.ndarray:
    """``value`` as one entry per image: a scalar is repeated, a sequence must have ``count``.

    Refused, naming ``name``: anything that is not a number or a flat sequence of numbers
    (a string such as "2" is a TypeError, not converted), NaN or infinity unless
    ``finite=False``, and a fraction where ``dtype`` is an integer type (never truncated).

    Example:
        >>> per_sample(3, 2, "radius", np.int64).tolist()
        [3, 3]
        >>> per_sample(1.5, 1, "top", np.int64)
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: top must be an int (or one int per image), got 1.5
    """
    kind = np.dtype(dtype).kind
    if isinstance(value, int | float) and not isinstance(value, bool):  # the common case, without checks on arrays
        if finite and not math.isfinite(value):
            raise ArgumentError(f"{name} must be finite, got {value!r}", argument=name, value=value)
        if kind in "iu" and value != int(value):
            raise ArgumentError(f"{name} must be an int (or one int per image), got {value!r}",
                                argument=name, value=value)
        return np.full(count, value, dtype=dtype)
    raw = np.asarray(value) if not isinstance(value, str | bytes) else None
    if raw is None or raw.dtype.kind not in "biuf" or raw.ndim > 1:
        raise ArgumentTypeError(f"{name} must be a number or one number per image, got {value!r}",
                                argument=name, value=value)
    arr = raw.astype(np.float64)
    if finite and not np.all(np.isfinite(arr)):
        raise ArgumentError(f"{name} must be finite, got {value!r}", argument=name, value=value)
    if kind in "iu" and np.any(arr != np.round(arr)):
        raise ArgumentError(f"{name} must be an int (or one int per image), got {value!r}", argument=name, value=value)
    if raw.ndim == 0:
        return np.full(count, arr, dtype=dtype)
    if arr.shape[0] != count:
        raise ArgumentError(f"{name} has {arr.shape[0]} values for {count} images; give one value or one per image",
                            argument=name, value=value)
    return arr.astype(dtype)


def number(value: Any, name: str, *, integer: bool = False, low: float | None = None, high: float | None = None) -> Any:
    """``value`` as a finite Python float (int with ``integer``), within [low, high];
    ArgumentTypeError/ArgumentError naming ``name`` otherwise (strings are not converted, fractions
    never truncated).

    Example:
        >>> number(2, "angle"), number(3.0, "width", integer=True)
        (2.0, 3)
        >>> number("2", "sigma")
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentTypeError: sigma must be a number, got '2'
    """
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ArgumentTypeError(f"{name} must be {'an int' if integer else 'a number'}, got {value!r}",
                                argument=name, value=value)
    x = float(value)
    if not math.isfinite(x):
        raise ArgumentError(f"{name} must be finite, got {value!r}", argument=name, value=value)
    if integer and x != int(x):
        raise ArgumentError(f"{name} must be an int, got {value!r}", argument=name, value=value)
    if (low is not None and x < low) or (high is not None and x > high):
        bounds = f">= {low}" if high is None else (f"<= {high}" if low is None else f"in [{low}, {high}]")
        raise ArgumentError(f"{name}={value!r} is out of range; it must be {bounds}", argument=name, value=value)
    return int(x) if integer else x


def numbers(value: Any, name: str, count: int, *, integer: bool = False, low: float | None = None) -> tuple[Any, ...]:
    """``value`` as a tuple of exactly ``count`` numbers (each as :func:`number`).

    Example:
        >>> numbers((1, 2), "offset", 2, integer=True)
        (1, 2)
        >>> numbers((1,), "offset", 2, integer=True)
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: offset must be 2 numbers, got (1,)
    """
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise ArgumentTypeError(f"{name} must be a sequence of {count} numbers, got {value!r}",
                                argument=name, value=value)
    if len(value) != count:
        raise ArgumentError(f"{name} must be {count} numbers, got {value!r}", argument=name, value=value)
    return tuple(number(v, f"{name}[{i}]", integer=integer, low=low) for i, v in enumerate(value))


def check_range(value: Any, name: str, low: float, high: float) -> None:
    """ArgumentError naming ``name`` unless ``value`` (a number or one per image) is in [low, high]."""
    if isinstance(value, int | float) and not isinstance(value, bool):  # the common case, without NumPy
        if not low <= value <= high:
            raise ArgumentError(f"{name}={value!r} is out of range; allowed values are in [{low}, {high}]",
                                argument=name, value=value)
        return
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < low) or np.any(arr > high):
        raise ArgumentError(f"{name}={value!r} is out of range; allowed values are in [{low}, {high}]",
                            argument=name, value=value)
