"""CPU codecs in a supervised child process: one hostile file costs one failed item.

nvImageCodec's CPU decoders (OpenCV's libpng, libwebp, libtiff, OpenJPEG, libjpeg-turbo)
are native code fed with bytes from anywhere. A file that crashes one of them, makes it
allocate gigabytes or never returns would take the caller's process down with it, and
every other item of its batch. So gpuimg runs those decoders in a child process
(:mod:`gpuimg.codec._child`) that shares one memory block with the caller: the encoded
bytes go in, the pixels come back in place (one copy out, into the target Image), and
only a few numbers cross the socket. The child decodes under an address-space limit of
``memory_factor`` x the decoded bytes + ``memory_extra_mb`` beyond what it already holds,
and within ``timeout_s`` (plus a second per 10 megapixels) per call. When it dies or
hangs, it is restarted and the batch is bisected until the poison file is alone: that
item fails with a :class:`~gpuimg.DecodeError` saying what happened, and every other item
is decoded.

What it costs: the GPU JPEG decoder runs in the caller's
process as before; only the CPU codecs pay one extra copy of their pixels and a round
trip per batch (figures in BENCHMARKS.md). Children are kept in a pool and reused; the
first call starts one. Linux only (shared memory by ``memfd``); elsewhere, or with
``Isolation(enabled=False)``, CPU codecs run in the caller's process.

Example:
    >>> Isolation().memory_budget(1_000_000)
    213715200
    >>> Isolation(enabled=False).active
    False
"""

from __future__ import annotations

import atexit
import mmap
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import numpy as np

from ..memory import grown_capacity, round_up

__all__ = ["Isolation", "IsolatedItem", "IsolationUnavailable", "decode", "supported"]


@dataclass(frozen=True)
class Isolation:
    """How gpuimg runs CPU codecs: in a supervised child process (the default) or not.

    ``timeout_s``: a call that takes longer (plus 1 s per 10 megapixels it decodes) is a
    hang: the child is killed and the file that hangs it fails. ``memory_factor`` and
    ``memory_extra_mb``: the address space a call may add, ``memory_factor`` x the
    decoded bytes + ``memory_extra_mb``; a decoder that needs more fails that item.
    ``start_timeout_s``: how long a child may take to start.

    Example:
        >>> Isolation(timeout_s=5).timeout_for(20_000_000)
        7.0
    """

    enabled: bool = True
    timeout_s: float = 60.0
    memory_factor: float = 4.0
    memory_extra_mb: int = 200
    start_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_factor", "start_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"Isolation.{name} must be a positive number, got {value!r}")
        if not isinstance(self.memory_extra_mb, int) or self.memory_extra_mb < 0:
            raise ValueError(f"Isolation.memory_extra_mb must be an int >= 0, got {self.memory_extra_mb!r}")

    @property
    def active(self) -> bool:
        """True when CPU codecs run in a child process here (enabled and supported)."""
        return self.enabled and supported()

    def memory_budget(self, decoded_bytes: int) -> int:
        """The address space (bytes) a call decoding ``decoded_bytes`` may add."""
        return int(self.memory_factor * decoded_bytes) + (self.memory_extra_mb << 20)

    def timeout_for(self, pixels: int) -> float:
        """Seconds a call decoding ``pixels`` pixels may take."""
        return float(self.timeout_s) + pixels / 10e6


class IsolatedItem(NamedTuple):
    """One decode for the child: the encoded bytes, the target's shape and parameters.

    ``sample_format`` / ``color_spec``: nvImageCodec's enum member names ("I_RGB", "SRGB").
    """

    data: Any
    height: int
    width: int
    channels: int
    dtype: np.dtype
    sample_format: str
    color_spec: str
    any_depth: bool
    label: str


def supported() -> bool:
    """True where the child process can run (Linux: memfd and file-descriptor passing)."""
    return sys.platform.startswith("linux") and hasattr(os, "memfd_create") and hasattr(socket, "send_fds")


class IsolationUnavailable(RuntimeError):
    """No child process could be started here; the caller decodes in its own process."""


class _Crashed(Exception):
    """The child died or hung during a call; ``reason`` says how."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Child:
    """One started child process and the memory block it shares with this process."""

    def __init__(self, threads: int, config: Isolation):
        self.threads = threads
        ours, theirs = socket.socketpair()
        self.sock = ours
        self.conn = Connection(os.dup(ours.fileno()))
        env = dict(os.environ)
        # Where this gpuimg came from, so the child imports the same one; few malloc
        # arenas, so the address-space limit measures the decoder, not per-thread reserves.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("MALLOC_ARENA_MAX", "2")
        env.setdefault("PYNVIMGCODEC_VERBOSITY", "0")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gpuimg.codec._child", str(theirs.fileno()), str(threads)],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C reaches the caller, which stops the child
        )
        theirs.close()
        self.block: np.ndarray | None = None
        self.capacity = 0
        self.pinned = False  # the block is page-locked for fast copies to a GPU
        try:
            self._expect("ready", config.start_timeout_s)
        except _Crashed as exc:
            self.kill()
            raise IsolationUnavailable(f"the isolated decoder process did not start: {exc.reason}") from None

    def _expect(self, kind: str, timeout: float) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout
        while not self.conn.poll(min(0.5, max(0.0, deadline - time.monotonic()))):
            if self.proc.poll() is not None:
                raise _Crashed(self._death())
            if time.monotonic() > deadline:
                self.kill()
                raise _Crashed(f"the decoder did not finish within {timeout:.0f} s (killed)")
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            self.proc.wait(timeout=10)
            raise _Crashed(self._death()) from None
        if msg[0] != kind:
            self.kill()
            raise _Crashed(f"the decoder process answered {msg[0]!r} instead of {kind!r}")
        return msg

    def _death(self) -> str:
        rc = self.proc.poll()
        if rc is not None and rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = f"signal {-rc}"
            return f"the decoder crashed on it ({name}; contained in a child process)"
        return f"the decoder process exited on it (status {rc})"

    def ensure(self, nbytes: int, timeout: float) -> np.ndarray:
        """The shared block, grown (a new one, sent to the child) to hold ``nbytes``."""
        if nbytes > self.capacity:
            capacity = grown_capacity(self.capacity, nbytes)
            fd = os.memfd_create("gpuimg-decode", os.MFD_CLOEXEC)
            try:
                os.ftruncate(fd, capacity)
                block = np.frombuffer(mmap.mmap(fd, capacity), np.uint8)
                self.conn.send(("map", capacity))
                socket.send_fds(self.sock, [b"m"], [fd])
            finally:
                os.close(fd)
            self._expect("mapped", timeout)
            self._unpin()
            self.block, self.capacity = block, capacity
        assert self.block is not None
        return self.block

    def pin(self) -> None:
        """Page-lock the block (for every CUDA context), so copies to a GPU run at DMA
        speed; kept until the block is replaced."""
        if self.pinned or self.block is None:
            return
        import cupy

        cupy.cuda.runtime.hostRegister(self.block.ctypes.data, self.capacity, 1)  # 1: portable
        self.pinned = True

    def _unpin(self) -> None:
        if self.pinned and self.block is not None:
            import cupy

            cupy.cuda.runtime.hostUnregister(self.block.ctypes.data)
        self.pinned = False

    def call(self, items: list[IsolatedItem], config: Isolation) -> tuple[list[Any], np.ndarray, list[int]]:
        """Decode ``items``; returns (statuses, shared block, output offsets)."""
        in_offs, out_offs, pos = [], [], 0
        for item in items:
            in_offs.append(pos)
            pos = round_up(pos + len(item.data), 64)
        for item in items:
            out_offs.append(pos)
            pos = round_up(pos + item.height * item.width * item.channels * item.dtype.itemsize)
        timeout = config.timeout_for(sum(i.height * i.width for i in items))
        block = self.ensure(pos, timeout)
        for item, off in zip(items, in_offs):
            block[off : off + len(item.data)] = np.frombuffer(item.data, np.uint8)
        rows = [
            (i_off, len(it.data), o_off, it.height, it.width, it.channels, it.dtype.str, it.sample_format, it.color_spec, it.any_depth)
            for it, i_off, o_off in zip(items, in_offs, out_offs)
        ]
        decoded = sum(it.height * it.width * it.channels * it.dtype.itemsize for it in items)
        try:
            self.conn.send(("decode", rows, config.memory_budget(decoded)))
        except OSError:
            raise _Crashed(self._death()) from None
        return self._expect("decoded", timeout)[1], block, out_offs

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self) -> None:
        try:
            self._unpin()
        except Exception:  # the CUDA runtime may be gone at exit
            pass
        self.conn.close()
        self.sock.close()

    def stop(self) -> None:
        try:
            self.conn.send(("stop",))
            self.proc.wait(timeout=2)
        except Exception:
            pass
        self.kill()


# Idle children, reused by any thread; each call takes one for itself.
_idle: list[_Child] = []
_lock = threading.Lock()
_owner_pid = os.getpid()


_starting: dict[int, threading.Event] = {}  # threads -> set once prestart's child is idle (or failed)


def prestart(threads: int, config: Isolation) -> None:
    """Start a child in the background, for a decode that will come soon (a child takes
    about as long to start as a Python process importing NumPy and nvImageCodec): a
    ``_take`` meanwhile waits for it instead of starting another.

    Example:
        >>> prestart(0, Isolation(enabled=False))  # nothing to start: isolation is off
    """
    if not config.active:
        return
    with _lock:
        if threads in _starting or any(c.threads == threads for c in _idle):
            return
        done = _starting[threads] = threading.Event()

    def start() -> None:
        try:
            _give_back(_Child(threads, config))
        except Exception:  # noqa: BLE001 - the decode that needs one starts it and meets the error
            pass
        finally:
            with _lock:
                _starting.pop(threads, None)
            done.set()

    threading.Thread(target=start, name="gpuimg-isolation-start", daemon=True).start()


def _take(threads: int, config: Isolation) -> _Child:
    global _owner_pid
    with _lock:
        if _owner_pid != os.getpid():  # a forked process: the children are the parent's
            _idle.clear()
            _starting.clear()
            _owner_pid = os.getpid()
        for k, child in enumerate(_idle):
            if child.threads == threads:
                del _idle[k]
                if child.alive():
                    return child
                child.close()
                break
        starting = _starting.get(threads)
    if starting is not None:  # prestart's child is nearly there: take it rather than start a second
        starting.wait(config.start_timeout_s)
        with _lock:
            for k, child in enumerate(_idle):
                if child.threads == threads and child.alive():
                    del _idle[k]
                    return child
    return _Child(threads, config)


def _give_back(child: _Child) -> None:
    if not child.alive():
        child.close()
        return
    with _lock:
        if len(_idle) < 64:
            _idle.append(child)
            return
    child.stop()


@atexit.register
def _stop_all() -> None:
    with _lock:
        children = list(_idle) if _owner_pid == os.getpid() else []
        _idle.clear()
    for child in children:
        child.stop()


def decode(
    items: Sequence[IsolatedItem],
    deliver: Callable[[int, np.ndarray], None],
    config: Isolation,
    threads: int = 0,
    *,
    for_gpu: bool = False,
    delivered: Callable[[], None] | None = None,
) -> list[str | None]:
    """Decode ``items`` in a child process; ``deliver(k, pixels)`` gets each good item's
    pixels (a host array, valid only until ``delivered()`` returns: copy it out, e.g. with
    asynchronous copies that ``delivered`` waits for); returns, per item, None
    (delivered) or the reason it failed. ``for_gpu``: the pixels go to a GPU, so the
    shared block is page-locked (fast, asynchronous copies).

    A child that dies or hangs is replaced and its batch bisected, so the items that did
    not cause it are still decoded (each bisection step costs a child start).

    Example:
        >>> from pathlib import Path
        >>> import gpuimg
        >>> data = (Path(gpuimg.__file__).parent.parent / "assets" / "chelsea.png").read_bytes()
        >>> item = IsolatedItem(data, 300, 451, 3, np.dtype(np.uint8), "I_RGB", "SRGB", False, "chelsea.png")
        >>> shapes = []
        >>> decode([item, item._replace(data=b"junk")], lambda k, px: shapes.append(px.shape), Isolation())
        [None, 'nvImageCodec could not decode it (corrupt or truncated data, or an unsupported variant)']
        >>> shapes
        [(300, 451, 3)]
    """
    reasons: list[str | None] = [None] * len(items)
    holder: list[_Child | None] = [None]

    crashed: list[str] = []  # why a child of this call died (its replacement may not start)

    def run(members: list[int]) -> None:
        child = holder[0]
        try:
            if child is None:
                try:
                    child = holder[0] = _take(threads, config)
                except IsolationUnavailable:
                    if not crashed:
                        raise  # no child at all: the caller decodes in its own process
                    # Never in-process after a crash: the poison file is among these.
                    for k in members:
                        reasons[k] = f"{crashed[0]}, on this item or another of its batch, and no new decoder process started"
                    return
            statuses, block, offs = child.call([items[k] for k in members], config)
            if for_gpu:
                child.pin()
        except _Crashed as crash:
            crashed.append(crash.reason)
            if holder[0] is not None:
                holder[0].kill()
            holder[0] = None
            if len(members) == 1:
                reasons[members[0]] = crash.reason
                return
            half = len(members) // 2
            run(members[:half])
            run(members[half:])
            return
        again = []
        for k, status, off in zip(members, statuses, offs):
            item = items[k]
            if status == "ok":
                n = item.height * item.width * item.channels * item.dtype.itemsize
                deliver(k, block[off : off + n].view(item.dtype).reshape(item.height, item.width, item.channels))
            elif status == "memory" and len(members) > 1:
                again.append(k)  # one item may have taken the whole call's budget: each alone
            else:
                reasons[k] = _reason(status, item, config)
        if delivered is not None:
            delivered()  # the block is reused by the next call
        for k in again:
            run([k])

    try:
        if items:
            run(list(range(len(items))))
    finally:
        if holder[0] is not None:
            _give_back(holder[0])
    return reasons


def _reason(status: Any, item: IsolatedItem, config: Isolation) -> str:
    if status == "memory":
        mb = config.memory_budget(item.height * item.width * item.channels * item.dtype.itemsize) >> 20
        return f"its decoder needed more than the memory bound ({mb:,} MB: Isolation.memory_factor x decoded size + memory_extra_mb)"
    if isinstance(status, tuple | list) and status[0] == "unwritten":
        return unwritten_reason(item.width, item.height, status[1], item.height * item.width * item.channels * item.dtype.itemsize)
    return "nvImageCodec could not decode it (corrupt or truncated data, or an unsupported variant)"


def unwritten_reason(width: int, height: int, missing: int, total: int) -> str:
    """The error text for a decode that left ``missing`` of ``total`` bytes unwritten.

    Example:
        >>> unwritten_reason(4, 2, 8, 24)[:45]
        'the decoder reported success but wrote only p'
    """
    return (
        f"the decoder reported success but wrote only part of the {width}x{height} image "
        f"(at least {missing:,} of {total:,} bytes unwritten: corrupt data or a header that does not match it)"
    )
