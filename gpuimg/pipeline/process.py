"""The process stage: runs the steps on each decoded batch into reused outputs (with the
sink's :class:`~gpuimg.pipeline.steps.OutputRule` conversions before and after them),
splits a batch that ran out of memory, runs a batch whose steps raised image by image so
only the images a step rejects fail (stage "process"), hands results to a sink; and
:func:`start`, which wires the read, decode and process stages of a run.

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

from ..image import Image, ImageBatch
from . import codecs
from .decode import Decoded, DecodeStage, Group, Slot, decode_group
from .files import Job
from .read import Batcher, Item
from .results import Run
from .stages import DONE, Lane, StageQueue, is_out_of_memory, start_thread
from .steps import OutputRule, Step, carry_metadata, run_steps_per_item

__all__ = ["Processor", "ProcessStage", "start"]


def attach_metadata(batch: ImageBatch, items: list[Item], needed: bool = True) -> None:
    """Each decoded image carries its file's metadata (read from the bytes the reader
    parsed, on first use), marked as turned upright where the decode applied an EXIF
    orientation: the steps pass it on (:func:`~gpuimg.pipeline.steps.carry_metadata`),
    ``convert_colorspace`` reads the profile from it, and the sink writes it.

    ``needed=False`` (no step reads or changes metadata) leaves it unread here, off the
    thread that feeds the GPU: each image says None and the sink reads the file's own.
    Set either way: a reused decode slot holds an earlier batch's."""
    for img, item in zip(batch, items):
        img.metadata = item.decoded_metadata() if needed else None


class Processor:
    """Runs the steps on a batch into per-step outputs that are reused across batches,
    between ``rule``'s conversions (each into its own reused output, and only for images
    the output format cannot store as they are: none for 8-bit RGB)."""

    def __init__(self, steps: list[Step], rule: OutputRule | None = None):
        self.steps, self.rule = steps, rule
        self.outputs: list[Any] = [None] * len(steps)
        self.converted: list[Any] = [None, None]  # the outputs of rule.before_steps / after_steps
        self.released: Any = None  # event: the sink has finished reading the last result

    def __call__(self, batch: ImageBatch, stream: Any) -> ImageBatch:
        x = self.before(batch, stream)
        for i, step in enumerate(self.steps):
            x = self.outputs[i] = step(x, self.outputs[i], stream)
        return self.after(x, stream)

    def before(self, batch: ImageBatch, stream: Any) -> ImageBatch:
        return self._convert(0, batch, stream)

    def after(self, batch: ImageBatch, stream: Any) -> ImageBatch:
        return self._convert(1, batch, stream)

    def _convert(self, k: int, batch: ImageBatch, stream: Any) -> ImageBatch:
        if self.rule is None:
            return batch
        result = (self.rule.before_steps, self.rule.after_steps)[k](batch, self.converted[k], stream)
        if result is not batch:  # kept only when it is ours: the input may be a decode slot
            self.converted[k] = result
            carry_metadata(batch, result)
        return result

    def per_item(self, batch: ImageBatch, stream: Any) -> tuple[list[int], ImageBatch | None, list[tuple[int, BaseException]]]:
        """The rare path after the batched steps raised: each image alone (new buffers);
        (indices of the good images, their results as one batch or None, failures)."""
        results = run_steps_per_item(self.steps, list(self.before(batch, stream)), stream)
        good = [i for i, r in enumerate(results) if isinstance(r, Image)]
        failures = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
        by_dtype: dict[Any, list[int]] = {}
        for i in good:  # one batch holds one dtype: a step may have changed some
            by_dtype.setdefault(results[i].dtype, []).append(i)  # type: ignore[union-attr]
        if len(by_dtype) > 1:
            first = next(iter(by_dtype))
            for i in good:
                if results[i].dtype != first:  # type: ignore[union-attr]
                    failures.append((i, ValueError(f"the steps made it {results[i].dtype.name} but its batch "  # type: ignore[union-attr]
                                                   f"holds {first.name}; run it alone")))
            good = by_dtype[first]
        if not good:
            return [], None, failures
        joined = ImageBatch.from_images([results[i] for i in good])  # type: ignore[misc]
        carry_metadata([results[i] for i in good], joined)
        return good, self.after(joined, stream), failures


class ProcessStage:
    """Process thread: waits for a decoded batch (device-side), runs the steps into one of
    a few reused sets of outputs, releases the decode slot, and hands the result to a sink
    (encode + write on the sink's own threads, or tensors)."""

    def __init__(self, run: Run, pool: codecs.CodecPool, steps: list[Step], src: StageQueue, decode: DecodeStage, sink: Any):
        self.run, self.pool, self.src, self.decode, self.sink = run, pool, src, decode, sink
        self.device = pool.device
        # A step that reads or sets the images' metadata (convert_colorspace, thumbnail)
        # needs it on the decoded images; otherwise the sink reads it on its own thread.
        self._reads_metadata = any(step.op is not None and step.op.sets_metadata for step in steps)
        self.free: StageQueue = StageQueue(0, run.stop)
        # One output set being written here plus one per batch the sink may be reading.
        for _ in range(1 + sink.lanes):
            self.free.put(Processor(steps, decode.rule))
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
                self._split(decoded.items, lane, decoded.oom, decoded.group)
            return
        proc = self._processor()
        items = decoded.items
        attach_metadata(decoded.slot.batch, items, self._reads_metadata)
        try:
            with self.run.timer("process"), lane.active():
                result = proc(decoded.slot.batch, lane.stream)
        except Exception as exc:
            if is_out_of_memory(exc):
                self.decode.release(decoded.slot, lane.record())
                self.free.put(proc)
                self._split(items, lane, exc, decoded.group)
                return
            items, result = self._per_item(proc, items, decoded.slot.batch, lane)
            if result is None:
                self.decode.release(decoded.slot, lane.record())
                self.free.put(proc)
                return
        # No steps: the sink reads the decode slot itself, so it is released only after.
        slot = decoded.slot if result is decoded.slot.batch else None
        if slot is None:
            # Decoded again once the steps queued so far have read it: the next decode
            # overlaps this batch's encoding.
            self.decode.release(decoded.slot, lane.record())
        self.sink.handle(items, result, lane.record(), self._on_done(proc, slot))

    def _per_item(self, proc: Processor, items: list[Item], batch: ImageBatch, lane: Lane) -> tuple[list[Item], ImageBatch | None]:
        """A step raised for the batch: run it image by image (rare path); the images a
        step rejects fail (stage "process", the op's reason), the others go on."""
        with self.run.timer("process"), lane.active():
            good, result, failures = proc.per_item(batch, lane.stream)
        for index, error in failures:
            self.run.fail(items[index].job, "process", error)
        return [items[i] for i in good], result

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

    def _split(self, items: list[Item], lane: Lane, exc: BaseException, group: Group | None = None) -> None:
        """Out of memory: free cached blocks, then redo the items in halves on this thread
        (decoded again as ``group`` says: None is RGB uint8)."""
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
            kind = group._replace(items=part) if group is not None else Group(part, "rgb", "uint8")
            batch, failures, kept = None, [], []
            try:
                with self.run.timer("process"), lane.active():
                    batch, good, failures = decode_group(self._fallback_decoder, kind, None, lane.stream)
                    kept = [part[i] for i in good]
                    attach_metadata(batch, kept, self._reads_metadata)
                    result = proc(batch, lane.stream) if kept else None
            except Exception as sub_exc:
                if is_out_of_memory(sub_exc):
                    self.free.put(proc)
                    self._split(part, lane, sub_exc, group)
                    continue
                if batch is None:  # the decode itself failed (not per item): as before, fatal
                    self.free.put(proc)
                    raise
                kept, result = self._per_item(proc, kept, batch, lane)
            for index, error in failures:
                self.run.fail(part[index].job, "decode", error)
            if result is None:
                self.free.put(proc)
                continue
            self.sink.handle(kept, result, lane.record(), self._on_done(proc, None))


def colour_intent(steps: list[Step]) -> str | None:
    """The rendering intent of the first step that converts colours to sRGB (its op's
    ``OpInfo.intent_of(kwargs)``: convert_colorspace, fit_thumbnail with to_srgb), or None.

    Example:
        >>> colour_intent([Step(("convert_colorspace", {"intent": "perceptual"}), "cpu")]), colour_intent([])
        ('perceptual', None)
    """
    for step in steps:
        intent = step.op.intent_of(step.kwargs) if step.op is not None else None
        if intent is not None:
            return intent
    return None


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
    # The sink's rule (what each output image is); a sink without one (tensors) takes RGB.
    decode = DecodeStage(run, pool, to_decode, to_process, decode_worker, getattr(sink, "rule", None), colour_intent(steps))
    process = ProcessStage(run, pool, steps, to_process, decode, sink)
    # On a GPU the decode checks each batch's JPEG scans on the device (the readers' costliest work otherwise).
    batcher = Batcher(run, jobs, to_decode, readers, batch_size, max_bytes, check_scans=pool.device != "cuda")
    return [
        start_thread("batch", batcher, run.fail_fatal),
        *decode.start(),
        start_thread("process", process, run.fail_fatal),
    ]
