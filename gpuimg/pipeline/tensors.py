"""The ML exit of the pipeline: fixed-size normalised float32 NCHW batches for training.

Built from the same stages as :meth:`gpuimg.Pipeline.run` (reader threads, a decode lane,
a process lane); only the last stage differs: instead of encoding, the processed batch is
resized to the requested size where needed and converted by the ``to_tensor`` op into a
ring of reused tensors, handed to the caller's stream with an event (no host sync). The
Pipeline passes in how to start its stages, so this module knows nothing of it.

Example:
    >>> import gpuimg
    >>> it = gpuimg.Pipeline([], device="cpu").batches([], 8, size=(8, 8))
    >>> list(it)
    []
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ArgumentError, check_int
from ..memory import Buffer
from ..ops.color import to_tensor
from ..ops.geometry import resize
from .read import Item
from .results import Failure, Run, failure_of
from .stages import DONE, Lane, StageQueue, Stopped
from .steps import retype

if TYPE_CHECKING:
    import threading

    from ..image import ImageBatch

__all__ = ["TensorIterator", "TensorSink"]

StartStages = Callable[[Run, Any], "list[threading.Thread]"]


class TensorSink:
    """Process-lane sink: resize to ``size`` if needed, then ``to_tensor`` into a ring slot."""

    def __init__(self, run: Run, device: str, batch_size: int, size: tuple[int, int] | None,
                 mean: Sequence[float] | None, std: Sequence[float] | None, prefetch: int):
        self.run, self.device, self.batch_size, self.size = run, device, batch_size, size
        self.mean, self.std = mean, std
        self.out = StageQueue(prefetch, run.stop)
        # prefetch queued + one held by the caller + one being written: none overwritten early.
        self.ring: list[Any] = [None] * (prefetch + 2)
        self.released: list[Any] = [None] * len(self.ring)
        self.resized: ImageBatch | None = None
        self.count = 0
        self.lanes = 0  # runs on the process thread: no batch is read after handle() returns

    def start(self, lane: Lane) -> None:
        self.lane = lane

    def handle(self, items: list[Item], batch: ImageBatch, ready: Any, done: Callable[[Any], None]) -> None:
        """Runs on the process lane (``ready`` is already ordered there); ``done`` gets the
        event after which ``batch`` is no longer read."""
        if self.size is not None and any(s[:2] != tuple(self.size) for s in batch.shapes):
            if self.resized is not None:  # our own buffer: retyped here, as ops never retype an out
                retype(self.resized, batch.dtype)
            self.resized = resize(batch, size=tuple(self.size), out=self.resized, stream=self.lane.stream)
            batch = self.resized
        k = self.count % len(self.ring)
        Lane.host_wait(self.released[k])  # the caller has finished with this slot's last tensor
        out = self._slot(k, batch)[: len(batch)]
        with self.run.timer("tensor"), self.lane.active():
            tensor = to_tensor(batch, mean=self.mean, std=self.std, out=out, stream=self.lane.stream)
        self.count += 1
        event = self.lane.record()
        done(event)
        self.out.put((tensor, [str(it.job.src) for it in items], event, k))

    def _slot(self, k: int, batch: ImageBatch) -> Any:
        """Ring tensor ``k`` of shape (batch_size, C, H, W) float32: allocated once per shape."""
        height, width, channels = batch.shapes[0]
        shape = (self.batch_size, channels, height, width)
        tensor = self.ring[k]
        if tensor is None or tensor.shape != shape:
            nbytes = math.prod(shape) * 4
            strides = tuple(int(s) for s in np.cumprod((1, *shape[:0:-1]))[::-1] * 4)
            tensor = self.ring[k] = Buffer(nbytes, self.device).view(0, shape, np.float32, strides)
        return tensor

    def finish(self) -> None:
        try:
            self.out.put(DONE)
        except Stopped:
            pass


class TensorIterator:
    """Iterator of ``(tensor, paths)`` made by :meth:`gpuimg.Pipeline.batches`.

    ``failures`` lists the files that were skipped (read or decode errors). Use it as a
    context manager, or call :meth:`close`, to stop the background stages early.

    Example:
        >>> import gpuimg
        >>> with gpuimg.Pipeline([], device="cpu").batches([], 4, size=(8, 8)) as it:
        ...     list(it), it.failures
        ([], [])
    """

    def __init__(self, start: StartStages, device: str, batch_size: int, size: tuple[int, int] | None,
                 mean: Sequence[float] | None, std: Sequence[float] | None, prefetch: int):
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ArgumentError(f"size must be (height, width) of positive ints or None, got {size!r}")
        check_int(prefetch, "prefetch", low=1)
        self.failures: list[Failure] = []
        self.device = device
        self._run = Run()
        self._sink = TensorSink(self._run, self.device, batch_size, size, mean, std, prefetch)
        self._threads = start(self._run, self._sink)
        self._held: int | None = None
        self._done = False

    def __iter__(self) -> TensorIterator:
        return self

    def __next__(self) -> tuple[Any, list[str]]:
        self._release_held()
        if self._done:
            raise StopIteration
        try:
            item = self._sink.out.get()
        except Stopped:
            item = DONE
        self._collect_failures()
        if item is DONE:
            self.close()
            if self._run.fatal is not None:
                raise self._run.fatal
            raise StopIteration
        tensor, paths, ready, k = item
        if ready is not None:
            import cupy

            cupy.cuda.get_current_stream().wait_event(ready)  # the caller's stream waits, not the host
        self._held = k
        return tensor, paths

    def _release_held(self) -> None:
        """The tensor yielded last may be overwritten once the caller's queued work is done."""
        if self._held is None:
            return
        event = None
        if self.device == "cuda":
            import cupy

            event = cupy.cuda.Event(block=False, disable_timing=True)
            event.record(cupy.cuda.get_current_stream())
        self._sink.released[self._held] = event
        self._held = None

    def _collect_failures(self) -> None:
        for event in self._run.drain():
            if event[0] == "fail":
                self.failures.append(failure_of(event))

    def close(self) -> None:
        """Stop the background stages (safe to call twice)."""
        if self._done:
            return
        self._done = True
        self._run.stop.set()
        for thread in self._threads:
            thread.join()
        self._collect_failures()

    def __enter__(self) -> TensorIterator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
