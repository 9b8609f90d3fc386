"""Image (one picture) and ImageBatch (many pictures of different sizes in one arena).

An Image is a logical ``(height, width, channels)`` window on a capacity-backed buffer:
changing the logical shape is metadata only while it fits the capacity, and grows the
buffer (counted in :func:`gpuimg.memory_stats`) when it does not. Pixel data stays where
it is (GPU or host); copies to the host are explicit (:meth:`Image.numpy`).

Example:
    >>> import gpuimg
    >>> img = gpuimg.Image.empty(1080, 1920, device="cpu")
    >>> img.set_shape(480, 640).shape     # smaller: no allocation
    (480, 640, 3)
    >>> img.array.shape
    (480, 640, 3)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import ArgumentError, ArgumentTypeError, check_int
from ._layout import (
    CHANNELS,
    DTYPES,
    SLOT_ALIGNMENT,
    TABLE_COLUMNS,
    Borrowed,
    KernelTable,
    borrow,
    check_dtype,
    check_shape,
    slot_layout,
)
from ._pictures import thumbnail
from .device import Device, array_module, resolve_device, use_stream
from .memory import Buffer, strided_view

__all__ = ["Image", "ImageBatch", "images_of", "slot_layout", "CHANNELS", "DTYPES", "SLOT_ALIGNMENT", "TABLE_COLUMNS"]

THUMBNAIL_SIZE = 256  # longest side of the picture a notebook shows


class Image:
    """One picture: a logical (height, width, channels) window on a capacity-backed buffer.

    Make one with :meth:`empty` or wrap an existing array with :meth:`from_array`.
    ``img.array`` is a zero-copy CuPy (GPU) or NumPy (CPU) view; ``torch.from_dlpack(img)``
    and ``cupy.from_dlpack(img)`` share its memory.

    Example:
        >>> img = Image.empty(4, 6, channels=3, device="cpu")
        >>> img.shape, img.dtype.name, img.nbytes
        ((4, 6, 3), 'uint8', 72)
    """

    def __init__(
        self,
        store: Buffer | Borrowed,
        height: int,
        width: int,
        channels: int,
        dtype: Any,
        *,
        offset: int = 0,
        pitch: int | None = None,
        _batch: ImageBatch | None = None,
        _index: int = -1,
    ):
        self._store = store
        self._offset = int(offset)
        self._height, self._width, self._channels = check_shape(height, width, channels)
        self._dtype = check_dtype(dtype)
        self._pitch = int(pitch) if pitch is not None else self.row_bytes
        self._batch = _batch
        self._index = _index
        self._view: Any = None
        self._view_generation = -1
        self._table: KernelTable | None = None
        # The file's EXIF/XMP/ICC (gpuimg.codec.metadata.Metadata) when gpuimg.read made
        # this image; gpuimg.write keeps it in the output. None: no file behind it.
        self.metadata: Any = None
        self._table_key: tuple[int, ...] = ()

    # ----------------------------------------------------------------- construction
    @classmethod
    def empty(
        cls,
        height: int,
        width: int,
        channels: int = 3,
        dtype: Any = "uint8",
        capacity: int | None = None,
        device: str | None = None,
    ) -> Image:
        """A new image with uninitialised pixels and at least ``capacity`` bytes of room.

        Example:
            >>> Image.empty(720, 1280, capacity=1920 * 1080 * 3, device="cpu").capacity >= 6220800
            True
        """
        height, width, channels = check_shape(height, width, channels)
        dt = check_dtype(dtype)
        needed = height * width * channels * dt.itemsize
        check_int(capacity, "capacity", low=0, optional=True)  # bytes
        purpose = f"a {height}x{width}x{channels} {dt.name} image"
        buffer = Buffer(max(needed, int(capacity or 0)), device, purpose=purpose)
        return cls(buffer, height, width, channels, dt)

    @classmethod
    def from_array(cls, array: Any, device: str | None = None) -> Image:
        """Wrap an (H, W) or (H, W, C) array without copying.

        Accepts NumPy and CuPy arrays and anything exposing ``__dlpack__`` (PyTorch, JAX)
        or ``__cuda_array_interface__`` (Numba). Rows may be padded (a pitch); other
        layouts (channel-planar, negative or transposed strides) raise ArgumentError (a ValueError).

        Example:
            >>> import numpy as np
            >>> a = np.zeros((2, 3, 3), np.uint8)
            >>> img = Image.from_array(a, device="cpu"); img.array[0, 0, 0] = 7
            >>> int(a[0, 0, 0])
            7
        """
        store, height, width, channels, dt, pitch = borrow(array, device)
        return cls(store, height, width, channels, dt, pitch=pitch)

    # ----------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, channels)."""
        return (self._height, self._width, self._channels)

    @property
    def height(self) -> int:
        return self._height

    @property
    def width(self) -> int:
        return self._width

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def device(self) -> Device:
        return self._store.device  # type: ignore[return-value]

    @property
    def pitch(self) -> int:
        """Bytes from the start of one row to the start of the next."""
        return self._pitch

    @property
    def row_bytes(self) -> int:
        """Bytes of pixel data in one row (``pitch`` minus any padding)."""
        return self._width * self._channels * self._dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of the logical image (without row padding)."""
        return self._height * self.row_bytes

    @property
    def capacity(self) -> int:
        """Bytes this image can hold without growing its buffer."""
        if self._batch is not None:
            return self._batch._slot_reserved(self._index)
        return self._store.capacity - self._offset

    @property
    def is_contiguous(self) -> bool:
        """True when rows follow each other without padding (the pixels are one flat run)."""
        return self._pitch == self.row_bytes

    @property
    def data_ptr(self) -> int:
        """Address of the first pixel (a device address on the GPU)."""
        return self._store.ptr + self._offset

    @property
    def xp(self) -> Any:
        """The array module of this image: ``cupy`` or ``numpy``."""
        return array_module(self.device)

    @property
    def array(self) -> Any:
        """Zero-copy (H, W, C) view of the logical region (CuPy on the GPU, NumPy on the CPU)."""
        if self._view is None or self._view_generation != self._store.generation:
            isz = self._dtype.itemsize
            strides = (self._pitch, self._channels * isz, isz)
            self._view = strided_view(self._store.data, self._offset, self.shape, self._dtype, strides)
            self._view_generation = self._store.generation
        return self._view

    # ----------------------------------------------------------------- shape
    def set_shape(self, height: int, width: int, channels: int | None = None, dtype: Any = None) -> Image:
        """Change the logical shape (and optionally dtype); returns the image.

        Metadata only while the new shape fits the capacity; otherwise the buffer grows
        by the policy in :mod:`gpuimg.memory` (one counted growth) and the old pixels are
        not kept. Wrapped (borrowed) arrays and batch slots cannot grow: ArgumentError.

        Example:
            >>> img = Image.empty(100, 100, device="cpu")
            >>> img.set_shape(50, 80, 4).shape
            (50, 80, 4)
        """
        channels = self._channels if channels is None else channels
        if (dtype is None or dtype is self._dtype) and (height, width, channels) == (
            self._height, self._width, self._channels
        ):
            return self  # the common reuse case: nothing to check or change
        height, width, channels = check_shape(height, width, channels)
        dt = self._dtype if dtype is None else check_dtype(dtype)
        if (height, width, channels, dt) == (*self.shape, self._dtype):
            return self
        pitch = width * channels * dt.itemsize
        needed = height * pitch
        if needed > self.capacity:
            if self._batch is not None:
                raise ArgumentError(
                    f"image {self._index} of a batch holds {self.capacity} bytes, {height}x{width}x{channels} "
                    f"{dt.name} needs {needed}; resize the whole batch with ImageBatch.set_shapes"
                )
            if isinstance(self._store, Borrowed):
                raise ArgumentError(
                    f"this image wraps a caller's array of {self.capacity} bytes, {height}x{width}x{channels} "
                    f"{dt.name} needs {needed}; wrapped memory cannot grow (use Image.empty for growable images)"
                )
            self._view = None  # let the old block go before the new one is allocated
            self._store.ensure(self._offset + needed)
        self._height, self._width, self._channels, self._dtype, self._pitch = height, width, channels, dt, pitch
        self._view = None
        if self._batch is not None:
            self._batch._slot_changed(self._index, height, width, channels, dt)
        return self

    def kernel_table(self, stream: Any = None) -> Any:
        """This image as a one-row kernel table (``TABLE_COLUMNS``, offsets from ``data_ptr``).

        Lets one batch kernel serve single images too; uploaded only when the shape changed.

        Example:
            >>> Image.empty(2, 5, device="cpu").kernel_table().tolist()
            [[0, 2, 5, 15, 3]]
        """
        if self._table is None:
            self._table = KernelTable(self.device)
        key = (self._height, self._width, self._pitch, self._channels)
        if key != self._table_key:  # a tuple compare: cheaper than building and comparing arrays per op call
            self._table.set(np.array([[0, *key]], np.int64))
            self._table_key = key
        return self._table.on_device(stream)

    # ----------------------------------------------------------------- interop
    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        if self.device != "cuda":
            raise AttributeError("a host image has no __cuda_array_interface__; use __array_interface__")
        return self.array.__cuda_array_interface__

    @property
    def __array_interface__(self) -> dict[str, Any]:
        """NumPy's array interface of a host image (``np.asarray(img)`` is a view, no copy).

        The strides are always given: Pillow's ``Image.fromarray`` then takes the pixels
        through :meth:`tobytes` (one copy, as for any strided array) rather than through
        the buffer protocol, which a Python class cannot offer before Python 3.12. Pillow
        takes one channel as (H, W): ``PIL.Image.fromarray(img.array[:, :, 0])`` for gray.
        A GPU image has none (AttributeError saying to copy with :meth:`numpy` first).

        Example:
            >>> import numpy as np
            >>> img = Image.from_array(np.full((2, 3, 3), 7, np.uint8), device="cpu")
            >>> np.asarray(img).shape, img.__array_interface__["strides"]
            ((2, 3, 3), (9, 3, 1))
        """
        if self.device != "cpu":
            raise AttributeError("a GPU image has no __array_interface__ (Pillow, NumPy): copy it to the host first "
                                 "with img.numpy() or img.to('cpu')")
        array = self.array
        return {**array.__array_interface__, "strides": array.strides}

    def tobytes(self) -> bytes:
        """The pixels as bytes, row after row, without row padding (what Pillow's
        ``Image.fromarray`` reads from a host image). ArgumentTypeError on the GPU: copy first.

        Example:
            >>> import numpy as np
            >>> Image.from_array(np.arange(6, dtype=np.uint8).reshape(1, 2, 3), device="cpu").tobytes()
            b'\\x00\\x01\\x02\\x03\\x04\\x05'
        """
        if self.device != "cpu":
            raise ArgumentTypeError("tobytes() of a GPU image would copy it behind your back: call img.numpy().tobytes() "
                                    "(or img.to('cpu')) first")
        return self.array.tobytes()

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.array.__dlpack_device__()

    # ----------------------------------------------------------------- copies
    def numpy(self) -> np.ndarray:
        """A host copy of the pixels: a contiguous (H, W, C) NumPy array (waits for the GPU).

        Example:
            >>> Image.empty(2, 2, device="cpu").numpy().shape
            (2, 2, 3)
        """
        if self.device == "cuda":
            out = np.empty(self.shape, self._dtype)
            if self.is_contiguous:
                self.array.get(out=out)
            else:  # a pitched GPU view: copy row by row rather than allocate a device temporary
                for row in range(self._height):
                    self.array[row].get(out=out[row])
            return out
        return np.array(self.array, copy=True, order="C")

    def to(self, device: str) -> Image:
        """This image on ``device``: itself if already there, else a copy.

        Example:
            >>> img = Image.empty(2, 2, device="cpu")
            >>> img.to("cpu") is img
            True
        """
        target = resolve_device(device)
        if target == self.device:
            return self
        out = Image.empty(*self.shape, dtype=self._dtype, device=target)
        if target == "cpu":
            out.array[...] = self.numpy()
        else:
            out.array.set(np.ascontiguousarray(self.array))
        out.metadata = self.metadata
        return out

    def copy(self, out: Image | None = None, stream: Any = None) -> Image:
        """A device-side copy into ``out`` (reshaped, grown only if needed) or a new image.

        Example:
            >>> a = Image.empty(3, 3, device="cpu"); b = a.copy()
            >>> b.shape == a.shape and b.data_ptr != a.data_ptr
            True
        """
        if out is None:
            out = Image.empty(*self.shape, dtype=self._dtype, device=self.device)
        elif out.device != self.device:
            raise ArgumentError(f"out is on {out.device!r} but the image is on {self.device!r}; use img.to()")
        out.set_shape(*self.shape, dtype=self._dtype)
        with use_stream(self.device, stream):
            self.xp.copyto(out.array, self.array)
        out.metadata = self.metadata
        return out

    # ----------------------------------------------------------------- display
    def thumbnail(self, max_size: int = THUMBNAIL_SIZE) -> np.ndarray:
        """A small uint8 host copy for display, averaged down on the device first.

        Example:
            >>> Image.empty(1080, 1920, device="cpu").thumbnail().shape
            (135, 240, 3)
        """
        return thumbnail(self.array, max_size)

    def __repr__(self) -> str:
        return (
            f"Image({self._height}x{self._width}x{self._channels} {self._dtype.name}, {self.device}, "
            f"capacity={_human_bytes(self.capacity)})"
        )


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


class ImageBatch:
    """N images of different sizes in ONE arena allocation, with a kernel table.

    Slot i starts at ``table[i, 0]`` bytes into the arena (a multiple of
    ``SLOT_ALIGNMENT``) and holds ``height x width x channels`` pixels with the given
    pitch; ``kernel_table()`` is that table on the device, so one kernel launch can serve
    every image. ``set_shapes`` re-lays out the slots, growing the arena as a whole (one
    counted growth) only when the new total does not fit.

    Example:
        >>> batch = ImageBatch.empty([(300, 451), (480, 640)], device="cpu")
        >>> [img.shape for img in batch]
        [(300, 451, 3), (480, 640, 3)]
        >>> batch.table()[:, 0].tolist()
        [0, 406272]
    """

    def __init__(self, arena: Buffer, dtype: Any):
        self._arena = arena
        self._dtype = check_dtype(dtype)
        self._rows = np.zeros((0, len(TABLE_COLUMNS)), np.int64)
        self._reserved = np.zeros(0, np.int64)
        self._table = KernelTable(arena.device)
        self._views: list[Image] = []

    # ----------------------------------------------------------------- construction
    @classmethod
    def empty(
        cls,
        shapes: Sequence[Sequence[int]],
        channels: int = 3,
        dtype: Any = "uint8",
        capacity: int | None = None,
        device: str | None = None,
    ) -> ImageBatch:
        """A batch with one slot per ``(height, width)`` or ``(height, width, channels)``.

        Example:
            >>> ImageBatch.empty([(2, 2), (3, 3, 1)], device="cpu").shapes
            [(2, 2, 3), (3, 3, 1)]
        """
        dt = check_dtype(dtype)
        rows, reserved, total = slot_layout(shapes, channels, dt)
        check_int(capacity, "capacity", low=0, optional=True)  # bytes
        batch = cls(Buffer(max(total, int(capacity or 0), 1), device, purpose=f"a batch of {len(rows)} images"), dt)
        batch._install(rows, reserved)
        return batch

    @classmethod
    def from_images(cls, images: Iterable[Image | Any], device: str | None = None) -> ImageBatch:
        """A batch holding copies of ``images`` (Images or arrays; one dtype for all).

        Example:
            >>> import numpy as np
            >>> b = ImageBatch.from_images([np.ones((2, 3, 3), np.uint8), np.zeros((4, 4), np.uint8)])
            >>> b.shapes
            [(2, 3, 3), (4, 4, 1)]
        """
        items = [im if isinstance(im, Image) else Image.from_array(im) for im in images]
        if not items:
            raise ArgumentError("images must hold at least one image")
        dtypes = {im.dtype for im in items}
        if len(dtypes) != 1:
            raise ArgumentError(f"all images of a batch need one dtype, got {sorted(d.name for d in dtypes)}")
        dev = resolve_device(device) if device is not None else items[0].device
        batch = cls.empty([im.shape for im in items], dtype=items[0].dtype, device=dev)
        for slot, im in zip(batch, items):
            src = im.to(dev)
            slot.xp.copyto(slot.array, src.array)
        return batch

    # ----------------------------------------------------------------- layout
    def set_shapes(self, shapes: Sequence[Sequence[int]], channels: int = 3, dtype: Any = None) -> ImageBatch:
        """Re-lay out the batch for new image shapes; grows the arena only if needed.

        Example:
            >>> b = ImageBatch.empty([(100, 100)] * 4, device="cpu")
            >>> len(b.set_shapes([(50, 60)] * 6))
            6
        """
        dt = self._dtype if dtype is None else check_dtype(dtype)
        rows, reserved, total = slot_layout(shapes, channels, dt)
        self._arena.ensure(total)
        self._dtype = dt
        self._install(rows, reserved)
        return self

    def _install(self, rows: np.ndarray, reserved: np.ndarray) -> None:
        self._rows = rows
        self._reserved = reserved
        self._table.set(rows.copy())
        if len(self._views) != len(rows):
            self._views = [self._make_view(i) for i in range(len(rows))]
        else:
            for i, view in enumerate(self._views):
                offset, h, w, pitch, c = (int(v) for v in rows[i])
                # Offsets move when slot sizes change: a stale offset aliases another slot.
                view._offset, view._height, view._width, view._channels = offset, h, w, c
                view._dtype, view._pitch, view._view = self._dtype, pitch, None

    def _make_view(self, i: int) -> Image:
        offset, h, w, pitch, c = (int(v) for v in self._rows[i])
        return Image(self._arena, h, w, c, self._dtype, offset=offset, pitch=pitch, _batch=self, _index=i)

    def _slot_reserved(self, i: int) -> int:
        return int(self._reserved[i])

    def _slot_changed(self, i: int, height: int, width: int, channels: int, dtype: np.dtype) -> None:
        if dtype != self._dtype:
            raise ArgumentError(f"a batch has one dtype ({self._dtype.name}); use set_shapes(..., dtype=) for all")
        self._rows[i, 1:] = (height, width, width * channels * dtype.itemsize, channels)
        self._table.set(self._rows.copy())

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> Image:
        return self._views[index]

    def __iter__(self) -> Iterator[Image]:
        return iter(self._views)

    @property
    def images(self) -> list[Image]:
        """The slots as Image views (they share the arena)."""
        return list(self._views)

    @property
    def shapes(self) -> list[tuple[int, int, int]]:
        # tolist() first: an order of magnitude cheaper than iterating NumPy rows
        return [(h, w, c) for _, h, w, _, c in self._rows.tolist()]

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def device(self) -> Device:
        return self._arena.device  # type: ignore[return-value]

    @property
    def xp(self) -> Any:
        return array_module(self.device)

    @property
    def capacity(self) -> int:
        """Bytes the arena holds."""
        return self._arena.capacity

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data over all slots (without alignment gaps)."""
        return int((self._rows[:, 1] * self._rows[:, 3]).sum())

    @property
    def used_bytes(self) -> int:
        """Bytes from the arena's start to the end of the last slot (gaps included)."""
        if not len(self._rows):
            return 0
        last = self._rows[-1]
        return int(last[0] + last[1] * last[3])

    @property
    def data_ptr(self) -> int:
        """Address of the arena's first byte: table offsets are relative to it."""
        return self._arena.ptr

    @property
    def arena(self) -> Any:
        """The used part of the arena as one flat uint8 array (slot gaps included)."""
        return self._arena.data[: self.used_bytes]

    @property
    def uniform_channels(self) -> int | None:
        """The channel count shared by every slot, or None when they differ."""
        channels = set(self._rows[:, 4].tolist())
        return channels.pop() if len(channels) == 1 else None

    def table(self) -> np.ndarray:
        """The host copy of the kernel table: int64 rows of ``TABLE_COLUMNS``.

        Example:
            >>> ImageBatch.empty([(2, 3), (4, 5, 1)], device="cpu").table().tolist()
            [[0, 2, 3, 9, 3], [768, 4, 5, 5, 1]]
        """
        return self._rows.copy()

    def kernel_table(self, stream: Any = None) -> Any:
        """The kernel table on the batch's device (uploaded only after a layout change).

        Example:
            >>> ImageBatch.empty([(2, 3)], device="cpu").kernel_table().shape
            (1, 5)
        """
        return self._table.on_device(stream)

    def max_shape(self) -> tuple[int, int]:
        """(largest height, largest width) over the slots: the grid a batch kernel covers.

        Example:
            >>> ImageBatch.empty([(2, 9), (7, 3)], device="cpu").max_shape()
            (7, 9)
        """
        return int(self._rows[:, 1].max()), int(self._rows[:, 2].max())

    def numpy(self) -> list[np.ndarray]:
        """Host copies of every image (one device-to-host copy of the arena).

        Example:
            >>> [a.shape for a in ImageBatch.empty([(2, 3), (4, 5)], device="cpu").numpy()]
            [(2, 3, 3), (4, 5, 3)]
        """
        arena = self.arena.get() if self.device == "cuda" else np.asarray(self.arena)
        out = []
        for offset, h, w, pitch, c in self._rows.tolist():
            isz = self._dtype.itemsize
            out.append(np.array(strided_view(arena, offset, (h, w, c), self._dtype, (pitch, c * isz, isz))))
        return out

    def to(self, device: str) -> ImageBatch:
        """This batch on ``device``: itself if already there, else a copy.

        Example:
            >>> b = ImageBatch.empty([(2, 3)], device="cpu")
            >>> b.to("cpu") is b
            True
        """
        target = resolve_device(device)
        if target == self.device:
            return self
        out = ImageBatch.empty(self.shapes, dtype=self._dtype, device=target)
        if target == "cpu":
            out.arena[...] = self.arena.get()
        else:
            out.arena.set(np.ascontiguousarray(self.arena))
        return out

    def copy(self, out: ImageBatch | None = None, stream: Any = None) -> ImageBatch:
        """A device-side copy of the whole batch (one copy of the arena).

        Example:
            >>> b = ImageBatch.empty([(2, 3), (4, 5)], device="cpu")
            >>> b.copy().shapes == b.shapes
            True
        """
        if out is None:
            out = ImageBatch.empty(self.shapes, dtype=self._dtype, device=self.device)
        elif out.device != self.device:
            raise ArgumentError(f"out is on {out.device!r} but the batch is on {self.device!r}; use batch.to()")
        else:
            out.set_shapes(self.shapes, dtype=self._dtype)
        with use_stream(self.device, stream):
            self.xp.copyto(out.arena, self.arena)
        return out

    # ----------------------------------------------------------------- interop
    def _stacked_view(self) -> Any:
        """The slots as one zero-copy (N, H, W, C) strided view of the arena, when their
        shapes are equal and they lie evenly spaced in it; else ArgumentTypeError saying why.

        Example:
            >>> b = ImageBatch.empty([(2, 3)] * 4, device="cpu")
            >>> v = b._stacked_view(); v.shape, v.strides
            ((4, 2, 3, 3), (768, 9, 3, 1))
            >>> ImageBatch.empty([(2, 3), (4, 5)], device="cpu")._stacked_view()
            Traceback (most recent call last):
            ...
            gpuimg.errors.ArgumentTypeError: an ImageBatch exports through DLPack only as one (N, H, W, C) tensor, ...
        """
        if not len(self._rows):
            raise ArgumentTypeError("an empty ImageBatch has no (N, H, W, C) shape to export through DLPack")
        lead = "an ImageBatch exports through DLPack only as one (N, H, W, C) tensor, "
        instead = (
            "; export the images one at a time instead ([torch.from_dlpack(img) for img in batch]: each "
            "Image supports DLPack), or for a uint8 batch of one size gpuimg.to_tensor(batch) makes a "
            "normalised (N, C, H, W) float tensor (a copy)"
        )
        shapes = self.shapes
        if len(set(shapes)) != 1:
            shown = shapes if len(shapes) <= 4 else [*shapes[:4], "..."]
            raise ArgumentTypeError(
                f"{lead}but its {len(shapes)} images have different shapes {shown}{instead} once they are "
                "resized to one size (gpuimg.resize(batch, (height, width)))"
            )
        offsets = self._rows[:, 0]
        h, w, c = shapes[0]
        pitch = int(self._rows[0, 3])
        isz = self._dtype.itemsize
        step = int(offsets[1] - offsets[0]) if len(offsets) > 1 else h * pitch
        even = bool((offsets[1:] - offsets[:-1] == step).all())
        if not even or step < h * pitch or step % isz or pitch % isz:
            # Slots re-shaped one by one can be equal in shape yet unevenly spaced: no one
            # batch stride reaches them all, so there is no honest strided view to export.
            raise ArgumentTypeError(
                f"{lead}but its images, though all {h}x{w}x{c}, lie unevenly spaced in the arena "
                f"(byte offsets {offsets[:4].tolist()}{'...' if len(offsets) > 4 else ''}), so no one "
                f"stride reaches them all{instead} (batch.set_shapes(batch.shapes) lays the slots out "
                "evenly again but does not keep their pixels)"
            )
        strides = (step, pitch, c * isz, isz)
        return strided_view(self._arena.data, int(offsets[0]), (len(shapes), h, w, c), self._dtype, strides)

    def __dlpack__(self, **kwargs: Any) -> Any:
        """DLPack export of an equal-shape batch as one zero-copy (N, H, W, C) tensor whose
        batch stride is the slot spacing (a multiple of ``SLOT_ALIGNMENT``, so rows of
        images may be followed by padding); a batch of mixed shapes raises ArgumentTypeError.

        Example:
            >>> import numpy as np
            >>> b = ImageBatch.empty([(2, 3)] * 2, device="cpu"); b[1].array[...] = 5
            >>> t = np.from_dlpack(b); t.shape, int(t[1, 0, 0, 0])
            ((2, 2, 3, 3), 5)
        """
        return self._stacked_view().__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._arena.data.__dlpack_device__()

    def __repr__(self) -> str:
        return (
            f"ImageBatch({len(self)} images, {self._dtype.name}, {self.device}, "
            f"capacity={_human_bytes(self.capacity)})"
        )


def images_of(src: Image | ImageBatch | Iterable[Image]) -> list[Image]:
    """The images of a source, as a list: an Image alone, each image of an ImageBatch, or
    the items of a sequence of Images (the one spelling of "the images of a source").

    Example:
        >>> import gpuimg
        >>> len(images_of(gpuimg.ImageBatch.empty([(2, 2), (3, 3)], device="cpu")))
        2
    """
    if isinstance(src, Image):
        return [src]
    return list(src)
