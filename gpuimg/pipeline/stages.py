"""Plumbing of the pipeline's overlapping stages: stoppable queues and threads, CUDA lanes
(one stream per stage thread, events between them), batching by size, stage timers.

Nothing here knows about images or files; :mod:`gpuimg.pipeline.process` wires the stages.

Example:
    >>> list(batches_by_size([("a", 10), ("b", 10), ("c", 30)], max_count=8, max_bytes=25))
    [['a', 'b'], ['c']]
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..device import use_stream

__all__ = ["DONE", "Stopped", "StageQueue", "start_thread", "LaneCountdown", "pass_end", "Lane", "StageTimer", "batches_by_size", "is_out_of_memory"]

T = TypeVar("T")
DONE = object()  # end-of-stream marker passed down the queues
_POLL_S = 0.05  # how often a blocked stage looks at the stop flag


class Stopped(Exception):
    """Raised inside a stage when the run is being stopped (Ctrl-C or a fatal error)."""


class StageQueue:
    """A bounded queue whose blocking calls give up (raise :class:`Stopped`) once ``stop`` is set.

    The bound is what makes prefetching bounded in memory: a fast stage waits for a slow one.
    """

    def __init__(self, maxsize: int, stop: threading.Event):
        self._q: queue.Queue = queue.Queue(maxsize)
        self._stop = stop

    def put(self, item: Any) -> None:
        while True:
            if self._stop.is_set():
                raise Stopped
            try:
                self._q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        while True:
            if self._stop.is_set():
                raise Stopped
            try:
                return self._q.get(timeout=_POLL_S)
            except queue.Empty:
                continue

    def get_nowait(self) -> Any:
        return self._q.get_nowait()

    def put_nowait(self, item: Any) -> None:
        """Put without looking at the stop flag (for unbounded queues that must still be fed
        while a run is stopping); raises queue.Full on a full bounded queue."""
        self._q.put_nowait(item)


def start_thread(name: str, target: Callable[[], None], on_error: Callable[[BaseException], None]) -> threading.Thread:
    """Start a daemon thread running ``target``; an escaping exception goes to ``on_error``
    (the run stops and the main thread re-raises it) instead of dying silently."""

    def body() -> None:
        try:
            target()
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            on_error(exc)

    thread = threading.Thread(target=body, name=f"gpuimg-{name}", daemon=True)
    thread.start()
    return thread


class LaneCountdown:
    """For N threads sharing one input queue: each passes the end marker on to its
    siblings; only the last one to finish sends it downstream.

    Example:
        >>> c = LaneCountdown(2)
        >>> c.finished(), c.finished()
        (False, True)
    """

    def __init__(self, lanes: int):
        self._left = lanes
        self._lock = threading.Lock()

    def finished(self) -> bool:
        with self._lock:
            self._left -= 1
            return self._left == 0


def pass_end(src: StageQueue, countdown: LaneCountdown, out: StageQueue | None) -> None:
    """Called by a lane that took DONE from ``src``: hand it to the siblings, and downstream
    (``out``) once every lane has finished."""
    src.put(DONE)
    if countdown.finished() and out is not None:
        out.put(DONE)


class Lane:
    """One stage's CUDA stream, with events to hand work to another lane without a host sync.

    On the CPU every method is a no-op (NumPy work is synchronous).
    """

    def __init__(self, device: str):
        self.device = device
        self.stream: Any = None
        if device == "cuda":
            import cupy

            self.stream = cupy.cuda.Stream(non_blocking=True)

    def record(self) -> Any:
        """An event marking the work queued on this lane so far (None on the CPU)."""
        if self.stream is None:
            return None
        import cupy

        event = cupy.cuda.Event(block=False, disable_timing=True)
        event.record(self.stream)
        return event

    def wait(self, event: Any) -> None:
        """Order this lane's later work after ``event`` (device-side; the host goes on)."""
        if event is not None and self.stream is not None:
            self.stream.wait_event(event)

    @staticmethod
    def host_wait(event: Any) -> None:
        """Block this thread until ``event`` completed (used before handing a buffer to a
        decoder: nvJPEG's hardware path has been seen writing before earlier work on its stream
        ended, torchvision issue 9606)."""
        if event is not None:
            event.synchronize()

    def synchronize(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()

    def active(self) -> Any:
        """Context making this lane's stream CuPy's current stream."""
        return use_stream(self.device, self.stream)


class StageTimer:
    """Busy seconds per stage, summed over the threads of a stage (thread-safe)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        """Count ``seconds`` of ``stage`` measured elsewhere (another process)."""
        with self._lock:
            self.seconds[stage] += seconds

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[stage] += time.perf_counter() - t0


def batches_by_size(items: Iterable[tuple[T, int]], max_count: int, max_bytes: int) -> Iterator[list[T]]:
    """Group ``(item, nbytes)`` in order into lists of at most ``max_count`` items and at
    most ``max_bytes`` bytes; an item bigger than ``max_bytes`` on its own forms its own batch.

    Example:
        >>> list(batches_by_size([(1, 5), (2, 50), (3, 5)], max_count=4, max_bytes=20))
        [[1], [2], [3]]
    """
    batch: list[T] = []
    total = 0
    for item, nbytes in items:
        if batch and (len(batch) >= max_count or total + nbytes > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += nbytes
    if batch:
        yield batch


def is_out_of_memory(exc: BaseException) -> bool:
    """True for host or device out-of-memory errors (CuPy's, nvImageCodec's, MemoryError)."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or "out of memory" in text or "cudaerrormemoryallocation" in text
