"""The calling convention and launches: ``out=`` handling, sources as batch views, launch
counting and grid sizing (one copy each; every op family uses these).

- :func:`prepare_out`: ``out`` reused (its logical shape set, growing only when needed) or made;
  :func:`check_out`, THE check of a caller's ``out`` (kind, device, dtype: never re-typed).
- :func:`batch_view`: any source as (base pointer, device table, count, max height, max
  width) so ONE kernel serves a single Image and a whole ImageBatch.
- :func:`launch`: a kernel launched on the op's stream and counted (``launch_stats``), so
  tests can prove "one launch per batch".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ...errors import ArgumentError, ArgumentTypeError
from ...device import get_stream
from ...image import Image, ImageBatch
from ...memory import scratch
from .args import Source

__all__ = [
    "prepare_out",
    "check_out",
    "same_memory",
    "BatchView",
    "batch_view",
    "launch",
    "count_launch",
    "launch_stats",
    "reset_launch_stats",
    "BLOCK",
    "grid_for",
    "span_bytes",
    "readable_source",
    "pairs",
    "kernel_args",
    "get_stream",
]


def prepare_out(
    src: Source,
    out: Source | None,
    shapes: Sequence[tuple[int, int, int]] | tuple[int, int, int] | None = None,
    dtype: Any = None,
) -> Source:
    """``out`` (checked by :func:`check_out`, its logical shape set) or a new Image/ImageBatch
    for the op's result.

    ``shapes``: the result's (height, width, channels) for an Image, or a list of them for
    a batch; None keeps the source's shapes. ``dtype``: None keeps the source's dtype.
    An ``out`` is never re-typed: one of another dtype is refused, so a caller's
    buffer is either used as it is or the call fails naming ``out``.

    Example:
        >>> import numpy as np
        >>> src = Image.empty(2, 2, device="cpu")
        >>> out = Image.empty(4, 4, device="cpu")
        >>> prepare_out(src, out) is out, out.shape
        (True, (2, 2, 3))
        >>> prepare_out(src, Image.empty(2, 2, dtype="uint16", device="cpu"))
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: out has dtype uint16 but this op makes uint8 images; pass out=None or an out of dtype uint8
    """
    dt = src.dtype if dtype is None else np.dtype(dtype)
    if isinstance(src, ImageBatch):
        shape_list = src.shapes if shapes is None else list(shapes)
        if out is None:
            return ImageBatch.empty(shape_list, dtype=dt, device=src.device)
        check_out(src, out, dt, shape_list)
        if out.shapes != shape_list:
            out.set_shapes(shape_list, dtype=dt)
        return out
    shape = src.shape if shapes is None else tuple(shapes)  # type: ignore[arg-type]
    if out is None:
        out = Image.empty(*shape, dtype=dt, device=src.device)
    else:
        check_out(src, out, dt, shape)
        out.set_shape(*shape)
    # The result is the same picture: it keeps the file's EXIF/XMP/ICC that gpuimg.write
    # stores (a batch's images are handed on by the pipeline's steps, not per op call).
    out.metadata = src.metadata
    return out


def check_out(src: Source, out: Any, dtype: Any, shapes: Any) -> None:
    """THE check of a caller's ``out`` (every op's ``out=`` comes here, through
    :func:`prepare_out`): ArgumentTypeError/ArgumentError naming ``out`` unless it is the same kind
    as ``src`` (Image or ImageBatch), on the same device, of exactly ``dtype`` (the op's
    result dtype; never re-typed), and, when it is ``src`` itself (in place) or shares its
    memory, of the result's ``shapes`` (an image read while it is re-laid out is garbage).

    Height, width and channels of any other ``out`` are the op's to set (the calling
    convention: shape-changing ops set ``out``'s logical shape, growing only when needed).
    """
    if isinstance(src, ImageBatch):
        if not isinstance(out, ImageBatch):
            raise ArgumentTypeError(f"out must be an ImageBatch when src is one, got {type(out).__name__}")
    elif not isinstance(out, Image):
        raise ArgumentTypeError(f"out must be an Image when src is one, got {type(out).__name__}")
    if out.device != src.device:
        raise ArgumentError(f"out is on {out.device!r} but src is on {src.device!r}")
    dt = np.dtype(dtype)
    if out.dtype != dt:
        raise ArgumentError(f"out has dtype {out.dtype.name} but this op makes {dt.name} images; "
                            f"pass out=None or an out of dtype {dt.name}")
    if out is src or same_memory(out, src):
        have = out.shapes if isinstance(out, ImageBatch) else out.shape
        want = list(shapes) if isinstance(out, ImageBatch) else tuple(shapes)
        if have != want:
            raise ArgumentError(f"out is src (in place) but this op makes shape(s) {want if isinstance(want, tuple) else want[:4]}, "
                                f"not {have if isinstance(have, tuple) else have[:4]}; pass out=None or another out")


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


# ----------------------------------------------------------------------------- launches

_launches = {"count": 0}
_launch_lock = threading.Lock()


def launch_stats() -> dict[str, int]:
    """Kernel launches gpuimg ops made since the last reset (to prove fusion/batching).

    Example:
        >>> reset_launch_stats(); launch_stats()
        {'count': 0}
    """
    return dict(_launches)


def reset_launch_stats() -> None:
    """Set the launch count of :func:`launch_stats` back to zero."""
    with _launch_lock:
        _launches["count"] = 0


def count_launch(n: int = 1) -> None:
    """Record launches made outside :func:`launch` (e.g. a device copy)."""
    with _launch_lock:
        _launches["count"] += n


def launch(kernel: Any, grid: tuple[int, ...], block: tuple[int, ...], args: tuple[Any, ...], stream: Any = None, shared_mem: int = 0) -> None:
    """Launch ``kernel`` on ``stream`` (None: the current CuPy stream) and count it."""
    if stream is None:  # CuPy launches on its current stream: skip the context switch
        kernel(grid, block, args, shared_mem=shared_mem)
    else:
        with get_stream(stream):
            kernel(grid, block, args, shared_mem=shared_mem)
    count_launch()


BLOCK = (32, 8)  # threads per block of the 2-D (x, y, image) kernels: a warp spans 32 pixels of a row


def grid_for(view: BatchView | tuple[int, int, int], block: tuple[int, int] = BLOCK) -> tuple[int, int, int]:
    """Grid covering (max width, max height, count) with ``block`` threads (one per pixel)."""
    if isinstance(view, BatchView):
        width, height, count = view.max_width, view.max_height, view.count
    else:
        width, height, count = view
    return (-(-width // block[0]), -(-height // block[1]), count)


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
