"""CPU codecs in a supervised child process: one hostile file costs one failed item.

nvImageCodec's CPU decoders (OpenCV's libpng, libwebp, libtiff, OpenJPEG, libjpeg-turbo)
are native code fed with bytes from anywhere. A file that crashes one of them, makes it
allocate gigabytes or never returns would take the caller's process down with it, and
every other item of its batch. So gpuimg runs those decoders in a child process
(:mod:`gpuimg.codec.isolation.child`) that shares one memory block with the caller: the encoded
bytes go in, the pixels come back in place (one copy out, into the target Image), and
only a few numbers cross the socket. The child decodes under an address-space limit of
``memory_factor`` x the decoded bytes + ``memory_extra_mb`` beyond what it already holds,
and within ``timeout_s`` (plus a second per 10 megapixels) per call. When it dies or
hangs, it is restarted and the batch is bisected until the poison file is alone: that
item fails with a :class:`~gpuimg.DecodeError` saying what happened, and every other item
is decoded.

A call with many items spreads them over several children, one per core by default
(``Isolation.children``), balanced by decoded bytes, each share decoded at the same time
and contained on its own: a crash restarts that child and bisects that share only.

What it costs: the GPU JPEG decoder runs in the caller's
process as before; only the CPU codecs pay one extra copy of their pixels and a round
trip per batch (figures in BENCHMARKS.md). Children are kept in a pool and reused; the
first call starts one, a large call starts the others in the background for the calls
after it (or :func:`prestart` starts them ahead), and a small call uses one. Linux only (shared memory by ``memfd``); elsewhere, or with
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
import queue
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

from ..._exits import died_of
from ...device import usable_cores
from ...errors import ArgumentError
from ...memory import grown_capacity, round_up

__all__ = ["Isolation", "IsolatedItem", "IsolationUnavailable", "decode", "prestart", "supported", "child_threads", "unwritten_reason"]


@dataclass(frozen=True)
class Isolation:
    """How gpuimg runs CPU codecs: in a supervised child process (the default) or not.

    ``timeout_s``: a call that takes longer (plus 1 s per 10 megapixels it decodes) is a
    hang: the child is killed and the file that hangs it fails. ``memory_factor`` and
    ``memory_extra_mb``: the address space a call may add, ``memory_factor`` x the
    decoded bytes + ``memory_extra_mb``; a decoder that needs more fails that item.
    ``start_timeout_s``: how long a child may take to start.

    ``children``: how many children one decode call may spread its items over, each
    decoding its share at the same time (None: one per core this process may use,
    divided by the decoder's ``num_threads`` where that is set; a process that shares
    the machine with others, e.g. one of several shards, sets its part of the cores).
    ``split_bytes``: a call uses one more child per this many decoded bytes, so a small
    call (one file) uses one child and starts no others.

    Example:
        >>> Isolation(timeout_s=5).timeout_for(20_000_000)
        7.0
        >>> Isolation(children=4).pool_size(), Isolation(children=4).children_for(5, 100 << 20)
        (4, 4)
        >>> Isolation(children=4).children_for(1, 100 << 20)  # one file: one child
        1
    """

    enabled: bool = True
    timeout_s: float = 60.0
    memory_factor: float = 4.0
    memory_extra_mb: int = 200
    start_timeout_s: float = 60.0
    children: int | None = None
    split_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        for name in ("timeout_s", "memory_factor", "start_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise ArgumentError(f"Isolation.{name} must be a positive number, got {value!r}")
        if not isinstance(self.memory_extra_mb, int) or self.memory_extra_mb < 0:
            raise ArgumentError(f"Isolation.memory_extra_mb must be an int >= 0, got {self.memory_extra_mb!r}")
        if self.children is not None and (not isinstance(self.children, int) or isinstance(self.children, bool) or self.children < 1):
            raise ArgumentError(f"Isolation.children must be None or an int >= 1, got {self.children!r}")
        if not isinstance(self.split_bytes, int) or isinstance(self.split_bytes, bool) or self.split_bytes < 1:
            raise ArgumentError(f"Isolation.split_bytes must be an int >= 1, got {self.split_bytes!r}")

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

    def pool_size(self, threads: int = 0) -> int:
        """The most children a call of a decoder with ``num_threads=threads`` may use."""
        if self.children is not None:
            return self.children
        return max(1, usable_cores() // max(1, threads))

    def children_for(self, items: int, decoded_bytes: int, threads: int = 0) -> int:
        """How many children a call of ``items`` items decoding to ``decoded_bytes`` uses."""
        return max(1, min(self.pool_size(threads), items, decoded_bytes // self.split_bytes))


def child_threads(threads: int) -> int:
    """nvImageCodec CPU threads of a child serving a decoder with ``num_threads=threads``.

    nvImageCodec 0.9's CPU decoder decodes a batch on one core whatever its thread
    count (its CPU time equals its wall time at 1 and 2 threads), so parallel decoding
    comes from children, one per core, each on one thread: children x threads stay
    within the cores. An explicit ``num_threads`` is passed on.

    Example:
        >>> child_threads(0), child_threads(4)
        (1, 4)
    """
    return threads if threads > 0 else 1


class IsolatedItem(NamedTuple):
    """One decode for the child: the encoded bytes, the target's shape and parameters.

    ``sample_format`` / ``color_spec``: nvImageCodec's enum member names ("I_RGB", "SRGB").
    ``codec``: "" for nvImageCodec's codecs; the format's name ("gif", "ico", ...) for one
    that Pillow decodes (:mod:`gpuimg.codec.pillow`).
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
    codec: str = ""


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
        self._counted = False
        _count_started(self)
        ours, theirs = socket.socketpair()
        self.sock = ours
        self.conn = Connection(os.dup(ours.fileno()))
        env = dict(os.environ)
        # Where this gpuimg came from, so the child imports the same one; few malloc
        # arenas, so the address-space limit measures the decoder, not per-thread reserves.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
        env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("MALLOC_ARENA_MAX", "2")
        env.setdefault("PYNVIMGCODEC_VERBOSITY", "0")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gpuimg.codec.isolation.child", str(theirs.fileno()), str(child_threads(threads))],
                pass_fds=[theirs.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C reaches the caller, which stops the child
            )
        except OSError as exc:
            _count_closed(self)
            self.conn.close()
            ours.close()
            raise IsolationUnavailable(f"the isolated decoder process did not start: {exc}") from None
        finally:
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
        name = died_of(rc)
        if name is not None:
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
            (i_off, len(it.data), o_off, it.height, it.width, it.channels, it.dtype.str, it.sample_format, it.color_spec,
             it.any_depth, it.codec)
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
        _count_closed(self)
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


# The pool: idle children, reused by any thread; each call takes the ones it uses. Keyed
# by the decoder's thread count (a child's nvImageCodec decoder is made with it).
_idle: list[_Child] = []
_lock = threading.Lock()
_owner_pid = os.getpid()
_count: dict[int, int] = {}  # threads -> children started or starting and not yet closed
_exiting = False  # set at exit: a child that finishes starting after it is stopped at once
# Bumped by _stop_all: a child whose start began before then is stopped when it is ready
# instead of joining the pool (it was started under settings that are gone, e.g. another
# environment).
_generation = 0


_starting: dict[int, threading.Event] = {}  # threads -> set once prestart's child is idle (or failed)


def _check_owner() -> None:
    """Forget the parent's children in a forked process (call with ``_lock`` held)."""
    global _owner_pid
    if _owner_pid != os.getpid():
        _idle.clear()
        _starting.clear()
        _count.clear()
        _owner_pid = os.getpid()


def _count_started(child: _Child) -> None:
    with _lock:
        _check_owner()
        _count[child.threads] = _count.get(child.threads, 0) + 1
        child._counted = True


def _count_closed(child: _Child) -> None:
    with _lock:
        if child._counted and _owner_pid == os.getpid():
            _count[child.threads] = max(0, _count.get(child.threads, 0) - 1)
        child._counted = False


def prestart(threads: int, config: Isolation, children: int | None = 1) -> None:
    """Start children in the background, for decodes that will come soon (a child takes
    about as long to start as a Python process importing NumPy and nvImageCodec): a
    call meanwhile waits for the first instead of starting another. ``children``: how
    many to have ready (None: :meth:`Isolation.pool_size`, for a run that will decode
    many CPU-codec files at once); the others start once the first is ready, so they
    do not slow it down. Returns at once.

    Example:
        >>> prestart(0, Isolation(enabled=False))  # nothing to start: isolation is off
    """
    if not config.active:
        return
    want = config.pool_size(threads) if children is None else max(1, min(int(children), config.pool_size(threads)))
    with _lock:
        _check_owner()
        if threads in _starting:
            return
        if _count.get(threads, 0) > 0:
            first = None
        else:
            first = _starting[threads] = threading.Event()
    if first is None:
        _grow(threads, config, want)
        return

    generation = _generation

    def start() -> None:
        try:
            _give_back(_Child(threads, config), generation)
        except Exception:  # noqa: BLE001 - the decode that needs one starts it and meets the error
            return
        finally:
            with _lock:
                _starting.pop(threads, None)
            first.set()
        _grow(threads, config, want)

    threading.Thread(target=start, name="gpuimg-isolation-start", daemon=True).start()


def _grow(threads: int, config: Isolation, total: int) -> None:
    """Start children in the background until ``total`` exist for ``threads`` (never
    more than the pool size); they go idle for the calls that come next."""
    with _lock:
        _check_owner()
        missing = min(total, config.pool_size(threads)) - _count.get(threads, 0)
    generation = _generation
    for _ in range(max(0, missing)):

        def start() -> None:
            try:
                _give_back(_Child(threads, config), generation)
            except Exception:  # noqa: BLE001 - a call that needs one more starts it and meets the error
                pass

        threading.Thread(target=start, name="gpuimg-isolation-grow", daemon=True).start()


def _take_idle(threads: int, most: int) -> list[_Child]:
    """Up to ``most`` idle, live children for ``threads`` (none started)."""
    taken: list[_Child] = []
    dead: list[_Child] = []
    with _lock:
        _check_owner()
        k = 0
        while k < len(_idle) and len(taken) < most:
            child = _idle[k]
            if child.threads != threads:
                k += 1
                continue
            del _idle[k]
            (taken if child.alive() else dead).append(child)
    for child in dead:
        child.close()
    return taken


def _take(threads: int, config: Isolation) -> _Child:
    """An idle child for ``threads``, the one prestart is starting, or a new one."""
    found = _take_idle(threads, 1)
    if found:
        return found[0]
    with _lock:
        starting = _starting.get(threads)
    if starting is not None:  # prestart's child is nearly there: take it rather than start a second
        starting.wait(config.start_timeout_s)
        found = _take_idle(threads, 1)
        if found:
            return found[0]
    return _Child(threads, config)


def _give_back(child: _Child, generation: int | None = None) -> None:
    """Return ``child`` to the pool (``generation``: the pool's when its start began)."""
    if not child.alive():
        child.close()
        return
    with _lock:
        current = generation is None or generation == _generation
        if current and not _exiting and _owner_pid == os.getpid() and len(_idle) < max(64, 2 * usable_cores()):
            _idle.append(child)
            return
    child.stop()


def _stop_all() -> None:
    global _generation
    with _lock:
        _generation += 1
        children = list(_idle) if _owner_pid == os.getpid() else []
        _idle.clear()
    for child in children:  # ask them all first: they exit at the same time
        try:
            child.conn.send(("stop",))
        except Exception:  # noqa: BLE001 - already gone: stop() kills and closes it
            pass
    for child in children:
        child.stop()


@atexit.register
def _at_exit() -> None:
    global _exiting
    _exiting = True
    _stop_all()


def _decoded_bytes(item: IsolatedItem) -> int:
    return item.height * item.width * item.channels * item.dtype.itemsize


def _split(items: Sequence[IsolatedItem], shares: int) -> list[list[int]]:
    """``shares`` lists of item positions with about equal decoded bytes each (largest
    first onto the lightest share), each in input order."""
    loads = [0] * shares
    parts: list[list[int]] = [[] for _ in range(shares)]
    for k in sorted(range(len(items)), key=lambda k: -(_decoded_bytes(items[k]) + len(items[k].data))):
        lightest = loads.index(min(loads))
        parts[lightest].append(k)
        loads[lightest] += _decoded_bytes(items[k]) + len(items[k].data)
    return [sorted(p) for p in parts if p]


class _Aborted(Exception):
    """The calling thread gave up on the call (its delivery raised): stop this share."""


class _Share:
    """One child's part of a call: decodes ``members`` on that child, restarting it and
    bisecting the part after a crash or hang until the item that caused it is alone.
    ``hand_over(child, good)`` gets each batch's decoded pixels, [(position, view of the
    child's block)], and returns once they are copied out (the block is then reused)."""

    def __init__(
        self, child: _Child, items: Sequence[IsolatedItem], reasons: list[str | None], config: Isolation, threads: int,
        hand_over: Callable[[_Child, list[tuple[int, np.ndarray]]], None],
    ):
        self.child: _Child | None = child
        self.items, self.reasons, self.config, self.threads = items, reasons, config, threads
        self.hand_over = hand_over
        self.crashed: list[str] = []  # why a child of this share died (its replacement may not start)

    def run(self, members: list[int]) -> None:
        items, reasons, config = self.items, self.reasons, self.config
        try:
            if self.child is None:
                try:
                    self.child = _take(self.threads, config)
                except IsolationUnavailable:
                    if not self.crashed:
                        raise  # no child at all: the caller decodes in its own process
                    # Never in-process after a crash: the poison file is among these.
                    for k in members:
                        reasons[k] = f"{self.crashed[0]}, on this item or another of its batch, and no new decoder process started"
                    return
            child = self.child
            statuses, block, offs = child.call([items[k] for k in members], config)
        except _Crashed as crash:
            self.crashed.append(crash.reason)
            if self.child is not None:
                self.child.kill()
            self.child = None
            if len(members) == 1:
                reasons[members[0]] = crash.reason
                return
            half = len(members) // 2
            self.run(members[:half])
            self.run(members[half:])
            return
        again, good = [], []
        for k, status, off in zip(members, statuses, offs):
            item = items[k]
            if status == "ok":
                n = _decoded_bytes(item)
                good.append((k, block[off : off + n].view(item.dtype).reshape(item.height, item.width, item.channels)))
            elif status == "memory" and len(members) > 1:
                again.append(k)  # one item may have taken the whole call's budget: each alone
            else:
                reasons[k] = _reason(status, item, config)
        self.hand_over(child, good)
        for k in again:
            self.run([k])

    def finish(self) -> None:
        if self.child is not None:
            _give_back(self.child)
            self.child = None


def decode(
    items: Sequence[IsolatedItem],
    deliver: Callable[[int, np.ndarray], None],
    config: Isolation,
    threads: int = 0,
    *,
    for_gpu: bool = False,
    delivered: Callable[[], None] | None = None,
) -> list[str | None]:
    """Decode ``items`` in child processes; ``deliver(k, pixels)`` gets each good item's
    pixels (a host array, valid only until ``delivered()`` returns: copy it out, e.g. with
    asynchronous copies that ``delivered`` waits for); returns, per item, None
    (delivered) or the reason it failed. ``for_gpu``: the pixels go to a GPU, so the
    shared block is page-locked (fast, asynchronous copies).

    A large call is split over up to :meth:`Isolation.children_for` children (balanced
    by decoded bytes), each share decoded at the same time on its own thread; only
    children already idle join it, and the missing ones start in the background for
    the calls after it. ``deliver`` and ``delivered`` are always called on the calling
    thread. A child that dies or hangs is replaced and its share bisected, so the items
    that did not cause it are still decoded (each bisection step costs a child start).

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
    if not items:
        return reasons

    def hand_over(child: _Child, good: list[tuple[int, np.ndarray]]) -> None:
        if for_gpu:
            child.pin()
        for k, pixels in good:
            deliver(k, pixels)
        if delivered is not None:
            delivered()  # the block is reused by the next call

    want = config.children_for(len(items), sum(_decoded_bytes(i) for i in items), threads)
    children = _take_idle(threads, want)
    if not children:
        children = [_take(threads, config)]  # may raise IsolationUnavailable: nothing taken yet
    if len(children) < want:
        _grow(threads, config, want)
    parts = _split(items, len(children))
    for extra in children[len(parts) :]:
        _give_back(extra)
    if len(parts) == 1:
        share = _Share(children[0], items, reasons, config, threads, hand_over)
        try:
            share.run(parts[0])
        finally:
            share.finish()
        return reasons
    return _decode_shares(items, parts, children, reasons, config, threads, hand_over)


def _decode_shares(
    items: Sequence[IsolatedItem], parts: list[list[int]], children: list[_Child], reasons: list[str | None],
    config: Isolation, threads: int, hand_over: Callable[[_Child, list[tuple[int, np.ndarray]]], None],
) -> list[str | None]:
    """Each part on its own child, one thread driving each; their pixels come back to
    this (the calling) thread, which hands them over: the target's copies (CUDA streams
    and devices included) stay on the thread that called."""
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    abort = threading.Event()
    errors: list[BaseException] = []

    def post(child: _Child, good: list[tuple[int, np.ndarray]]) -> None:
        if abort.is_set():
            raise _Aborted
        done = threading.Event()
        inbox.put((child, good, done))
        while not done.wait(0.5):
            if abort.is_set():
                raise _Aborted
        if abort.is_set():
            raise _Aborted

    def drive(share: _Share, members: list[int]) -> None:
        try:
            share.run(members)
        except _Aborted:
            pass
        except BaseException as exc:  # noqa: BLE001 - raised again on the calling thread
            errors.append(exc)
        finally:
            share.finish()
            inbox.put(None)

    shares = [_Share(child, items, reasons, config, threads, post) for child in children[: len(parts)]]
    for n, (share, members) in enumerate(zip(shares, parts)):
        threading.Thread(target=drive, args=(share, members), name=f"gpuimg-isolation-{n}", daemon=True).start()
    running = len(shares)
    try:
        while running:
            msg = inbox.get()
            if msg is None:
                running -= 1
                continue
            child, good, done = msg
            try:
                hand_over(child, good)
            finally:
                done.set()
    except BaseException:
        abort.set()  # the shares stop at their next batch and give their children back
        raise
    if errors:
        raise errors[0]
    return reasons


def _reason(status: Any, item: IsolatedItem, config: Isolation) -> str:
    if status == "memory":
        mb = config.memory_budget(item.height * item.width * item.channels * item.dtype.itemsize) >> 20
        return f"its decoder needed more than the memory bound ({mb:,} MB: Isolation.memory_factor x decoded size + memory_extra_mb)"
    if isinstance(status, tuple | list) and status[0] == "failed":
        return str(status[1])  # the child's own reason (Pillow's message)
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
