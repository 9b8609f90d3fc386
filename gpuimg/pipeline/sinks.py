"""Where processed batches go in a run: encoded and written by this process's encode
lanes and writer threads (:class:`FileSink`), or by the encode worker process
(:class:`WorkerSink`), or the first until the worker is ready, then the second
(:class:`JoiningSink`). A sink has ``lanes`` (step-output sets it may hold), ``start``,
``handle(items, batch, ready, done)``, ``finish`` and ``rule`` (the
:class:`~gpuimg.pipeline.steps.OutputRule` the decode and process stages follow).
:func:`~gpuimg.pipeline.codecs.encode_settings` is how ``quality`` reaches each format's encoder (both sinks).

Example:
    >>> from gpuimg.pipeline.sinks import FileSink
    >>> FileSink.__name__
    'FileSink'
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import threading
import warnings
from collections.abc import Callable
from typing import Any

from ..codec import embed, formats
from ..meta import KEEP
from ..errors import check_choice
from ..image import ImageBatch
from . import workers
from .codecs import CodecPool, encode_images, encode_settings
from .files import atomic_write
from .read import Item
from .results import Run
from .stages import DONE, Lane, LaneCountdown, StageQueue, Stopped, pass_end, start_thread
from .steps import OutputRule

__all__ = ["FileSink", "WorkerSink", "JoiningSink", "codec_name", "with_metadata"]

BACKGROUND = (255, 255, 255)  # what alpha is composited onto where the format has no alpha


def codec_name(fmt: formats.Format) -> str:
    """The name the encoder is given for ``fmt`` (its output suffix without the dot).

    Example:
        >>> codec_name(formats.lookup("jpeg2000"))
        'jp2'
    """
    return fmt.suffix.lstrip(".")


def with_metadata(item: Item, data: bytes, fmt: formats.Format, keep: str, shape: tuple[int, int, int],
                  meta: Any = None) -> bytes:
    """``data`` (the item's encoded output) with what ``keep`` keeps of its metadata:
    ``meta``, what the processed image carries (its input's EXIF, XMP and ICC profile as
    the steps left them: ``convert_colorspace`` replaces the profile), else the input
    file's (:func:`gpuimg.codec.embed.for_output`: the decode turned the pixels upright,
    so the EXIF says Orientation 1). ``shape``: the output image's (height, width,
    channels). EncodeError where the output format cannot hold it.

    Example:
        >>> from gpuimg.pipeline.read import Item
        >>> with_metadata(Item(None), b"BM..", formats.lookup("bmp"), "all", (8, 8, 3))
        b'BM..'
    """
    if keep == "none" or not embed.stores_metadata(fmt.name):
        return data
    if meta is None:
        meta = item.decoded_metadata()
    if meta is None or meta.empty:
        return data
    return embed.embed(data, fmt.name, embed.for_output(meta, keep, shape[:2]), has_alpha=shape[2] in (2, 4))


class FileSink:
    """Encode threads (``pool.config.encode_lanes``, each with its own Encoder and stream)
    plus a pool of writer threads. ``mode`` / ``background``: see :class:`OutputRule`
    (checked here: ValueError); ``quality``: see :func:`encode_settings`; ``keep``: the
    inputs' metadata kept in the outputs (:func:`with_metadata`)."""

    def __init__(self, run: Run, pool: CodecPool, fmt: formats.Format, quality: int, writers: int, *,
                 mode: str = "keep", background: tuple[int, int, int] = BACKGROUND, keep: str = "all"):
        self.run, self.pool, self.quality, self.writers = run, pool, quality, writers
        self.keep, self.format = check_choice(keep, "keep_metadata", KEEP, "a metadata choice"), fmt
        self.rule = OutputRule(fmt, mode, background)
        settings = encode_settings(fmt, quality, pool.device)
        # The images carry their metadata (for the steps); this sink adds it to the files
        # itself (with_metadata, as the worker sink does), so the encoder adds none.
        self.settings = settings._replace(options={**settings.options, "keep": "none"})
        if settings.note:
            warnings.warn(settings.note, stacklevel=2)
        self.fmt = codec_name(fmt)
        self.device = pool.device
        self.lanes = pool.config.encode_lanes
        # Bounds the encoded bytes waiting for a writer (memory), like the queues do.
        self._slots = threading.BoundedSemaphore(8 * writers)
        self.writer_pool: cf.ThreadPoolExecutor | None = None
        self.threads: list[threading.Thread] = []
        self.queue = StageQueue(1, run.stop)
        self._countdown = LaneCountdown(self.lanes)
        self.announces_end = True  # finish() tells the run that every result is in

    def start(self, lane: Lane) -> None:
        self.writer_pool = cf.ThreadPoolExecutor(self.writers, thread_name_prefix="gpuimg-write")
        self.threads = [start_thread(f"encode{i}", self._encode_loop, self.run.fail_fatal) for i in range(self.lanes)]

    def handle(self, items: list[Item], batch: ImageBatch, ready: Any, done: Callable[[Any], None]) -> None:
        self.queue.put((items, batch, ready, done))

    def _encode_loop(self) -> None:
        lane = Lane(self.device)
        encoder = self.pool.take("encode")
        while (job := self.queue.get()) is not DONE:
            items, batch, ready, done = job
            lane.wait(ready)
            try:
                with self.pool.gate, self.run.timer("encode"), lane.active():
                    views = encode_images(encoder, batch, self.fmt, self.quality, self.settings, lane.stream)
            finally:
                done(lane.record())
            # Own copies for the writers (with the metadata), made after the gate opened for the decoder.
            encoded = [v if isinstance(v, BaseException) else self._with_metadata(it, bytes(v), im)
                       for it, v, im in zip(items, views, batch)]
            self._write_all(items, encoded)
        self.pool.give_back("encode", encoder)
        pass_end(self.queue, self._countdown, None)

    def _with_metadata(self, item: Item, data: bytes, image: Any) -> bytes | BaseException:
        try:
            return with_metadata(item, data, self.format, self.keep, image.shape, image.metadata)
        except Exception as exc:  # this item's output cannot hold its metadata: it fails, not the run
            return exc

    def _write_all(self, items: list[Item], encoded: list[bytes | BaseException]) -> None:
        for item, data in zip(items, encoded):
            if isinstance(data, BaseException):
                self.run.fail(item.job, "encode", data)
                continue
            while not self._slots.acquire(timeout=0.05):
                if self.run.stop.is_set():
                    raise Stopped
            self.writer_pool.submit(self._write, item, data)  # type: ignore[union-attr]

    def _write(self, item: Item, data: bytes) -> None:
        try:
            with self.run.timer("write"):
                nbytes = atomic_write(item.job.dst, data)  # type: ignore[arg-type]
            self.run.results.put(("done", item.job, len(item.data), nbytes))
        except Exception as exc:
            self.run.fail(item.job, "write", exc)
        finally:
            self._slots.release()

    def finish(self) -> None:
        # Writes already handed over are finished even when stopping: they are atomic and
        # short, and a finished output is kept work.
        try:
            if self.threads:
                with contextlib.suppress(Stopped):
                    self.queue.put(DONE)
                for thread in self.threads:
                    thread.join()
            if self.writer_pool is not None:
                self.writer_pool.shutdown(wait=True)
        finally:
            if self.announces_end:
                self.run.results.put(("end",))


class WorkerSink:
    """Encode and write in the encode worker process (see :mod:`gpuimg.pipeline.workers`).

    A sender thread copies each processed batch into a free staging slot (device to
    device, then the step outputs are released) and sends its layout and output paths; a
    receiver thread takes the worker's answers: slot released, per-item results (with the
    worker's encode and write seconds for the stage timers). ``finish`` waits until the
    worker has answered every batch sent, so the worker can serve the next run. The
    worker writes pixels only: the receiver adds each output's metadata (``keep``,
    :func:`with_metadata`) to the written file, rewriting it atomically.
    """

    lanes = 1  # step-output sets held by this sink: the one being copied

    def __init__(self, run: Run, worker: Any, fmt: formats.Format, quality: int, *, mode: str = "keep",
                 background: tuple[int, int, int] = BACKGROUND, keep: str = "all"):
        self.run, self.worker, self.fmt, self.quality = run, worker, codec_name(fmt), quality
        self.keep, self.format = check_choice(keep, "keep_metadata", KEEP, "a metadata choice"), fmt
        self.images: dict[int, list[tuple[tuple[int, int, int], Any]]] = {}  # per batch sent: each output's shape, metadata
        self.rule = OutputRule(fmt, mode, background)
        self.queue = StageQueue(1, run.stop)
        self.free_slots = StageQueue(0, run.stop)
        for slot in range(worker.SLOTS):
            self.free_slots.put(slot)
        self.pending: dict[int, list[Item]] = {}
        self.seq = 0
        self.threads: list[threading.Thread] = []
        self._answered = True  # every batch sent has been answered (the worker is reusable)
        self.announces_end = True  # finish() tells the run that every result is in

    def start(self, lane: Lane) -> None:
        self.threads = [start_thread("send", self._send_loop, self.run.fail_fatal),
                        start_thread("receive", self._receive_loop, self.run.fail_fatal)]

    def handle(self, items: list[Item], batch: ImageBatch, ready: Any, done: Callable[[Any], None]) -> None:
        self.queue.put((items, batch, ready, done))

    def _send_loop(self) -> None:
        import cupy

        lane = Lane("cuda")
        while (job := self.queue.get()) is not DONE:
            items, batch, ready, done = job
            slot = self.free_slots.get()
            nbytes = batch.used_bytes
            try:
                staging = self.worker.stage(slot, nbytes)
                lane.wait(ready)
                cupy.cuda.runtime.memcpyAsync(staging.ptr, batch.data_ptr, nbytes, 3, lane.stream.ptr)
            finally:
                done(lane.record())
            lane.synchronize()  # the worker reads the slot as soon as the message arrives
            self.seq += 1
            self.pending[self.seq] = items
            self.images[self.seq] = [(im.shape, im.metadata) for im in batch]
            self._answered = False
            self.worker.send(("batch", self.seq, slot, batch.table()[:, :5].tolist(), batch.dtype.str,
                              [str(it.job.dst) for it in items], self.fmt, self.quality))

    def _receive_loop(self) -> None:
        while True:
            try:
                msg = self.worker.recv()
            except (EOFError, OSError):
                raise RuntimeError("the encode worker process exited during the run") from None
            kind = msg[0]
            if kind == "released":
                self.free_slots.put_nowait(msg[2])  # also while stopping: the flush still comes
            elif kind == "results":
                _, seq, results, encode_s, write_s = msg
                self.run.timer.add("encode", encode_s)
                self.run.timer.add("write", write_s)
                for item, image, (status, value) in zip(self.pending.pop(seq), self.images.pop(seq), results):
                    if status == "ok" and self.keep != "none":
                        status, value = self._add_metadata(item, image, value)
                    if status == "ok":
                        self.run.results.put(("done", item.job, len(item.data), value))
                    else:
                        self.run.fail(item.job, status, value)
            elif kind == "failed":
                raise RuntimeError(f"the encode worker failed: {msg[1]}")
            elif kind == "flushed":
                self._answered = True
                return

    def _add_metadata(self, item: Item, image: tuple[tuple[int, int, int], Any], nbytes: int) -> tuple[str, Any]:
        """Put the item's metadata into the file the worker wrote: ("ok", bytes written)
        or ("encode", the error)."""
        shape, meta = image
        carried = meta if meta is not None else item.decoded_metadata()
        if carried is None or carried.empty:
            return "ok", nbytes  # nothing to add: the worker's file stays as written
        try:
            with open(item.job.dst, "rb") as f:
                data = f.read()
            out = with_metadata(item, data, self.format, self.keep, shape, carried)
            return "ok", atomic_write(item.job.dst, out) if out is not data else nbytes
        except Exception as exc:
            return "encode", exc

    def finish(self) -> None:
        # Batches already sent are encoded and written even when stopping (atomic writes:
        # finished outputs are kept work); then the worker goes back for the next run.
        try:
            if self.threads:
                with contextlib.suppress(Stopped):
                    self.queue.put(DONE)
                self.threads[0].join()
                try:
                    self.worker.send(("flush",))
                except OSError:
                    pass
                self.threads[1].join()
        finally:
            if not self._answered:
                self.worker.healthy = False
            workers.give_back(self.worker)
            if self.announces_end:
                self.run.results.put(("end",))


class JoiningSink:
    """The encode worker joins the run once it has started: batches go to this process's
    encode lanes (``local``, a :class:`FileSink`) until the worker (``joining``, a
    :class:`~gpuimg.pipeline.workers.Joining`) is ready, then to a :class:`WorkerSink` made
    for it by ``make_worker_sink(worker)``. Outputs are independent files, so which sink
    writes one does not change it. Both hold step outputs at once for a while, hence
    ``lanes``."""

    def __init__(self, local: FileSink, joining: Any, make_worker_sink: Callable[[Any], WorkerSink]):
        self.local, self.joining, self.make_worker_sink = local, joining, make_worker_sink
        self.rule = local.rule
        self.lanes = local.lanes + WorkerSink.lanes
        self.remote: WorkerSink | None = None
        self._lane: Lane | None = None
        local.announces_end = False

    def start(self, lane: Lane) -> None:
        self._lane = lane
        self.local.start(lane)

    def handle(self, items: list[Item], batch: ImageBatch, ready: Any, done: Callable[[Any], None]) -> None:
        if self.remote is None:
            worker = self.joining.ready()
            if worker is not None:
                remote = self.make_worker_sink(worker)
                remote.announces_end = False
                remote.start(self._lane)  # type: ignore[arg-type]
                self.remote = remote
        (self.remote or self.local).handle(items, batch, ready, done)

    def finish(self) -> None:
        try:
            self.local.finish()
        finally:
            try:
                if self.remote is not None:
                    self.remote.finish()
            finally:
                self.local.run.results.put(("end",))
