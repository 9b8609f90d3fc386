"""Plumbing every op family shares: argument checks, ``out=`` handling, kernel launches.

One copy of each piece: an op module imports these instead of re-writing them.
- :func:`check_src` / :func:`prepare_out`: the calling convention (Image or ImageBatch in,
  ``out`` reused or made, its logical shape set, growing only when needed).
- :func:`batch_view`: any source as (base pointer, device table, count, max height, max
  width) so ONE kernel serves a single Image and a whole ImageBatch.
- :func:`raw_kernel` / :func:`launch`: compiled-once CuPy kernels, launched on the op's
  stream, counted (``launch_stats``) so tests can prove "one launch per batch".
- :func:`per_sample`: a scalar or one value per image, checked.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..device import get_stream, use_stream
from ..image import Image, ImageBatch

__all__ = [
    "Source",
    "check_src",
    "uniform_channels",
    "prepare_out",
    "same_memory",
    "batch_view",
    "BatchView",
    "raw_kernel",
    "launch",
    "launch_stats",
    "reset_launch_stats",
    "per_sample",
    "use_stream",
    "get_stream",
]

Source = Image | ImageBatch


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


def prepare_out(
    src: Source,
    out: Source | None,
    shapes: Sequence[tuple[int, int, int]] | tuple[int, int, int] | None = None,
    dtype: Any = None,
) -> Source:
    """``out`` (checked, reshaped) or a new Image/ImageBatch for the op's result.

    ``shapes``: the result's (height, width, channels) for an Image, or a list of them for
    a batch; None keeps the source's shapes. ``dtype``: None keeps the source's dtype.
    """
    dt = src.dtype if dtype is None else np.dtype(dtype)
    if isinstance(src, ImageBatch):
        shape_list = src.shapes if shapes is None else list(shapes)
        if out is None:
            return ImageBatch.empty(shape_list, dtype=dt, device=src.device)
        if not isinstance(out, ImageBatch):
            raise TypeError(f"out must be an ImageBatch when src is one, got {type(out).__name__}")
        _check_out_device(src, out)
        if out is not src or shape_list != src.shapes or dt != src.dtype:
            if out.shapes != shape_list or out.dtype != dt:
                out.set_shapes(shape_list, dtype=dt)
        return out
    shape = src.shape if shapes is None else tuple(shapes)  # type: ignore[arg-type]
    if out is None:
        return Image.empty(*shape, dtype=dt, device=src.device)
    if not isinstance(out, Image):
        raise TypeError(f"out must be an Image when src is one, got {type(out).__name__}")
    _check_out_device(src, out)
    return out.set_shape(*shape, dtype=dt)


def _check_out_device(src: Source, out: Source) -> None:
    if out.device != src.device:
        raise ValueError(f"out is on {out.device!r} but src is on {src.device!r}")


def same_memory(a: Source, b: Source) -> bool:
    """True when ``a`` and ``b`` start at the same address (an in-place call)."""
    return a.data_ptr == b.data_ptr and a.device == b.device


class BatchView(NamedTuple):
    """What a batch kernel needs: base address, table (TABLE_COLUMNS rows), sizes."""

    base: int
    table: Any
    count: int
    max_height: int
    max_width: int


def batch_view(src: Source, stream: Any = None) -> BatchView:
    """Any source as a batch: for an Image, a one-row table with offset 0."""
    if isinstance(src, ImageBatch):
        h, w = src.max_shape()
        return BatchView(src.data_ptr, src.kernel_table(stream), len(src), h, w)
    return BatchView(src.data_ptr, src.kernel_table(stream), 1, src.height, src.width)


_launches = {"count": 0}
_launch_lock = threading.Lock()


def launch_stats() -> dict[str, int]:
    """Kernel launches gpuimg ops made since the last reset (to prove fusion/batching)."""
    return dict(_launches)


def reset_launch_stats() -> None:
    with _launch_lock:
        _launches["count"] = 0


def count_launch(n: int = 1) -> None:
    """Record launches made outside :func:`launch` (e.g. a CuPy ElementwiseKernel call)."""
    with _launch_lock:
        _launches["count"] += n


@functools.lru_cache(maxsize=None)
def raw_kernel(source: str, name: str, options: tuple[str, ...] = ("--std=c++17",)) -> Any:
    """The kernel ``name`` of CUDA ``source``, compiled once per process (NVRTC, cached)."""
    import cupy

    return cupy.RawModule(code=source, options=options).get_function(name)


def launch(kernel: Any, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...], stream: Any = None, shared_mem: int = 0) -> None:
    """Launch ``kernel`` on ``stream`` (None: the current CuPy stream) and count it."""
    if stream is None:  # CuPy launches on its current stream: skip the context switch (~2 us)
        kernel(grid, block, args, shared_mem=shared_mem)
    else:
        with get_stream(stream):
            kernel(grid, block, args, shared_mem=shared_mem)
    count_launch()


def per_sample(value: Any, count: int, name: str, dtype: Any = np.float32) -> np.ndarray:
    """``value`` as one entry per image: a scalar is repeated, a sequence must have ``count``."""
    if np.ndim(value) == 0:
        return np.full(count, value, dtype=dtype)
    arr = np.asarray(value, dtype=dtype)
    if arr.shape[0] != count:
        raise ValueError(f"{name} has {arr.shape[0]} values for {count} images; give one value or one per image")
    return arr
