"""How a fused chain ends in a float tensor: :class:`TensorSpec`, :func:`tensor_spec` and the
to_tensor step (the public op is :func:`gpuimg.ops.color.to_tensor`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ArgumentError, ArgumentTypeError, check_choice
from ...image import ImageBatch
from ...memory import Buffer
from .._engine.args import Source
from .._engine.cache import memoized
from ._base import PointwiseStep

__all__ = ["TensorSpec", "tensor_spec"]


def new_tensor(shape: tuple[int, ...], dtype: str, device: str) -> Any:
    """A fresh tensor-shaped array on ``device`` from a counted :class:`Buffer`."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dt.itemsize
    buf = Buffer(max(nbytes, 1), device)
    strides = tuple(int(s) * dt.itemsize for s in _c_strides(shape))
    return buf.view(0, shape, dt, strides)


def _c_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


# ----------------------------------------------------------------------------- the tensor ending


@dataclass(frozen=True)
class _ToTensor(PointwiseStep):
    """``v * scale + bias`` per channel: (v / 255 - mean) / std folded into one multiply-add."""

    given: int = 1  # how many mean/std values the caller gave (1 or the channel count)

    def check(self, c: int) -> None:
        if self.given not in (1, c):
            raise ArgumentError(f"mean/std have {self.given} values for an image of {c} channels; give 1 or {c}")

    def cuda(self, c: int, p: str, sh: str) -> str:
        return f"for (int k = 0; k < {c}; ++k) v[k] = v[k] * {p}[k] + {p}[4 + k];"

    def numpy(self, v: np.ndarray, p: np.ndarray, hist: Any) -> np.ndarray:
        c = v.shape[2]
        return v * p[:c] + p[4 : 4 + c]

    def key(self, c: int) -> tuple[Any, ...]:
        return (self.kind, c)


_TENSOR_DTYPES = ("float32", "float16")
_LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class TensorSpec:
    """How a chain ends in a tensor: normalisation, dtype and layout (checked)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    dtype: str
    layout: str

    @functools.cached_property
    def _step(self) -> PointwiseStep:
        count = len(self.mean)
        mean = np.resize(np.asarray(self.mean, np.float64), 4)
        std = np.resize(np.asarray(self.std, np.float64), 4)
        scale = 1.0 / (255.0 * std)
        bias = -mean / std
        return _ToTensor("to_tensor", (*scale.tolist(), *bias.tolist()), given=count)

    def step(self) -> PointwiseStep:
        """The to_tensor step (built once per spec)."""
        return self._step

    def shape(self, src: Source, channels: int) -> tuple[int, ...]:
        if isinstance(src, ImageBatch):
            sizes = {(h, w) for h, w, _ in src.shapes}
            if len(sizes) != 1:
                raise ArgumentError(f"src is a batch of {len(sizes)} different sizes; to_tensor needs equal-size images (resize first)")
            (h, w), n = sizes.pop(), len(src)
            return (n, channels, h, w) if self.layout == "NCHW" else (n, h, w, channels)
        h, w = src.height, src.width
        return (channels, h, w) if self.layout == "NCHW" else (h, w, channels)

    def prepare(self, src: Source, channels: int, out: Any) -> Any:
        shape = self.shape(src, channels)
        if out is None:
            return new_tensor(shape, self.dtype, src.device)
        xp = src.xp
        if not isinstance(out, xp.ndarray):
            raise ArgumentTypeError(f"out must be a {xp.__name__}.ndarray on {src.device!r}, got {type(out).__name__}")
        if tuple(out.shape) != shape or out.dtype != np.dtype(self.dtype) or not out.flags.c_contiguous:
            raise ArgumentError(
                f"out has shape {tuple(out.shape)} {out.dtype}; to_tensor needs a C-contiguous {shape} {self.dtype} array"
            )
        return out

    def store_cpu(self, out: np.ndarray, index: int, v: np.ndarray, batched: bool) -> None:
        arr = v.astype(self.dtype)
        if self.layout == "NCHW":
            arr = arr.transpose(2, 0, 1)
        if batched:
            out[index] = arr
        else:
            out[...] = arr


def tensor_spec(mean: Any, std: Any, dtype: str, layout: str) -> TensorSpec:
    """Checked :class:`TensorSpec` (ArgumentError naming the bad argument), cached per arguments."""
    try:
        return _tensor_spec_cached(_hashable(mean), _hashable(std), dtype, layout)
    except TypeError:  # unhashable (an array of values): check without the cache
        return _make_tensor_spec(mean, std, dtype, layout)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@memoized("tensor:specs", max_items=64)
def _tensor_spec_cached(mean: Any, std: Any, dtype: str, layout: str) -> TensorSpec:
    return _make_tensor_spec(mean, std, dtype, layout)


def _make_tensor_spec(mean: Any, std: Any, dtype: str, layout: str) -> TensorSpec:
    check_choice(dtype, "dtype", _TENSOR_DTYPES)
    check_choice(layout, "layout", _LAYOUTS)
    mean_t = _vector(0.0 if mean is None else mean, "mean")
    std_t = _vector(1.0 if std is None else std, "std")
    if any(s <= 0 for s in std_t):
        raise ArgumentError(f"std={std!r} must be positive")
    if len(mean_t) != len(std_t):
        if len(mean_t) == 1:
            mean_t = mean_t * len(std_t)
        elif len(std_t) == 1:
            std_t = std_t * len(mean_t)
        else:
            raise ArgumentError(f"mean has {len(mean_t)} values and std {len(std_t)}; give the same count (or one)")
    return TensorSpec(mean_t, std_t, dtype, layout)


def _vector(value: Any, name: str) -> tuple[float, ...]:
    arr = np.atleast_1d(np.asarray(value, np.float64))
    if arr.ndim != 1 or not 1 <= arr.size <= 4 or not np.all(np.isfinite(arr)):
        raise ArgumentError(f"{name}={value!r} must be a number or 1 to 4 finite numbers (one per channel)")
    return tuple(arr.tolist())
