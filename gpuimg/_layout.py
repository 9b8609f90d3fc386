"""How the pixels of an Image and the slots of an ImageBatch lie in memory.

The allowed channel counts and dtypes and their checks, the batch slot layout and its
kernel table (host rows and their device copy), memory an Image borrows from a caller's
array, and wrapping foreign arrays without a copy. Private to gpuimg: the public names
(CHANNELS, DTYPES, SLOT_ALIGNMENT, TABLE_COLUMNS, slot_layout) are those of
:mod:`gpuimg.image`, which builds Image and ImageBatch on this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .device import Device, array_module, device_of_array, get_stream, resolve_device
from .errors import ArgumentError, ArgumentTypeError, check_choice, check_int
from .memory import Buffer, address_of, round_up

__all__ = [
    "CHANNELS", "DTYPES", "SLOT_ALIGNMENT", "TABLE_COLUMNS", "slot_layout", "check_dtype", "check_shape",
    "KernelTable", "Borrowed", "borrow", "as_xp_array", "channel_first_message",
]

CHANNELS = (1, 3, 4)
DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))

# Slots of an ImageBatch start at multiples of 768 bytes: a multiple of 256 (vector loads,
# nvImageCodec's alignment) AND of every pixel size (1, 3, 4 channels x 1, 2, 4 bytes), so
# a flat element index over the arena still tells the channel (index % channels) and a
# pointwise op can treat the whole arena as one array: one launch for the whole batch.
SLOT_ALIGNMENT = 768

# Columns of the kernel table (int64, one row per image): what a batch kernel indexes.
TABLE_COLUMNS = ("offset", "height", "width", "pitch", "channels")

def check_dtype(dtype: Any) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:  # not a dtype at all: named as given in the error
        dt = None
    if dt not in DTYPES:
        check_choice(dtype if dt is None else dt.name, "dtype", [d.name for d in DTYPES])
    return dt


def check_shape(height: Any, width: Any, channels: Any) -> tuple[int, int, int]:
    check_int(height, "height", low=1)
    check_int(width, "width", low=1)
    check_choice(channels, "channels", CHANNELS)
    return int(height), int(width), int(channels)


class KernelTable:
    """Host rows ``TABLE_COLUMNS`` and their device copy, uploaded only after a change."""

    def __init__(self, device: str):
        self.device = device
        self.rows = np.zeros((0, len(TABLE_COLUMNS)), np.int64)
        self._buffer: Buffer | None = None
        self._dirty = True
        self._view: Any = None  # the device view, kept: building a CuPy view per op call is slow
        self._view_key: tuple[Any, ...] = ()

    def set(self, rows: np.ndarray) -> None:
        if rows.shape != self.rows.shape or not np.array_equal(rows, self.rows):
            self.rows = rows
            self._dirty = True

    def on_device(self, stream: Any = None) -> Any:
        if self.device != "cuda":
            return self.rows
        nbytes = self.rows.nbytes
        if self._buffer is None:
            self._buffer = Buffer(max(nbytes, 1), "cuda")
        elif self._buffer.ensure(nbytes):
            self._dirty = True
        key = (self._buffer.generation, self.rows.shape)
        if self._view_key != key:
            self._view = self._buffer.view(0, self.rows.shape, np.int64, (self.rows.shape[1] * 8, 8))
            self._view_key = key
        table = self._view
        if self._dirty:
            # A pageable-memory copy is staged before the call returns, so later host
            # edits of `rows` cannot race it; it is ordered on `stream` like the kernels.
            table.set(self.rows, stream=get_stream(stream))
            self._dirty = False
        return table


class Borrowed:
    """Memory an Image wraps but does not own (a user's array): it cannot grow."""

    generation = 0

    def __init__(self, raw: Any, owner: Any, device: str):
        self.data = raw
        self.owner = owner  # keeps the user's array (and so the memory) alive
        self.device = device
        self.ptr = address_of(raw)

    @property
    def capacity(self) -> int:
        return int(self.data.size)

    def ensure(self, nbytes: int) -> bool:
        raise AssertionError("borrowed memory never grows")  # Image checks before calling


def borrow(array: Any, device: str | None = None) -> tuple[Borrowed, int, int, int, np.dtype, int]:
    """(store, height, width, channels, dtype, pitch) of an Image wrapping the (H, W) or
    (H, W, C) ``array`` without a copy (what :meth:`gpuimg.Image.from_array` is made of):
    rows may be padded (a pitch); other layouts raise ArgumentError (a ValueError).

    Example:
        >>> borrow(np.zeros((2, 3), np.uint8), "cpu")[1:]
        (2, 3, 1, dtype('uint8'), 3)
    """
    arr, dev = as_xp_array(array)
    if device is not None and resolve_device(device) != dev:
        raise ArgumentError(
            f"device={device!r} but the array lives on {dev!r}; from_array never copies, "
            f"use Image.from_array(a).to({device!r})"
        )
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ArgumentError(f"array must have shape (H, W) or (H, W, C), got {tuple(arr.shape)}")
    height, width, channels = (int(s) for s in arr.shape)
    if height in CHANNELS and channels not in CHANNELS:
        raise ArgumentError(channel_first_message(tuple(arr.shape)))
    check_shape(height, width, channels)
    dt = check_dtype(arr.dtype)
    isz = dt.itemsize
    row_stride, px_stride, ch_stride = (int(s) for s in arr.strides)
    row_bytes = width * channels * isz
    if height == 1:
        row_stride = row_bytes
    packed_pixels = (ch_stride == isz or channels == 1) and (px_stride == channels * isz or width == 1)
    if not packed_pixels or row_stride < row_bytes or row_stride % isz:
        raise ArgumentError(
            f"array strides {tuple(arr.strides)} cannot be expressed as rows of packed pixels "
            f"with a pitch (need channel stride {isz}, pixel stride {channels * isz}, row stride >= "
            f"{row_bytes}); pass a contiguous copy (numpy.ascontiguousarray / cupy.ascontiguousarray)"
        )
    span = (height - 1) * row_stride + row_bytes
    xp = array_module(dev)
    raw = xp.lib.stride_tricks.as_strided(arr, shape=(span // isz,), strides=(isz,)).view(np.uint8)
    return Borrowed(raw, array, dev), height, width, channels, dt, row_stride


def channel_first_message(shape: tuple[int, ...]) -> str:
    """Why a (C, H, W) array cannot be wrapped, and how to pass it channel-last instead.

    Example:
        >>> print(channel_first_message((3, 320, 480)))
        array of shape (3, 320, 480) looks channel-first (CHW: 3 channels of 320x480); Image.from_array
        takes channel-last (H, W) or (H, W, C) arrays. Make the channels the last axis in a contiguous
        copy: np.ascontiguousarray(a.transpose(1, 2, 0)) for NumPy (cupy.ascontiguousarray for CuPy),
        t.permute(1, 2, 0).contiguous() for torch; a bare transpose/permute is a strided
        (channel-planar) view that from_array refuses
        >>> print(channel_first_message((1, 32, 48)))
        array of shape (1, 32, 48) looks channel-first (CHW: 1 channel of 32x48); Image.from_array
        takes channel-last (H, W) or (H, W, C) arrays. Pass the plane a[0] (t[0] for torch): an (H, W)
        view, no copy
    """
    c, h, w = shape
    head = (
        f"array of shape {shape} looks channel-first (CHW: {c} channel{'s' if c != 1 else ''} of {h}x{w}); "
        "Image.from_array takes channel-last (H, W) or (H, W, C) arrays. "
    )
    if c == 1:
        return head + "Pass the plane a[0] (t[0] for torch): an (H, W) view, no copy"
    return head + (
        "Make the channels the last axis in a contiguous copy: np.ascontiguousarray(a.transpose(1, 2, 0)) "
        "for NumPy (cupy.ascontiguousarray for CuPy), t.permute(1, 2, 0).contiguous() for torch; a bare "
        "transpose/permute is a strided (channel-planar) view that from_array refuses"
    )


def as_xp_array(array: Any) -> tuple[Any, Device]:
    """(cupy or numpy array sharing ``array``'s memory, its device)."""
    dev = device_of_array(array)
    if dev is not None:
        return array, dev
    if hasattr(array, "__dlpack__") and hasattr(array, "__dlpack_device__"):
        kind = int(array.__dlpack_device__()[0])
        if kind in (2, 3):  # kDLCUDA, kDLCUDAHost... CUDA memory: CuPy shares it
            import cupy

            # DLPack, not __cuda_array_interface__: CuPy's CAI import host-synchronises, DLPack does not
            return cupy.from_dlpack(array), "cuda"
        if kind == 1:
            return np.from_dlpack(array), "cpu"
    if hasattr(array, "__cuda_array_interface__"):
        import cupy

        return cupy.asarray(array), "cuda"
    if hasattr(array, "__array_interface__") or hasattr(array, "__array__"):
        return np.asarray(array), "cpu"
    raise ArgumentTypeError(f"cannot wrap {type(array).__name__}: pass a NumPy/CuPy array or a DLPack tensor")


def slot_layout(shapes: Sequence[Sequence[int]], channels: int, dtype: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """The arena layout of ImageBatch slots for ``shapes``: kernel-table rows
    (:data:`TABLE_COLUMNS`), reserved bytes per slot, and total arena bytes. Each slot is
    tightly pitched and starts at a multiple of :data:`SLOT_ALIGNMENT`.

    Example:
        >>> rows, reserved, total = slot_layout([(2, 3)], 3, "uint8")
        >>> rows.tolist(), int(total)
        ([[0, 2, 3, 9, 3]], 768)
    """
    dtype = np.dtype(dtype)
    if isinstance(shapes, np.ndarray):
        shapes = shapes.tolist()
    if not isinstance(shapes, Sequence) or isinstance(shapes, str):
        raise ArgumentError(f"shapes must be a list of (height, width[, channels]), got {shapes!r}")
    rows = np.zeros((len(shapes), len(TABLE_COLUMNS)), np.int64)
    reserved = np.zeros(len(shapes), np.int64)
    offset = 0
    for i, shape in enumerate(shapes):
        if not isinstance(shape, Sequence) or len(shape) not in (2, 3):
            raise ArgumentError(f"shapes[{i}]={shape!r} must be (height, width) or (height, width, channels)")
        h, w, c = check_shape(shape[0], shape[1], shape[2] if len(shape) == 3 else channels)
        pitch = w * c * dtype.itemsize
        size = round_up(h * pitch, SLOT_ALIGNMENT)
        rows[i] = (offset, h, w, pitch, c)
        reserved[i] = size
        offset += size
    return rows, reserved, offset
