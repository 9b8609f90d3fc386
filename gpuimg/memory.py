"""Capacity-backed buffers, the workspace of scratch buffers, and allocation statistics.

Every buffer the library allocates for pixels, scratch space or kernel tables is a
:class:`Buffer`, so :func:`memory_stats` counts every allocation gpuimg makes.

Growth policy (one for all buffers): a buffer asked to hold more than its capacity is
replaced by one of ``max(needed, 1.5 * capacity)`` bytes, rounded up to 512 bytes. A
stream of ever larger images therefore causes O(log(max/min)) growths, and the
steady state (no image larger than any before) allocates nothing. Buffers never shrink;
the contents are not kept across a growth (a new logical shape re-lays out the pixels),
nor across a growth that fails (OutOfMemoryError; the buffer keeps its old capacity).

Example:
    >>> import gpuimg
    >>> gpuimg.reset_memory_stats()
    >>> buf = Buffer(1000, device="cpu")
    >>> buf.ensure(800)     # fits: no allocation
    False
    >>> gpuimg.memory_stats()["allocations"]
    1
"""

from __future__ import annotations

import collections
import threading
import weakref
from typing import Any, NamedTuple

import numpy as np

from .device import array_module, cuda_available, device_key, resolve_device
from .errors import ArgumentError, OutOfMemoryError, check_int

__all__ = [
    "Buffer", "Allocation", "memory_stats", "recent_allocations", "reset_memory_stats", "scratch", "grown_capacity", "round_up", "address_of",
    "strided_view", "ALIGNMENT", "GROWTH_FACTOR",
]

ALIGNMENT = 512  # bytes; a multiple of every vector width and of CuPy's pool granularity
GROWTH_FACTOR = 1.5

# Re-entrant: a Buffer's release is counted from a weakref finalizer, and the garbage
# collector may run one (an ImageBatch is a reference cycle) inside a section that holds
# this lock, in the same thread; a plain Lock deadlocks there.
_lock = threading.RLock()
_counters: dict[str, dict[str, int]] = {}


def _device_counters(device: str) -> dict[str, int]:
    counters = _counters.get(device)
    if counters is None:
        counters = _counters[device] = dict(
            allocations=0, growths=0, bytes_allocated=0, bytes_reserved=0, peak_bytes_reserved=0
        )
    return counters


class Allocation(NamedTuple):
    """One buffer allocation gpuimg made (see :func:`recent_allocations`)."""

    device: str
    purpose: str
    nbytes: int
    growth: bool


_recent: collections.deque[Allocation] = collections.deque(maxlen=256)


def _record_allocation(device: str, nbytes: int, growth: bool, purpose: str = "a buffer") -> None:
    with _lock:
        _recent.append(Allocation(device, purpose, nbytes, growth))
        c = _device_counters(device)
        c["allocations"] += 1
        c["growths"] += int(growth)
        c["bytes_allocated"] += nbytes
        c["bytes_reserved"] += nbytes
        c["peak_bytes_reserved"] = max(c["peak_bytes_reserved"], c["bytes_reserved"])


def _record_release(device: str, nbytes: int) -> None:
    with _lock:
        _device_counters(device)["bytes_reserved"] -= nbytes


def memory_stats(device: str | None = None) -> dict[str, int]:
    """Allocation statistics of the buffers gpuimg made.

    Keys: ``allocations`` (buffers allocated, growths included), ``growths`` (allocations
    that replaced a too-small buffer), ``bytes_allocated`` (total ever allocated),
    ``bytes_reserved`` (held by live buffers now), ``peak_bytes_reserved``. With
    ``device=None`` the figures are summed over cpu and cuda.

    Example:
        >>> stats = memory_stats()
        >>> sorted(stats)[:2]
        ['allocations', 'bytes_allocated']
    """
    with _lock:
        devices = [device] if device is not None else list(_counters)
        total = dict(allocations=0, growths=0, bytes_allocated=0, bytes_reserved=0, peak_bytes_reserved=0)
        for name in devices:
            for key, value in _device_counters(name).items():
                total[key] += value
        return total


def recent_allocations(device: str | None = None) -> list[Allocation]:
    """The allocations counted by :func:`memory_stats` since the last reset (the latest
    256), oldest first: which buffer grew, when a steady state is not.

    Example:
        >>> reset_memory_stats()
        >>> buf = Buffer(1000, "cpu", purpose="an example")
        >>> [(a.purpose, a.nbytes, a.growth) for a in recent_allocations("cpu")]
        [('an example', 1024, False)]
    """
    with _lock:
        return [a for a in _recent if device is None or a.device == device]


def reset_memory_stats() -> None:
    """Zero the counters (``bytes_reserved`` stays: it is what live buffers hold now).

    Example:
        >>> reset_memory_stats(); memory_stats()["allocations"]
        0
    """
    with _lock:
        _recent.clear()
        for c in _counters.values():
            c.update(allocations=0, growths=0, bytes_allocated=0, peak_bytes_reserved=c["bytes_reserved"])


def grown_capacity(capacity: int, needed: int) -> int:
    """The capacity a buffer of ``capacity`` bytes grows to when it must hold ``needed``
    bytes: the one growth policy of every gpuimg buffer (see the module docstring).

    Example:
        >>> grown_capacity(1000, 1100), grown_capacity(1000, 4000)
        (1536, 4096)
    """
    return round_up(max(int(needed), int(capacity * GROWTH_FACTOR)))


def round_up(n: int, to: int = ALIGNMENT) -> int:
    """``n`` rounded up to a multiple of ``to`` (default: :data:`ALIGNMENT`).

    Example:
        >>> round_up(1), round_up(1000, 768)
        (512, 1536)
    """
    return -(-n // to) * to


def _allocate_bytes(nbytes: int, device: str, pinned: bool, purpose: str, shareable: bool = False) -> Any:
    """A fresh 1-D uint8 array of ``nbytes`` on ``device``; OutOfMemoryError if it cannot be had."""
    try:
        return _allocate_raw(nbytes, device, pinned, shareable)
    except (MemoryError, ValueError) as exc:  # NumPy says "array is too big" with a ValueError
        if isinstance(exc, ValueError) and device == "cuda":
            raise
        raise OutOfMemoryError(
            f"cannot allocate {nbytes:,} bytes of {'pinned host' if pinned else device} memory for {purpose} ({exc})"
        ) from exc


def _allocate_raw(nbytes: int, device: str, pinned: bool, shareable: bool = False) -> Any:
    if device == "cuda":
        import cupy

        if shareable:  # its own cudaMalloc, not a piece of a pool block: CUDA IPC exports whole allocations
            return cupy.ndarray((nbytes,), dtype=np.uint8, memptr=cupy.cuda.MemoryPointer(cupy.cuda.Memory(nbytes), 0))
        return cupy.ndarray((nbytes,), dtype=np.uint8, memptr=cupy.cuda.alloc(nbytes))
    if pinned:
        import cupy

        memory = cupy.cuda.alloc_pinned_memory(nbytes)
        return np.frombuffer(memory, dtype=np.uint8, count=nbytes)
    return np.empty(nbytes, dtype=np.uint8)


class Buffer:
    """A growable block of bytes on one device: the storage of Images, arenas and scratch.

    ``data`` is a 1-D uint8 array (CuPy or NumPy) of ``capacity`` bytes. ``ensure(n)``
    makes room for ``n`` bytes by the module's growth policy and bumps ``generation``
    (views made before a growth are stale). ``pinned=True`` asks for page-locked host
    memory (needs a CUDA device; falls back to pageable memory without one).
    ``shareable=True`` (GPU) gives the buffer an allocation of its own, which another
    process can map through :meth:`ipc_handle`.

    Example:
        >>> buf = Buffer(256, device="cpu")
        >>> buf.ensure(4096), buf.capacity >= 4096
        (True, True)
    """

    def __init__(self, nbytes: int, device: str | None = None, *, pinned: bool = False, purpose: str = "a buffer",
                 shareable: bool = False):
        self.device = resolve_device(device)
        self.shareable = bool(shareable) and self.device == "cuda"
        check_int(nbytes, "nbytes", low=0)
        self.pinned = bool(pinned) and self.device == "cpu" and cuda_available()  # page-locking needs a CUDA driver
        self.generation = 0
        self.purpose = purpose  # named in an out-of-memory error
        self.data: Any = None
        self._allocate(max(round_up(int(nbytes)), ALIGNMENT), growth=False)

    @property
    def capacity(self) -> int:
        """Bytes this buffer can hold without growing."""
        return int(self.data.size)

    @property
    def ptr(self) -> int:
        """Address of the first byte (device address for cuda); fixed until the next growth."""
        return self._ptr

    @property
    def xp(self) -> Any:
        return array_module(self.device)

    def ensure(self, nbytes: int) -> bool:
        """Make the capacity at least ``nbytes``; returns True when the buffer grew.

        Example:
            >>> buf = Buffer(512, device="cpu")
            >>> buf.ensure(100), buf.ensure(1000), buf.capacity
            (False, True, 1024)
        """
        if nbytes <= self.capacity:
            return False
        self._allocate(grown_capacity(self.capacity, nbytes), growth=True)
        return True

    def _allocate(self, nbytes: int, growth: bool) -> None:
        old_capacity = 0 if self.data is None else self.capacity
        self.data = None  # drop the old block first so the pool can reuse it
        try:
            data = _allocate_bytes(nbytes, self.device, self.pinned, self.purpose, self.shareable)
        except OutOfMemoryError:
            if old_capacity:  # a failed growth leaves a usable buffer of the old capacity
                self._allocate(old_capacity, growth=False)
            raise
        _record_allocation(self.device, nbytes, growth, self.purpose)
        weakref.finalize(data, _record_release, self.device, nbytes)
        self.data = data
        # cached: ops ask for it several times a call, and NumPy's address lookup is not free
        self._ptr = address_of(data)
        self.generation += 1

    def ipc_handle(self) -> bytes:
        """The CUDA IPC handle of a ``shareable`` buffer (valid until its next growth).

        Example (needs a GPU):
            >>> len(Buffer(1 << 20, "cuda", shareable=True).ipc_handle())  # doctest: +SKIP
            64
        """
        if not self.shareable:
            raise ArgumentError("only a Buffer made with shareable=True on the GPU has an IPC handle")
        import cupy

        return bytes(cupy.cuda.runtime.ipcGetMemHandle(self._ptr))

    def view(self, offset: int, shape: tuple[int, ...], dtype: Any, strides: tuple[int, ...]) -> Any:
        """A typed view of the bytes from ``offset`` with the given shape and byte strides.

        Example:
            >>> Buffer(512, device="cpu").view(8, (2, 3), np.uint16, (6, 2)).shape
            (2, 3)
        """
        return strided_view(self.data, offset, shape, dtype, strides)

    def __repr__(self) -> str:
        kind = "pinned " if self.pinned else ""
        return f"Buffer({self.capacity} bytes, {kind}{self.device})"


def address_of(array: Any) -> int:
    """The address of ``array``'s first element (a device address for CuPy arrays).

    Example:
        >>> a = np.zeros(8, np.uint8)
        >>> address_of(a[4:]) - address_of(a)
        4
    """
    if isinstance(array, np.ndarray):
        return int(array.__array_interface__["data"][0])
    return int(array.data.ptr)


def strided_view(raw: Any, offset: int, shape: tuple[int, ...], dtype: Any, strides: tuple[int, ...]) -> Any:
    """A view of the 1-D uint8 array ``raw`` from byte ``offset``, typed, shaped and strided.

    Works the same for NumPy and CuPy; no copy. The caller guarantees the view fits.

    Example:
        >>> raw = np.arange(16, dtype=np.uint8)
        >>> strided_view(raw, 2, (2, 3), np.uint8, (8, 1)).tolist()
        [[2, 3, 4], [10, 11, 12]]
    """
    dtype = np.dtype(dtype)
    xp = array_module("cuda" if not isinstance(raw, np.ndarray) else "cpu")
    extent = max(0, int(raw.size) - offset)
    extent -= extent % dtype.itemsize
    typed = raw[offset : offset + extent].view(dtype)
    return xp.lib.stride_tricks.as_strided(typed, shape=shape, strides=strides)


_workspace = threading.local()


def scratch(name: str, nbytes: int, device: str) -> Buffer:
    """The calling thread's scratch buffer ``name`` on ``device``, with at least ``nbytes``.

    Ops use scratch for intermediate results (a separable blur's middle pass, an in-place
    neighbourhood op's copy) so that a call allocates nothing once the buffer is big
    enough. Scratch is per thread because two threads may run ops at once; one op call
    must use distinct names for buffers it needs at the same time.

    Example:
        >>> tmp = scratch("example", 1024, "cpu")
        >>> scratch("example", 512, "cpu") is tmp
        True
    """
    buffers = getattr(_workspace, "buffers", None)
    if buffers is None:
        buffers = _workspace.buffers = {}
    key = (device_key(device), name)  # a buffer of one GPU is of no use on another
    buf = buffers.get(key)
    if buf is None:
        buf = buffers[key] = Buffer(nbytes, device)
    else:
        buf.ensure(nbytes)
    return buf
