"""The process stage: runs the steps on each decoded batch into reused outputs, splits a
batch that ran out of memory, hands results to a sink; and :func:`start`, which wires the
read, decode and process stages of a run.

Example:
    >>> import gpuimg
    >>> from gpuimg.pipeline.process import Processor
    >>> batch = gpuimg.ImageBatch.empty([(2, 2, 3)], device="cpu")
    >>> Processor([])(batch, None) is batch
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..image import ImageBatch
from . import codecs
from .decode import Decoded, DecodeStage, Slot
from .files import Job
from .read import Batcher, Item
from .results import Run
from .stages import DONE, Lane, StageQueue, is_out_of_memory, start_thread
from .steps import Step

__all__ = ["Processor", "ProcessStage", "start"]


class Processor:
    """Runs the steps on a batch into per-step outputs that are reused across batches."""

    def __init__(self, steps: list[Step]):
        self.steps = steps
        self.outputs: list[Any] = [None] * len(steps)
        self.released: Any = None  # event: the sink has finished reading the last result

    def __call__(self, batch: ImageBatch, stream: Any) -> ImageBatch:
        x = batch
        for i, step in enumerate(self.steps):
            x = self.outputs[i] = step(x, self.outputs[i], stream)
        return x


class ProcessStage:
    """Process thread: waits for a decoded batch (device-side), runs the steps into one of
    a few reused sets of outputs, releases the decode slot, and hands the result to a sink
    (encode + write on the sink's own threads, or tensors)."""

    def __init__(self, run: Run, pool: codecs.CodecPool, steps: list[Step], src: StageQueue, decode: DecodeStage, sink: Any):
        self.run, self.pool, self.src, self.decode, self.sink = run, pool, src, decode, sink
        self.device = pool.device
        self.free: StageQueue = StageQueue(0, run.stop)
        # One output set being written here plus one per batch the sink may be reading.
        for _ in range(1 + sink.lanes):
            self.free.put(Processor(steps))
        self._fallback_decoder: Any = None

    def __call__(self) -> None:
        lane = Lane(self.device)
        try:
            self.sink.start(lane)
            while (decoded := self.src.get()) is not DONE:
                self._one(decoded, lane)
        finally:
            self.sink.finish()

    def _one(self, decoded: Decoded, lane: Lane) -> None:
        lane.wait(decoded.ready)
        if decoded.oom is not None or not decoded.items:
            self.decode.release(decoded.slot, None)
            if decoded.oom is not None:
                self._split(decoded.items, lane, decoded.oom)
            return
        proc = self._processor()
        try:
            with self.run.timer("process"), lane.active():
                result = proc(decoded.slot.batch, lane.stream)
        except Exception as exc:
            self.decode.release(decoded.slot, lane.record())
            self.free.put(proc)
            if not is_out_of_memory(exc):
                raise
            self._split(decoded.items, lane, exc)
            return
        # No steps: the sink reads the decode slot itself, so it is released only after.
        slot = decoded.slot if result is decoded.slot.batch else None
        if slot is None:
            # Decoded again once the steps queued so far have read it: the next decode
            # overlaps this batch's encoding.
            self.decode.release(decoded.slot, lane.record())
        self.sink.handle(decoded.items, result, lane.record(), self._on_done(proc, slot))

    def _processor(self) -> Processor:
        proc = self.free.get()
        Lane.host_wait(proc.released)  # its outputs are about to be overwritten
        return proc

    def _on_done(self, proc: Processor, slot: Slot | None) -> Callable[[Any], None]:
        """The sink calls this with an event once it has queued its last read of the result."""

        def done(event: Any) -> None:
            proc.released = event
            self.free.put(proc)
            if slot is not None:
                self.decode.release(slot, event)

        return done

    def _split(self, items: list[Item], lane: Lane, exc: BaseException) -> None:
        """Out of memory: free cached blocks, then redo the items in halves on this thread."""
        codecs.free_cached_memory(self.device)
        if len(items) <= 1:
            for item in items:
                self.run.fail(item.job, "process", exc)
            return
        if self._fallback_decoder is None:
            self._fallback_decoder = codecs.new_decoder(self.device, self.pool.config)
        half = len(items) // 2
        for part in (items[:half], items[half:]):
            proc = self._processor()
            try:
                with self.run.timer("process"), lane.active():
                    batch, good, failures = codecs.decode_items(self._fallback_decoder, part, None, lane.stream)
                    result = proc(batch, lane.stream)
            except Exception as sub_exc:
                self.free.put(proc)
                if not is_out_of_memory(sub_exc):
                    raise
                self._split(part, lane, sub_exc)
                continue
            for index, error in failures:
                self.run.fail(part[index].job, "decode", error)
            self.sink.handle([part[i] for i in good], result, lane.record(), self._on_done(proc, None))


def start(run: Run, jobs: list[Job], sink: Any, pool: codecs.CodecPool, steps: list[Step], batch_size: int,
          max_bytes: int, readers: int, decode_worker: Any = None) -> list[threading.Thread]:
    """Start the batcher (reader threads), the decode lanes and the process thread of a
    run feeding ``sink``; returns their threads.

    Example:
        >>> from gpuimg.pipeline.config import PipelineConfig
        >>> from gpuimg.pipeline.tensors import TensorSink
        >>> run = Run()
        >>> sink = TensorSink(run, "cpu", 2, None, None, None, 1)
        >>> threads = start(run, [], sink, codecs.CodecPool("cpu", PipelineConfig()), [], 2, 2**20, 1)
        >>> sink.out.get() is DONE
        True
    """
    to_decode = StageQueue(2, run.stop)
    to_process = StageQueue(1, run.stop)
    decode = DecodeStage(run, pool, to_decode, to_process, decode_worker)
    process = ProcessStage(run, pool, steps, to_process, decode, sink)
    batcher = Batcher(run, jobs, to_decode, readers, batch_size, max_bytes)
    return [
        start_thread("batch", batcher, run.fail_fatal),
        *decode.start(),
        start_thread("process", process, run.fail_fatal),
    ]
