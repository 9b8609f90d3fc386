"""The decode stage: decode lanes (each its own Decoder and CUDA stream) and, on the GPU,
a lane feeding the decode worker process, all decoding into one ring of reused batches.

Example:
    >>> from gpuimg.pipeline.decode import arena_bytes
    >>> arena_bytes([(2, 2, 3)]) > 0
    True
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

import numpy as np

from ..codec.cmyk import decode_ink, is_cmyk
from ..codec.decoder import unchanged_layout
from ..device import use_stream
from ..errors import GpuImgError
from ..image import ImageBatch, slot_layout
from . import codecs, workers
from .read import Item
from .results import Run
from .stages import DONE, Lane, LaneCountdown, StageQueue, is_out_of_memory, pass_end, start_thread
from .steps import OutputRule

__all__ = ["Slot", "Decoded", "DecodeStage", "arena_bytes", "Group", "groups", "decode_group", "decode_cmyk_items"]

RGB = ("rgb", "uint8")  # the decode of a run without an OutputRule (tensors) and of 8-bit RGB images
CMYK = ("cmyk", "uint8")  # CMYK JPEGs of a run that converts colours: inks -> sRGB (decode_cmyk_items)


class Group(NamedTuple):
    """Items of a batch that decode alike (one ImageBatch holds one dtype; ops launch once
    per channel count), with the decoder's mode and depth for them. Mode "cmyk": CMYK
    JPEGs of a run that converts colours, decoded to their inks and converted to sRGB
    with ``intent`` (:func:`decode_cmyk_items`)."""

    items: list[Item]
    mode: str
    depth: str
    intent: str | None = None


def groups(items: list[Item], rule: OutputRule | None, colour: str | None = None) -> list[Group]:
    """``items`` split by what they decode to under ``rule`` (None: every item as RGB
    uint8), in first-seen order; a batch of one kind (all 8-bit RGB photos) stays one
    group decoded as ("rgb", "uint8"), as before modes existed: no extra call or copy.
    What an item is as stored comes from its parsed header
    (:func:`gpuimg.codec.decoder.unchanged_layout`). An item whose header the decoder
    refuses joins the first group (its decode reports it). ``colour``: the rendering
    intent of a run whose steps convert colours to sRGB; its CMYK JPEGs form a "cmyk"
    group (None: they decode to RGB as the decoder makes it).

    Example:
        >>> from gpuimg.codec import formats
        >>> from gpuimg.pipeline.read import read_item
        >>> from gpuimg.pipeline.files import plan_jobs
        >>> paths = ["assets/coffee.jpg", "assets/coffee_rgba.png", "assets/chelsea_gray16.png", "assets/chelsea.jpg"]
        >>> items = [read_item(j) for j in plan_jobs(paths, None, "")]
        >>> [(len(g.items), g.mode, g.depth) for g in groups(items, OutputRule(formats.lookup("png")))]
        [(2, 'rgb', 'uint8'), (1, 'rgba', 'uint8'), (1, 'gray', 'any')]
    """
    if rule is None and colour is None:
        return [Group(items, *RGB)]
    by_kind: dict[tuple[str, str], list[Item]] = {}
    for item in items:
        try:  # what the item is as stored: the decoder's "unchanged", any-depth layout
            info = item.source.info
            if colour is not None and is_cmyk(info):
                kind = CMYK
            else:
                kind = rule.decode_args(*unchanged_layout(info)) if rule is not None else RGB
        except Exception:  # noqa: BLE001 - reported by the decode itself
            kind = next(iter(by_kind), RGB)
        by_kind.setdefault(kind, []).append(item)
    return [Group(group, *kind, colour if kind == CMYK else None) for kind, group in by_kind.items()]


class _InMode:
    """A Decoder whose ``decode_batch`` decodes in ``mode`` / ``depth`` (what
    :func:`codecs.decode_items`, which decodes RGB, does not pass)."""

    def __init__(self, decoder: Any, mode: str, depth: str):
        self.decoder, self.mode, self.depth = decoder, mode, depth

    def decode_batch(self, srcs: Any, out: Any = None, *, mode: str = "rgb", stream: Any = None, **kwargs: Any) -> Any:
        return self.decoder.decode_batch(srcs, out, mode=self.mode, depth=self.depth, stream=stream, **kwargs)


def decode_group(decoder: Any, group: Group, out: ImageBatch | None, stream: Any) -> tuple[ImageBatch, list[int], list[tuple[int, Any]]]:
    """:func:`codecs.decode_items` in the group's mode and depth: (batch of the good
    items, their indices in ``group.items``, failures)."""
    if group.mode == CMYK[0]:
        return decode_cmyk_items(decoder.device, group.items, out, group.intent or "relative", stream)
    moded = decoder if (group.mode, group.depth) == RGB else _InMode(decoder, group.mode, group.depth)
    return codecs.decode_items(moded, group.items, out, stream)


def decode_cmyk_items(device: str, items: list[Item], out: ImageBatch | None, intent: str,
                      stream: Any) -> tuple[ImageBatch, list[int], list[tuple[int, Any]]]:
    """CMYK JPEGs of a run that converts colours: each one's inks decoded on the host
    (:func:`gpuimg.codec.cmyk.decode_ink`), then all of them through their CMYK profiles
    to sRGB in ONE :func:`~gpuimg.ops.color.convert_colorspace` launch into ``out``
    (reused): (batch of the good items, their indices, failures). The later colour step
    finds RGB pixels with a CMYK profile and takes them as they are.

    Example:
        >>> import io, numpy as np
        >>> from PIL import Image as PILImage
        >>> from gpuimg.codec.sources import parse
        >>> buf = io.BytesIO()
        >>> PILImage.fromarray(np.full((2, 3, 4), (0, 255, 255, 0), np.uint8), "CMYK").save(buf, "JPEG", quality=100)
        >>> batch, good, failed = decode_cmyk_items("cpu", [Item(None, source=parse(buf.getvalue()))], None, "relative", None)
        >>> batch.shapes, good, failed, batch[0].numpy()[0, 0].tolist()
        ([(2, 3, 3)], [0], [], [255, 0, 0])
    """
    from ..meta import Metadata
    from ..ops.color.icc import cmyk_lut, convert_colorspace

    good, inks, failures = [], [], []
    for k, item in enumerate(items):
        try:
            ink = decode_ink(item.source)
            cmyk_lut(item.source.metadata.icc, intent)  # a profile LittleCMS refuses fails this item only
        except (GpuImgError, OSError, ValueError) as exc:
            failures.append((k, exc))
            continue
        inks.append(ink)
        good.append(k)
    shapes = [(ink.shape[0], ink.shape[1], 3) for ink in inks]
    target = ImageBatch.empty(shapes, device=device) if out is None else out.set_shapes(shapes, dtype=np.uint8)
    if inks:
        with use_stream(device, stream):
            ink_batch = ImageBatch.from_images(inks, device=device)
        for img, k in zip(ink_batch, good):
            img.metadata = Metadata(icc=items[k].source.metadata.icc, cmyk=True)
        convert_colorspace(ink_batch, intent=intent, out=target, stream=stream)
    return target, good, failures


class Slot:
    """A decode ring entry: a reused ImageBatch and the event after which it is free."""

    def __init__(self) -> None:
        self.batch: ImageBatch | None = None
        self.released: Any = None


class Decoded(NamedTuple):
    """A decoded batch handed to the process stage."""

    items: list[Item]  # the items that decoded, in slot order (all of them after an OOM)
    slot: Slot
    ready: Any  # event: the decode finished on the decode lane
    oom: BaseException | None = None  # the batch ran out of memory while decoding
    group: Group | None = None  # how it was decoded (None: RGB uint8, the decode worker's)


def arena_bytes(shapes: list[tuple[int, int, int]]) -> int:
    """Arena bytes of an RGB uint8 batch of ``shapes`` (ImageBatch's layout rules)."""
    return int(slot_layout(shapes, 3, np.uint8)[2])


class DecodeStage:
    """Decode threads (``config.decode_lanes``), each with its own Decoder and stream,
    decoding into a shared ring of reused batches (``config.decode_ring`` per lane), plus
    the decode worker's lane when ``worker`` is given."""

    def __init__(self, run: Run, pool: codecs.CodecPool, src: StageQueue, out: StageQueue, worker: Any = None,
                 rule: OutputRule | None = None, colour: str | None = None):
        self.run, self.pool, self.src, self.out, self.rule = run, pool, src, out, rule
        self.colour = colour  # the steps' rendering intent to sRGB (CMYK JPEGs decode to inks), or None
        self.lanes = pool.config.decode_lanes
        self.worker = worker  # a decode worker process (its lane takes batches too), or None
        self.device = pool.device
        self.free: StageQueue = StageQueue(0, run.stop)
        total = self.lanes + (worker is not None)
        for _ in range(pool.config.decode_ring * total):
            self.free.put(Slot())
        self._countdown = LaneCountdown(total)
        self._ended = threading.Event()  # a lane took the end marker: a joining worker need not come

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
                decoder = self.pool.take("decode", [it.shape for it in items])
            for group in groups(items, self.rule, self.colour):
                self._decode_into_slot(decoder, group, lane)
        self._ended.set()
        if decoder is not None:
            self.pool.give_back("decode", decoder)
        pass_end(self.src, self._countdown, self.out)

    def _decode_into_slot(self, decoder: Any, group: Group, lane: Lane) -> None:
        """Decode ``group`` into a free ring slot and hand it to the process stage."""
        items = group.items
        slot = self.free.get()
        # Host wait on the consumer's event, not just a stream wait: the nvJPEG
        # hardware decoder may write before earlier stream work ends (torchvision issue 9606).
        Lane.host_wait(slot.released)
        try:
            with self.pool.gate, self.run.timer("decode"), lane.active():
                slot.batch, good, failures = decode_group(decoder, group, slot.batch, lane.stream)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            slot.batch = None  # a failed growth leaves the arena empty: start afresh
            self.out.put(Decoded(items, slot, None, exc, group))  # the process lane splits it
            return
        for index, error in failures:
            self.run.fail(items[index].job, "decode", error)
        self.out.put(Decoded([items[i] for i in good], slot, lane.record(), None, group))

    def _worker_lane(self) -> None:
        """Hands batches to the decode worker process (all lanes take from one queue, so
        each decodes as many batches as its speed allows) and copies each result from the
        staging slot into a ring slot's batch (one device-to-device copy)."""
        import cupy

        worker = self.worker
        if isinstance(worker, workers.Joining):  # the run started without it: it joins once ready
            worker = worker.get(self._ended, self.run.stop)
            if worker is None:  # the other lanes took every batch (or it could not start)
                self._lane()
                return
        lane = Lane(self.device)
        copied: list[Any] = [None] * worker.SLOTS  # event: the last copy out of staging slot k
        seq, waiting = 0, False
        local = None  # this thread's decoder for what the worker does not decode (not RGB uint8)
        try:
            for group in (g for items in iter(self.src.get, DONE) for g in groups(items, self.rule, self.colour)):
                items = group.items
                if (group.mode, group.depth) != RGB:  # the worker decodes RGB uint8 only
                    if local is None:
                        local = self.pool.take("decode", [it.shape for it in items])
                    self._decode_into_slot(local, group, lane)
                    continue
                k = seq % worker.SLOTS
                seq += 1
                Lane.host_wait(copied[k])  # the worker may now overwrite staging slot k
                worker.stage(k, arena_bytes([it.shape for it in items]))
                with self.run.timer("decode"):
                    worker.send(("decode", seq, k, [str(it.job.src) for it in items]))
                    waiting = True
                    _, _, good, errors, rows, _ = worker.answer("decoded", seq)
                    waiting = False
                for index, stage, reason in errors:
                    self.run.fail(items[index].job, stage, reason)
                slot = self.free.get()
                Lane.host_wait(slot.released)
                kept = [items[i] for i in good]
                if not kept:
                    self.out.put(Decoded([], slot, None))
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
                    self.out.put(Decoded(kept, slot, None, exc))  # the process lane splits it
                    continue
                if slot.batch.table()[:, :5].tolist() != rows:  # same layout rules on both sides
                    raise RuntimeError("the decode worker laid the batch out differently from this process")
                with lane.active():
                    cupy.cuda.runtime.memcpyAsync(slot.batch.data_ptr, worker.slots[k].ptr, slot.batch.used_bytes, 3,
                                                  lane.stream.ptr)
                copied[k] = lane.record()
                self.out.put(Decoded(kept, slot, copied[k]))
        finally:
            if waiting:  # stopped while the worker was decoding: it is reusable once it answered
                try:
                    worker.answer("decoded", seq)
                except Exception:
                    worker.healthy = False
            workers.give_back(worker)
        if local is not None:
            self.pool.give_back("decode", local)
        pass_end(self.src, self._countdown, self.out)

    def release(self, slot: Slot, event: Any) -> None:
        """``slot`` may be decoded into again once ``event`` completed."""
        slot.released = event
        self.free.put(slot)
