"""Dataset pipeline: folders of files -> decode -> ops -> encode -> files (or tensors).

``Pipeline(steps)`` holds the op calls; ``run`` processes a dataset with overlapping
stages, and ``batches`` feeds a training loop:

    reader threads      read file bytes and parse headers, once (prefetching ahead)
    batcher             groups files by count AND decoded size (``max_batch_bytes``)
    decode thread       its own CUDA stream and Decoder (hardware-first JPEG); decodes
                        batch N+1 into a ring of reused ImageBatch arenas while batch N
                        is processed
    process thread      runs the steps batch-wise (one launch per op per batch) into
                        reused step outputs, on its own stream
    encode thread       its own stream and Encoder (reused CodeStreams); its calls and the
                        decoder's take turns (they slow each other down when they overlap)
    writer threads      write each output atomically (temporary name, then rename)

The Decoder and Encoder live on the Pipeline and are reused by its later runs (a new
decoder's first batches are slow: see ``_Codecs``).

Memory bound: a batch holds at most ``batch_size`` images and at most ``max_batch_bytes``
bytes of decoded pixels (height x width x 3; an image larger than that alone forms a batch
of one). The run holds ``DECODE_LANES x DECODE_RING`` decoded batches and ``1 +
ENCODE_LANES`` sets of step outputs, so device memory stays under about ``(2 + 2 x
steps) x max_batch_bytes`` for steps that do not enlarge images (lower ``max_batch_bytes``
on a small GPU). Buffers grow to the largest batch seen and are then reused: the steady
state allocates nothing (see :func:`gpuimg.memory_stats`). A GPU out-of-memory error
splits the batch in halves (down to single images) instead of ending the run.

Example:
    >>> import gpuimg
    >>> p = gpuimg.Pipeline([("resize_shorter", {"size": 256})])  # doctest: +SKIP
    >>> summary = p.run("photos/", "out/", format="jpeg", quality=90)  # doctest: +SKIP
    >>> summary.processed, summary.failed  # doctest: +SKIP
    (1000, 0)
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib
import inspect
import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._files import FORMAT_SUFFIX, Job, atomic_write, is_done, plan_jobs
from ._stages import (
    DONE,
    Lane,
    LaneCountdown,
    StageQueue,
    StageTimer,
    Stopped,
    batches_by_size,
    is_out_of_memory,
    pass_end,
    start_thread,
)
from .device import resolve_device
from .image import ImageBatch

if TYPE_CHECKING:
    from ._tensors import TensorIterator

__all__ = ["Pipeline", "Summary", "Failure", "available_ops", "load_steps", "DEFAULT_MAX_BATCH_BYTES", "REPORT_NAME"]

OP_MODULES = ("geometry", "filters", "color", "compose")
DEFAULT_MAX_BATCH_BYTES = 512 * 2**20  # ~80 decoded 1080p RGB images
# Decode and encode threads, each with its own codec object and CUDA stream. More than
# one of each was slower on the H200 (bench/pipeline.py --sweep, W1: 1+1 lanes 635 img/s,
# 2+2 578, 3+2 506): the host (GIL and CPU cores shared with nvImageCodec's own threads),
# not the GPU, limits this pipeline today, so extra lanes only add contention.
DECODE_LANES = 1
ENCODE_LANES = 1
DECODE_RING = 2  # decoded batches per decode lane: one being decoded, one being processed
SERIALIZE_CODECS = True  # decode and encode calls take turns (see _Codecs)
# On the GPU, encode and write in a worker process, so decoding and encoding overlap, and
# decode part of the batches in a second worker with the hybrid decoder, which adds its
# throughput to the hardware decoder's here (gpuimg/_workers.py; GPUIMG_ENCODE_WORKER=0 /
# GPUIMG_DECODE_WORKER=0 keep that work in this process). A Pipeline starts them in the
# background; a run uses them if they are ready, and waits for them only when the run is
# long enough to repay the wait (a few seconds to start, against ~0.18 ms saved per image
# by the encode worker alone: W1 ~2,050 img/s with it, ~1,530 without, H200).
ENCODE_IN_WORKER = True
DECODE_IN_WORKER = True
WORKER_MIN_IMAGES = 10_000
REPORT_NAME = "gpuimg-report.json"
LOSSY_FORMATS = ("jpg", "webp", "jp2")  # the formats that take a quality

StepSpec = Callable[..., Any] | tuple[str, dict[str, Any]] | Sequence[Any]


# --------------------------------------------------------------------------- steps


def _op_module(family: str) -> Any | None:
    try:
        return importlib.import_module(f"gpuimg.ops.{family}")
    except ModuleNotFoundError as exc:
        if exc.name != f"gpuimg.ops.{family}":
            raise  # a family that exists but fails to import is a bug to show, not hide
        return None


def _is_op(module: Any, name: str) -> bool:
    """Public functions of the family whose first parameter is ``src`` (helpers are not ops)."""
    fn = getattr(module, name, None)
    if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
        return False
    params = list(inspect.signature(fn).parameters)
    return bool(params) and params[0] == "src"


def available_ops() -> list[str]:
    """Names usable as pipeline steps: the ops of the ``gpuimg.ops`` families.

    Example:
        >>> "gaussian_blur" in available_ops()  # doctest: +SKIP
        True
    """
    names = []
    for family in OP_MODULES:
        module = _op_module(family)
        if module is not None:
            names += [name for name in vars(module) if _is_op(module, name)]
    return sorted(names)


def find_op(name: str) -> Callable[..., Any]:
    """The op function called ``name`` in one of the ``gpuimg.ops`` families.

    Example:
        >>> find_op("gaussian_blur").__name__  # doctest: +SKIP
        'gaussian_blur'
    """
    if not isinstance(name, str):
        raise TypeError(f"a step name must be a string, got {name!r}")
    for family in OP_MODULES:
        module = _op_module(family)
        if module is not None and _is_op(module, name):
            return getattr(module, name)
    raise ValueError(f"unknown step {name!r}; available steps: {', '.join(available_ops()) or '(no op modules found)'}")


class _Step:
    """One resolved step: the op, its keyword arguments, and its reused output buffer."""

    def __init__(self, spec: StepSpec):
        if callable(spec):
            self.name, self.fn, self.kwargs = getattr(spec, "__name__", repr(spec)), spec, {}
        elif isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) in (1, 2):
            kwargs = dict(spec[1]) if len(spec) == 2 and spec[1] is not None else {}
            self.name, self.fn, self.kwargs = spec[0], find_op(spec[0]), kwargs
        else:
            raise TypeError(f"a step must be a callable or a (name, kwargs) pair, got {spec!r}")
        params = _parameters(self.fn)
        self.takes_out = params is None or "out" in params
        self.takes_stream = params is None or "stream" in params
        self._check_kwargs()

    def _check_kwargs(self) -> None:
        try:
            inspect.signature(self.fn).bind(None, **self.kwargs)
        except TypeError as exc:
            raise ValueError(f"step {self.name!r} cannot take {self.kwargs}: {exc}") from None
        except ValueError:  # builtins without a signature: nothing to check
            pass

    def __call__(self, src: Any, out: Any, stream: Any) -> Any:
        extra: dict[str, Any] = {}
        if self.takes_out and out is not None:
            extra["out"] = out
        if self.takes_stream and stream is not None:
            extra["stream"] = stream
        return self.fn(src, **self.kwargs, **extra)

    def describe(self) -> list[Any]:
        return [self.name, self.kwargs]


def _parameters(fn: Callable[..., Any]) -> set[str] | None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


def load_steps(path: str | os.PathLike) -> list[tuple[str, dict[str, Any]]]:
    """Steps from a JSON file: ``[["resize_shorter", {"size": 512}], ["sharpen", {}]]`` or
    ``{"steps": [...]}``; each step may also be ``{"op": name, ...kwargs}``.

    Example:
        >>> import json, tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.json"
        >>> _ = f.write_text(json.dumps({"steps": [{"op": "flip", "axis": 1}]}))
        >>> load_steps(f)
        [('flip', {'axis': 1})]
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"pipeline file {str(path)!r} cannot be read as JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("steps")
    if not isinstance(data, list):
        raise ValueError(f"pipeline file {str(path)!r} must hold a list of steps or {{\"steps\": [...]}}")
    steps = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and isinstance(item.get("op"), str):
            kwargs = {k: v for k, v in item.items() if k != "op"}
            steps.append((item["op"], kwargs))
        elif isinstance(item, list) and len(item) in (1, 2) and isinstance(item[0], str):
            kwargs = item[1] if len(item) == 2 else {}
            if not isinstance(kwargs, dict):
                raise ValueError(f"step {i} of {str(path)!r}: the parameters must be an object, got {kwargs!r}")
            steps.append((item[0], dict(kwargs)))
        else:
            raise ValueError(f"step {i} of {str(path)!r} must be [name, {{params}}] or {{\"op\": name, ...}}, got {item!r}")
    return steps


# --------------------------------------------------------------------------- codec use


# Hardware-first JPEG decoding: the nvJPEG hardware decoder takes every JPEG it can and
# the hybrid one (CPU Huffman + CUDA IDCT) only what it cannot (progressive JPEGs, for
# instance); "gpu" and "cpu" keep the other formats. The pipeline shares the CPU with its
# readers, writers and the encoder: the Decoder's default (hardware and hybrid sharing each
# batch adaptively) cost 1.30 ms of CPU per image (4.5 cores) for 3,449 img/s, hardware-first
# 0.33 ms (1.2 cores) for 3,678 img/s (H200, 16 cores, decode_batch of 2,000 mixed-size JPEGs).
# Without a hardware decoder nvImageCodec registers none and the hybrid one takes every JPEG;
# on the CPU device the Decoder ignores backends.
DECODE_BACKENDS: tuple[Any, ...] = (("hw", 1.0), ("hybrid", 1.0), "gpu", "cpu")  # FIXED load hints (codec._backend)


def _new_decoder(device: str, size_hint: tuple[int, int, int] | None = None) -> Any:
    """The pipeline's Decoder. ``size_hint`` = (batch size, height, width) of the largest
    batch expected: nvJPEG's hardware decoder then allocates its buffers for that at once
    instead of growing them batch after batch through a run of new sizes (H200, 2,000
    mixed-size JPEGs, first pass: 3,439 img/s preallocated against 2,571 growing, not
    counting the first batch)."""
    from .codec import Decoder

    options = ""
    if size_hint is not None and device == "cuda":
        batch, height, width = size_hint
        options = " ".join(f"nvjpeg_hw_decoder:{k}={v}" for k, v in (
            ("preallocate_batch_size", batch), ("preallocate_height_hint", height), ("preallocate_width_hint", width)))
    # The decode lane host-waits for each ring slot's release event before decoding into
    # it, so the Decoder's own whole-stream guard would only cost overlap (codec.py).
    return Decoder(device, guard_reuse=False, backends=DECODE_BACKENDS, options=options)


# CPU threads of the pipeline's JPEG encoder: 4 encoded 512x512 batches faster than one
# thread per core (H200, 16 cores: 9,015 against 7,019 img/s alone; W1 +8 %).
ENCODER_THREADS = 4


def _new_encoder(device: str) -> Any:
    from .codec import Encoder

    return Encoder(device, num_threads=ENCODER_THREADS)


class _Codecs:
    """The Decoders and Encoders of one Pipeline, kept from run to run (and shared by its
    tensor iterators), plus the gate that keeps decode and encode calls from overlapping.

    Kept: nvImageCodec's decoder spends about 0.7 s on its first batch and grows its
    internal buffers over its first pass through new sizes (H200: 1,345 img/s on a first
    pass over 2,000 mixed-size JPEGs, 3,663 on the second), so a fresh decoder per run made
    every run pay that again. Each object is used by one thread at a time (they are not
    thread-safe) and goes back here only when its lane finished normally.

    Gate: the nvJPEG hardware decoder and the CUDA JPEG encoder slow each other down when
    they run at the same time (H200, batches of 64: decode 3,610 img/s alone, 1,473 beside
    an encoding thread; encode 5,643 alone, 1,074 beside a decoding thread), which is worse
    than taking turns. ``SERIALIZE_CODECS`` makes them take turns.
    """

    def __init__(self, device: str):
        self.device = device
        self._free: dict[str, list[Any]] = {"decode": [], "encode": []}
        self._lock = threading.Lock()
        self.gate: Any = threading.Lock() if SERIALIZE_CODECS else contextlib.nullcontext()

    def take(self, kind: str, size_hint: tuple[int, int, int] | None = None) -> Any:
        """A kept codec of ``kind`` ("decode"/"encode"), or a new one (``size_hint``: see
        :func:`_new_decoder`)."""
        with self._lock:
            if self._free[kind]:
                return self._free[kind].pop()
        return _new_decoder(self.device, size_hint) if kind == "decode" else _new_encoder(self.device)

    def give_back(self, kind: str, codec: Any) -> None:
        with self._lock:
            self._free[kind].append(codec)


def _parse(data: bytes) -> tuple[Any, tuple[int, int, int]]:
    """The file's :class:`~gpuimg.codec.ParsedSource` (header parsed once, truncation
    checked) and its decoded (height, width, channels).

    The pipeline decodes to RGB, so every image has 3 channels whatever the file stores.
    """
    from .codec import parse

    source = parse(data)
    return source, (source.info.height, source.info.width, 3)


def _decode(decoder: Any, items: list[_Item], out: ImageBatch | None, stream: Any) -> tuple[ImageBatch, list[int], list[tuple[int, Any]]]:
    """Decode ``items`` into ``out`` (reused); (batch of the good ones, their indices, failures).

    The items' sources were parsed by the reader threads: their headers are not read again.
    """
    result = decoder.decode_batch([it.source for it in items], out, mode="rgb", stream=stream)
    return result.images, list(result.indices), [(e.index, e.error) for e in result.errors]


def _encode(encoder: Any, batch: ImageBatch, fmt: str, quality: int, stream: Any) -> list[bytes | memoryview | BaseException]:
    """Encoded files of every image of ``batch``; a per-image error where one fails.

    The files are views of the encoder's reused output buffers (copied by the caller,
    outside the codec gate, before the encoder's next call). The Encoder fails a whole
    batch for one bad image; then each image is retried alone so only that image fails
    (rare path; those come as bytes).
    """
    from .errors import EncodeError

    kwargs = {"quality": quality} if fmt in LOSSY_FORMATS else {}
    try:
        return list(encoder.encode_batch(batch, fmt, stream=stream, copy=False, **kwargs))
    except EncodeError:
        pass
    out: list[bytes | BaseException] = []
    for img in batch:
        try:
            out.append(encoder.encode(img, fmt, stream=stream, **kwargs))
        except EncodeError as exc:
            out.append(exc)
    return out


def _free_cached_memory(device: str) -> None:
    """Give CuPy's cached blocks back before retrying a batch that ran out of memory."""
    if device == "cuda":
        import cupy

        cupy.get_default_memory_pool().free_all_blocks()


# --------------------------------------------------------------------------- results


@dataclass
class Failure:
    """One input that produced no output: its path, the stage and the reason."""

    path: str
    stage: str
    reason: str


@dataclass
class Summary:
    """What a run did. ``stage_seconds``: busy time of each stage (threads summed), which
    shows the bottleneck; ``images_per_second`` counts processed images over wall time."""

    processed: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[Failure] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    report_path: str | None = None

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["images_per_second"] = round(self.images_per_second, 2)
        return data

    def __str__(self) -> str:
        state = " (interrupted)" if self.interrupted else ""
        return (
            f"processed {self.processed}, skipped {self.skipped}, failed {self.failed} in "
            f"{self.seconds:.2f} s ({self.images_per_second:,.1f} images/s); read "
            f"{self.bytes_in / 1e6:,.1f} MB, wrote {self.bytes_out / 1e6:,.1f} MB{state}"
        )


@dataclass
class _Item:
    job: Job
    data: bytes = b""
    shape: tuple[int, int, int] = (0, 0, 0)  # decoded (height, width, 3), for the batch byte bound
    source: Any = None  # codec.ParsedSource of ``data``: what the decode lane decodes


# --------------------------------------------------------------------------- engine


class _Run:
    """The shared state of one run: stop flag, result queue, timers, first fatal error."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        # Unbounded and never stopped: workers always report, the main thread always reads.
        self.results: queue.Queue = queue.Queue()
        self.timer = StageTimer()
        self.fatal: BaseException | None = None

    def fail_fatal(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.stop.set()

    def fail(self, job: Job, stage: str, reason: Any) -> None:
        self.results.put(("fail", job, stage, _reason(reason)))

    def next_event(self) -> tuple[Any, ...] | None:
        """The next result, or None once a stage failed fatally."""
        while self.fatal is None:
            try:
                return self.results.get(timeout=0.05)
            except queue.Empty:
                continue
        return None

    def drain(self) -> Iterator[tuple[Any, ...]]:
        """Results still queued (writes that finished while stopping)."""
        while True:
            try:
                yield self.results.get_nowait()
            except queue.Empty:
                return


def _reason(reason: Any) -> str:
    if isinstance(reason, BaseException):
        text = str(reason) or type(reason).__name__
        return f"{type(reason).__name__}: {text}" if not isinstance(reason, OSError) else text
    return str(reason)


class _ItemError(Exception):
    """A per-item failure in a reader thread, with the stage it belongs to."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(str(error))
        self.stage, self.error = stage, error


def _read_item(job: Job) -> _Item:
    """Reader-thread work: the file's bytes, parsed once (:func:`gpuimg.codec.parse`) for
    both the decoded shape and the decode itself."""
    try:
        data = job.src.read_bytes()
    except OSError as exc:
        raise _ItemError("read", exc) from None
    if not data:
        raise _ItemError("read", ValueError("empty file (0 bytes)"))
    try:
        source, shape = _parse(data)
    except Exception as exc:  # not an image, unsupported format, bad header, truncated JPEG
        raise _ItemError("decode", exc) from None
    return _Item(job, data, shape, source)


class _Batcher:
    """Reads files ahead with a thread pool and emits batches bounded in count and bytes."""

    def __init__(self, run: _Run, jobs: list[Job], out: StageQueue, readers: int, batch_size: int, max_bytes: int):
        self.run, self.jobs, self.out = run, jobs, out
        self.readers, self.batch_size, self.max_bytes = readers, batch_size, max_bytes

    def __call__(self) -> None:
        items = ((item, item.shape[0] * item.shape[1] * item.shape[2]) for item in self._read_all())
        for batch in batches_by_size(items, self.batch_size, self.max_bytes):
            self.out.put(batch)
        self.out.put(DONE)

    def _read_all(self) -> Iterator[_Item]:
        window = max(2 * self.batch_size, 4 * self.readers)  # files read ahead of the decoder
        with cf.ThreadPoolExecutor(self.readers, thread_name_prefix="gpuimg-read") as pool:
            pending: deque[tuple[Job, cf.Future]] = deque()
            jobs = iter(self.jobs)
            try:
                while True:
                    while len(pending) < window and (job := next(jobs, None)) is not None:
                        pending.append((job, pool.submit(self._timed_read, job)))
                    if not pending:
                        return
                    if self.run.stop.is_set():
                        raise Stopped
                    job, fut = pending.popleft()
                    try:
                        yield fut.result()
                    except _ItemError as exc:
                        self.run.fail(job, exc.stage, exc.error)
            finally:
                for _, fut in pending:
                    fut.cancel()

    def _timed_read(self, job: Job) -> _Item:
        with self.run.timer("read"):
            return _read_item(job)


class _Slot:
    """A decode ring entry: a reused ImageBatch and the event after which it is free."""

    def __init__(self) -> None:
        self.batch: ImageBatch | None = None
        self.released: Any = None


class _Decoded(NamedTuple):
    items: list[_Item]  # the items that decoded, in slot order (all of them after an OOM)
    slot: _Slot
    ready: Any  # event: the decode finished on the decode lane
    oom: BaseException | None = None  # the batch ran out of memory while decoding


PREALLOCATE_MAX_BYTES = 2**30  # the most decoder preallocation a size hint asks for


def _size_hint(items: list[_Item]) -> tuple[int, int, int]:
    """(batch size, height, width) covering every image of ``items`` (see _new_decoder),
    with the batch count lowered so the hint asks for at most PREALLOCATE_MAX_BYTES."""
    height, width = max(it.shape[0] for it in items), max(it.shape[1] for it in items)
    return max(1, min(len(items), PREALLOCATE_MAX_BYTES // (3 * height * width))), height, width


class _DecodeStage:
    """Decode threads (``lanes``), each with its own Decoder and stream, decoding into a
    shared ring of reused batches (``DECODE_RING`` per lane)."""

    def __init__(self, run: _Run, codecs: _Codecs, src: StageQueue, out: StageQueue, lanes: int, worker: Any = None):
        self.run, self.codecs, self.src, self.out, self.lanes = run, codecs, src, out, lanes
        self.worker = worker  # a decode worker process (its lane takes batches too), or None
        self.device = codecs.device
        self.free: StageQueue = StageQueue(0, run.stop)
        total = lanes + (worker is not None)
        for _ in range(DECODE_RING * total):
            self.free.put(_Slot())
        self._countdown = LaneCountdown(total)

    def start(self) -> list[threading.Thread]:
        threads = [start_thread(f"decode{i}", self._lane, self.run.fail_fatal) for i in range(self.lanes)]
        if self.worker is not None:
            threads.append(start_thread("decode-worker", self._worker_lane, self.run.fail_fatal))
        return threads

    def _lane(self) -> None:
        lane = Lane(self.device)
        decoder = None
        while (items := self.src.get()) is not DONE:
            if decoder is None:  # made for the first batch's sizes (a kept one is reused)
                decoder = self.codecs.take("decode", _size_hint(items))
            slot = self.free.get()
            # Host wait on the consumer's event, not just a stream wait: the nvJPEG
            # hardware decoder may write before earlier stream work ends (ANCHORS.md).
            Lane.host_wait(slot.released)
            try:
                with self.codecs.gate, self.run.timer("decode"), lane.active():
                    slot.batch, good, failures = _decode(decoder, items, slot.batch, lane.stream)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                slot.batch = None  # a failed growth leaves the arena empty: start afresh
                self.out.put(_Decoded(items, slot, None, exc))  # the process lane splits it
                continue
            for index, error in failures:
                self.run.fail(items[index].job, "decode", error)
            self.out.put(_Decoded([items[i] for i in good], slot, lane.record()))
        if decoder is not None:
            self.codecs.give_back("decode", decoder)
        pass_end(self.src, self._countdown, self.out)

    def _worker_lane(self) -> None:
        """Hands batches to the decode worker process (all lanes take from one queue, so
        each decodes as many batches as its speed allows) and copies each result from the
        staging slot into a ring slot's batch (one device-to-device copy)."""
        import cupy

        from . import _workers

        lane, worker = Lane(self.device), self.worker
        copied: list[Any] = [None] * worker.SLOTS  # event: the last copy out of staging slot k
        seq, waiting = 0, False
        try:
            while (items := self.src.get()) is not DONE:
                k = seq % worker.SLOTS
                seq += 1
                Lane.host_wait(copied[k])  # the worker may now overwrite staging slot k
                worker.stage(k, _arena_bytes([it.shape for it in items]))
                with self.run.timer("decode"):
                    worker.send(("decode", seq, k, [str(it.job.src) for it in items]))
                    waiting = True
                    _, _, good, errors, rows, _ = _answer(worker, "decoded", seq)
                    waiting = False
                for index, stage, reason in errors:
                    self.run.fail(items[index].job, stage, reason)
                slot = self.free.get()
                Lane.host_wait(slot.released)
                kept = [items[i] for i in good]
                if not kept:
                    self.out.put(_Decoded([], slot, None))
                    continue
                try:
                    shapes = [it.shape for it in kept]
                    if slot.batch is None:
                        slot.batch = ImageBatch.empty(shapes, dtype=np.uint8, device=self.device)
                    else:
                        slot.batch.set_shapes(shapes, dtype=np.uint8)
                except Exception as exc:
                    if not is_out_of_memory(exc):
                        raise
                    slot.batch = None
                    self.out.put(_Decoded(kept, slot, None, exc))  # the process lane splits it
                    continue
                if slot.batch.table()[:, :5].tolist() != rows:  # same layout rules on both sides
                    raise RuntimeError("the decode worker laid the batch out differently from this process")
                with lane.active():
                    cupy.cuda.runtime.memcpyAsync(slot.batch.data_ptr, worker.slots[k].ptr, slot.batch.used_bytes, 3,
                                                  lane.stream.ptr)
                copied[k] = lane.record()
                self.out.put(_Decoded(kept, slot, copied[k]))
        finally:
            if waiting:  # stopped while the worker was decoding: it is reusable once it answered
                try:
                    _answer(worker, "decoded", seq)
                except Exception:
                    worker.healthy = False
            _workers.give_back(worker)
        pass_end(self.src, self._countdown, self.out)

    def release(self, slot: _Slot, event: Any) -> None:
        slot.released = event
        self.free.put(slot)


def _arena_bytes(shapes: list[tuple[int, int, int]]) -> int:
    """Arena bytes of an RGB uint8 batch of ``shapes`` (ImageBatch's layout rules)."""
    from .image import slot_layout

    return int(slot_layout(shapes, 3, np.uint8)[2])


def _answer(worker: Any, kind: str, seq: int) -> tuple[Any, ...]:
    """The worker's answer ``kind`` to request ``seq`` (map acknowledgements are skipped)."""
    while True:
        try:
            msg = worker.recv()
        except (EOFError, OSError):
            worker.healthy = False
            raise RuntimeError(f"the {worker.role} worker process exited during the run") from None
        if msg[0] == "failed":
            worker.healthy = False
            raise RuntimeError(f"the {worker.role} worker failed: {msg[1]}")
        if msg[0] == kind and msg[1] == seq:
            return msg


class _Processor:
    """Runs the steps on a batch into per-step outputs that are reused across batches."""

    def __init__(self, steps: list[_Step]):
        self.steps = steps
        self.outputs: list[Any] = [None] * len(steps)
        self.released: Any = None  # event: the sink has finished reading the last result

    def __call__(self, batch: ImageBatch, stream: Any) -> ImageBatch:
        x = batch
        for i, step in enumerate(self.steps):
            x = self.outputs[i] = step(x, self.outputs[i], stream)
        return x


class _ProcessStage:
    """Process thread: waits for a decoded batch (device-side), runs the steps into one of
    a few reused sets of outputs, releases the decode slot, and hands the result to a sink
    (encode + write on the sink's own threads, or tensors)."""

    def __init__(self, run: _Run, device: str, steps: list[_Step], src: StageQueue, decode: _DecodeStage, sink: Any):
        self.run, self.device, self.src, self.decode, self.sink = run, device, src, decode, sink
        self.free: StageQueue = StageQueue(0, run.stop)
        # One output set being written here plus one per batch the sink may be reading.
        for _ in range(1 + sink.lanes):
            self.free.put(_Processor(steps))
        self._fallback_decoder: Any = None

    def __call__(self) -> None:
        lane = Lane(self.device)
        try:
            self.sink.start(lane)
            while (decoded := self.src.get()) is not DONE:
                self._one(decoded, lane)
        finally:
            self.sink.finish()

    def _one(self, decoded: _Decoded, lane: Lane) -> None:
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

    def _processor(self) -> _Processor:
        proc = self.free.get()
        Lane.host_wait(proc.released)  # its outputs are about to be overwritten
        return proc

    def _on_done(self, proc: _Processor, slot: _Slot | None) -> Callable[[Any], None]:
        """The sink calls this with an event once it has queued its last read of the result."""

        def done(event: Any) -> None:
            proc.released = event
            self.free.put(proc)
            if slot is not None:
                self.decode.release(slot, event)

        return done

    def _split(self, items: list[_Item], lane: Lane, exc: BaseException) -> None:
        """Out of memory: free cached blocks, then redo the items in halves on this thread."""
        _free_cached_memory(self.device)
        if len(items) <= 1:
            for item in items:
                self.run.fail(item.job, "process", exc)
            return
        if self._fallback_decoder is None:
            self._fallback_decoder = _new_decoder(self.device)
        half = len(items) // 2
        for part in (items[:half], items[half:]):
            proc = self._processor()
            try:
                with self.run.timer("process"), lane.active():
                    batch, good, failures = _decode(self._fallback_decoder, part, None, lane.stream)
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


class _FileSink:
    """Encode threads (``lanes``, each with its own Encoder and stream) plus a pool of
    writer threads."""

    def __init__(self, run: _Run, codecs: _Codecs, fmt: str, quality: int, writers: int, lanes: int):
        self.run, self.codecs, self.fmt, self.quality, self.writers = run, codecs, fmt, quality, writers
        self.device = codecs.device
        self.lanes = lanes
        # Bounds the encoded bytes waiting for a writer (memory), like the queues do.
        self._slots = threading.BoundedSemaphore(8 * writers)
        self.pool: cf.ThreadPoolExecutor | None = None
        self.threads: list[threading.Thread] = []
        self.queue = StageQueue(1, run.stop)
        self._countdown = LaneCountdown(lanes)

    def start(self, lane: Lane) -> None:
        self.pool = cf.ThreadPoolExecutor(self.writers, thread_name_prefix="gpuimg-write")
        self.threads = [start_thread(f"encode{i}", self._encode_loop, self.run.fail_fatal) for i in range(self.lanes)]

    def handle(self, items: list[_Item], batch: ImageBatch, ready: Any, done: Callable[[Any], None]) -> None:
        self.queue.put((items, batch, ready, done))

    def _encode_loop(self) -> None:
        lane = Lane(self.device)
        encoder = self.codecs.take("encode")
        while (job := self.queue.get()) is not DONE:
            items, batch, ready, done = job
            lane.wait(ready)
            try:
                with self.codecs.gate, self.run.timer("encode"), lane.active():
                    views = _encode(encoder, batch, self.fmt, self.quality, lane.stream)
            finally:
                done(lane.record())
            # Own copies for the writers, made after the gate opened for the decoder.
            encoded = [v if isinstance(v, BaseException) else bytes(v) for v in views]
            self._write_all(items, encoded)
        self.codecs.give_back("encode", encoder)
        pass_end(self.queue, self._countdown, None)

    def _write_all(self, items: list[_Item], encoded: list[bytes | BaseException]) -> None:
        for item, data in zip(items, encoded):
            if isinstance(data, BaseException):
                self.run.fail(item.job, "encode", data)
                continue
            while not self._slots.acquire(timeout=0.05):
                if self.run.stop.is_set():
                    raise Stopped
            self.pool.submit(self._write, item, data)  # type: ignore[union-attr]

    def _write(self, item: _Item, data: bytes) -> None:
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
            if self.pool is not None:
                self.pool.shutdown(wait=True)
        finally:
            self.run.results.put(("end",))


class _WorkerSink:
    """Encode and write in the encode worker process (see :mod:`gpuimg._workers`).

    A sender thread copies each processed batch into a free staging slot (device to
    device, then the step outputs are released) and sends its layout and output paths; a
    receiver thread takes the worker's answers: slot released, per-item results (with the
    worker's encode and write seconds for the stage timers). ``finish`` waits until the
    worker has answered every batch sent, so the worker can serve the next run.
    """

    lanes = 1  # step-output sets held by this sink: the one being copied

    def __init__(self, run: _Run, worker: Any, fmt: str, quality: int):
        self.run, self.worker, self.fmt, self.quality = run, worker, fmt, quality
        self.queue = StageQueue(1, run.stop)
        self.free_slots = StageQueue(0, run.stop)
        for slot in range(worker.SLOTS):
            self.free_slots.put(slot)
        self.pending: dict[int, list[_Item]] = {}
        self.seq = 0
        self.threads: list[threading.Thread] = []
        self._answered = True  # every batch sent has been answered (the worker is reusable)

    def start(self, lane: Lane) -> None:
        self.threads = [start_thread("send", self._send_loop, self.run.fail_fatal),
                        start_thread("receive", self._receive_loop, self.run.fail_fatal)]

    def handle(self, items: list[_Item], batch: ImageBatch, ready: Any, done: Callable[[Any], None]) -> None:
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
                for item, (status, value) in zip(self.pending.pop(seq), results):
                    if status == "ok":
                        self.run.results.put(("done", item.job, len(item.data), value))
                    else:
                        self.run.fail(item.job, status, value)
            elif kind == "failed":
                raise RuntimeError(f"the encode worker failed: {msg[1]}")
            elif kind == "flushed":
                self._answered = True
                return

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
            from . import _workers

            if not self._answered:
                self.worker.healthy = False
            _workers.give_back(self.worker)
            self.run.results.put(("end",))


# --------------------------------------------------------------------------- pipeline


class Pipeline:
    """A sequence of op calls applied batch-wise to datasets.

    ``steps``: callables taking and returning an ImageBatch (``out=``/``stream=`` are
    passed when they accept them), or ``(name, kwargs)`` pairs naming an op of
    :mod:`gpuimg.ops` (see :func:`available_ops`), so a pipeline can come from a JSON file
    (:func:`load_steps`). ``device``: "cpu", "cuda" or None for the default.

    Example:
        >>> p = Pipeline([], device="cpu")
        >>> p.steps
        []
    """

    def __init__(self, steps: Iterable[StepSpec] = (), device: str | None = None):
        self.device = resolve_device(device)
        self._steps = [_Step(s) for s in steps]
        self._codecs = _Codecs(self.device)  # kept between runs: see _Codecs
        for role in _workers_wanted(self.device):
            from . import _workers

            _workers.prestart(role, _device_id())

    @property
    def steps(self) -> list[list[Any]]:
        """The steps as ``[name, kwargs]`` lists (what a pipeline JSON file holds)."""
        return [s.describe() for s in self._steps]

    def plan(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike],
        output_dir: str | os.PathLike,
        *,
        format: str = "jpeg",
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[Job]:
        """The jobs a run would do: each input and its output path (None: refused).

        Example:
            >>> Pipeline([], device="cpu").plan([], "out")
            []
        """
        return plan_jobs(inputs, output_dir, _suffix(format), include, exclude)

    def run(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike],
        output_dir: str | os.PathLike,
        *,
        format: str = "jpeg",
        quality: int = 90,
        batch_size: int = 64,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        resume: bool = False,
        # Two readers and one writer: on a warm page cache more threads only compete with
        # the codec threads for the interpreter (H200 host, 16 cores, W1: 1,642 img/s with
        # 2 + 1 against 1,511 with 4 + 2); one atomic_write takes 0.054 ms (18,500 files/s
        # on one thread, and 4 threads managed 4,469 files/s in all: the directory lock).
        # Raise ``readers`` for storage with latency (network file systems, cold disks).
        readers: int = 2,
        writers: int = 1,
        report: str | os.PathLike | None = None,
        progress: Callable[[int, int], None] | None = None,
        workers: bool | None = None,
    ) -> Summary:
        """Process every input into ``output_dir``; returns a :class:`Summary`.

        Failures are per item (listed in the summary and in the JSON report, by default
        ``output_dir/gpuimg-report.json``); the run goes on. ``resume=True`` skips inputs
        whose output exists and is at least as new. ``progress(done, total)`` is called
        from the calling thread after each finished item. ``readers``/``writers``: threads
        reading inputs and writing outputs (raise ``readers`` for slow or remote storage).
        ``workers`` (GPU): encode and write in a worker process, and decode part of the
        batches in another, so the codecs overlap (True: wait for them to start; None: use
        them if they are ready, or wait when the run has at least WORKER_MIN_IMAGES
        inputs; False: everything in this process; see ENCODE_IN_WORKER).
        Ctrl-C stops the run cleanly:
        finished outputs are kept, no partial file is left, and the summary says
        ``interrupted``.

        Example:
            >>> s = Pipeline([], device="cpu").run([], "/tmp/gpuimg-doc-out")
            >>> s.processed, s.failed
            (0, 0)
        """
        _check_run_args(format, quality, batch_size, max_batch_bytes, readers, writers)
        summary = Summary()
        started = time.perf_counter()
        todo = self._triage(self.plan(inputs, output_dir, format=format, include=include, exclude=exclude), resume, summary)
        run = _Run()
        try:
            # inside the try: Ctrl-C while waiting for the encode worker to start is a stop too
            sink = self._sink(run, _codec_format(format), int(quality), writers, len(todo), workers)
            self._execute(run, todo, sink, batch_size, max_batch_bytes, readers, summary, progress, workers)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            summary.seconds = time.perf_counter() - started
            summary.stage_seconds = {k: round(v, 4) for k, v in run.timer.seconds.items()}
            summary.report_path = str(Path(report) if report is not None else Path(output_dir) / REPORT_NAME)
            _write_report(summary, self.steps)
        return summary

    def _worker(self, role: str, count: int, workers: bool | None) -> Any:
        """A ``role`` worker process for a run of ``count`` inputs, or None (see ``run``)."""
        if workers is False or role not in _workers_wanted(self.device):
            return None
        from . import _workers

        return _workers.take(role, _device_id(), wait=bool(workers) or count >= WORKER_MIN_IMAGES)

    def _sink(self, run: _Run, fmt: str, quality: int, writers: int, count: int, workers: bool | None) -> Any:
        """Encode + write in the encode worker process where one can run (GPU) and is ready
        or worth waiting for (see ``run``), else in this process."""
        worker = self._worker("encode", count, workers)
        if worker is not None:
            return _WorkerSink(run, worker, fmt, quality)
        return _FileSink(run, self._codecs, fmt, quality, writers, ENCODE_LANES)

    def _triage(self, jobs: list[Job], resume: bool, summary: Summary) -> list[Job]:
        todo = []
        for job in jobs:
            if job.dst is None:
                summary.failures.append(Failure(str(job.src), "plan", "output path would overwrite an input or leave output_dir"))
                summary.failed += 1
            elif resume and is_done(job):
                summary.skipped += 1
            else:
                todo.append(job)
        return todo

    def _execute(self, run: _Run, jobs: list[Job], sink: Any, batch_size: int, max_bytes: int, readers: int,
                 summary: Summary, progress: Callable[[int, int], None] | None, workers: bool | None) -> None:
        threads = self._start(run, jobs, sink, batch_size, max_bytes, readers, workers)
        total, done = len(jobs), 0
        try:
            while True:
                event = run.next_event()
                if event is None or event[0] == "end":
                    break
                done += 1
                _account(summary, event)
                if progress is not None:
                    progress(done, total)
        except BaseException:
            run.stop.set()
            raise
        finally:
            for t in threads:
                t.join()
            for event in run.drain():
                if event[0] != "end":
                    _account(summary, event)
        if run.fatal is not None:
            raise run.fatal

    def _start(self, run: _Run, jobs: list[Job], sink: Any, batch_size: int, max_bytes: int, readers: int,
               workers: bool | None = None) -> list[threading.Thread]:
        to_decode = StageQueue(2, run.stop)
        to_process = StageQueue(1, run.stop)
        decode = _DecodeStage(run, self._codecs, to_decode, to_process, DECODE_LANES,
                              self._worker("decode", len(jobs), workers))
        process = _ProcessStage(run, self.device, self._steps, to_process, decode, sink)
        batcher = _Batcher(run, jobs, to_decode, readers, batch_size, max_bytes)
        return [
            start_thread("batch", batcher, run.fail_fatal),
            *decode.start(),
            start_thread("process", process, run.fail_fatal),
        ]

    # ----------------------------------------------------------------- ML exit
    def batches(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike],
        batch_size: int = 64,
        *,
        size: tuple[int, int] | None = (224, 224),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
        readers: int = 2,
        prefetch: int = 2,
        workers: bool | None = None,
    ) -> TensorIterator:
        """Yield ``(tensor, paths)``: float32 NCHW tensors (CuPy on the GPU, NumPy on the
        CPU), normalised by ``mean``/``std`` (on the 0..1 scale), with their source paths.

        After the steps, images not of ``size`` (height, width) are resized to it, so every
        tensor row has one shape. Decoding and processing of the next batches run ahead
        (``prefetch`` batches) while the caller trains. A yielded tensor is ordered on the
        caller's current CUDA stream (no host sync) and stays valid until the next batch is
        taken (work the caller queued on its current stream before then is waited for):
        copy it to keep it longer. Files that fail are skipped; ``iterator.failures`` lists
        them. ``torch.from_dlpack(tensor)`` shares the memory. Fixed batch sizes: batches
        are formed by count (the last one may be shorter), not by ``max_batch_bytes``. With more than
        one decode lane (``DECODE_LANES``, or the decode worker: ``workers`` as in :meth:`run`)
        batches may come in a different order; ``workers=False`` keeps the file order.

        Example:
            >>> p = Pipeline([("resize_shorter", {"size": 256}), ("center_crop", {"size": (224, 224)})])  # doctest: +SKIP
            >>> for x, paths in p.batches("train/", 128, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):  # doctest: +SKIP
            ...     loss = model(torch.from_dlpack(x))
        """
        from ._tensors import TensorIterator  # the ML exit lives in its own module

        _check_run_args("jpeg", 90, batch_size, DEFAULT_MAX_BATCH_BYTES, readers, 1)
        jobs = plan_jobs(inputs, None, "", include, exclude)  # no outputs: tensors only
        return TensorIterator(self, jobs, batch_size, size, mean, std, readers, prefetch, workers)


# --------------------------------------------------------------------------- helpers


def _device_id() -> int:
    import cupy

    return int(cupy.cuda.Device().id)


def _workers_wanted(device: str) -> list[str]:
    """The worker roles pipelines on ``device`` use (see ENCODE_IN_WORKER)."""
    from . import _workers

    if device != "cuda":
        return []
    switches = {"encode": ENCODE_IN_WORKER, "decode": DECODE_IN_WORKER}
    return [role for role in _workers.ROLES if switches[role] and _workers.enabled(role)]


def _account(summary: Summary, event: tuple[Any, ...]) -> None:
    kind, job = event[0], event[1]
    if kind == "done":
        summary.processed += 1
        summary.bytes_in += event[2]
        summary.bytes_out += event[3]
    elif kind == "fail":
        summary.failed += 1
        summary.failures.append(Failure(str(job.src), event[2], event[3]))


def _write_report(summary: Summary, steps: list[list[Any]]) -> None:
    if summary.report_path is None:
        return
    report = {"summary": summary.as_dict(), "steps": steps}
    report["summary"].pop("failures")
    report["failures"] = [asdict(f) for f in summary.failures]
    atomic_write(Path(summary.report_path), json.dumps(report, indent=1).encode())


def _suffix(fmt: str) -> str:
    suffix = FORMAT_SUFFIX.get(str(fmt).lower())
    if suffix is None:
        raise ValueError(f"format={fmt!r} is not supported; use one of {sorted(set(FORMAT_SUFFIX))}")
    return suffix


def _codec_format(fmt: str) -> str:
    return _suffix(fmt).lstrip(".")


def _check_run_args(fmt: str, quality: Any, batch_size: Any, max_batch_bytes: Any, readers: Any, writers: Any) -> None:
    _suffix(fmt)
    for name, value, low in (("quality", quality, 1), ("batch_size", batch_size, 1), ("max_batch_bytes", max_batch_bytes, 1),
                             ("readers", readers, 1), ("writers", writers, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if quality > 100:
        raise ValueError(f"quality must be in 1..100, got {quality!r}")
