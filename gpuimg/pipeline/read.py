"""The read stage: reader threads read each file and parse its header once; a batcher
groups the items by count and decoded size.

Example:
    >>> from gpuimg.pipeline.files import plan_jobs
    >>> item = read_item(plan_jobs(["assets/coffee.jpg"], None, "")[0])
    >>> item.shape
    (400, 600, 3)
"""

from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from ..codec import ParsedSource, parse
from ..codec.decoder import unchanged_layout
from .files import Job
from .results import Run
from .stages import DONE, StageQueue, Stopped, batches_by_size

__all__ = ["Item", "ItemError", "read_item", "Batcher"]


@dataclass
class Item:
    """One input on its way through the stages.

    ``shape``: decoded (height, width, 3), the decoder's size hint. ``nbytes``: the most
    its decode can take (the stored channels and bit depth: an RGBA 16-bit PNG kept as it
    is takes 8 bytes a pixel), for the batch byte bound. ``source``: the parsed ``data``
    the decode lane decodes.
    """

    job: Job
    data: bytes = b""
    shape: tuple[int, int, int] = (0, 0, 0)
    source: ParsedSource | None = None
    nbytes: int = 0

    def decoded_metadata(self) -> Any:
        """The file's metadata (:class:`~gpuimg.codec.metadata.Metadata`, read on first
        use) as its decoded pixels stand: marked as turned upright where the decode applied
        an EXIF orientation (an output then says Orientation 1); None without a source.

        Example:
            >>> Item(None).decoded_metadata() is None
            True
        """
        if self.source is None:
            return None
        meta = self.source.metadata
        return replace(meta, orientation_applied=True) if self.source.orientation != 1 and not meta.empty else meta


class ItemError(Exception):
    """A per-item failure in a reader thread, with the stage it belongs to."""

    def __init__(self, stage: str, error: BaseException):
        super().__init__(str(error))
        self.stage, self.error = stage, error


def read_item(job: Job, check_scans: bool = True) -> Item:
    """Reader-thread work: the file's bytes, parsed once (:func:`gpuimg.codec.parse`) for
    both the decoded shape and the decode itself; ItemError (with its stage) otherwise.
    ``check_scans=False`` (a GPU run) leaves the JPEG scan check to the batched check the
    GPU decode runs on the device."""
    try:
        data = job.data if job.data is not None else job.src.read_bytes()
    except OSError as exc:
        raise ItemError("read", exc) from None
    if not data:
        raise ItemError("read", ValueError("empty file (0 bytes)"))
    try:  # header parsed once, structure (and, unless left to the GPU, JPEG scans) checked
        source = parse(data, check_scans=check_scans)
    except Exception as exc:  # not an image, unsupported format, bad header, truncated JPEG
        raise ItemError("decode", exc) from None
    info = source.info
    channels, dtype = unchanged_layout(info)
    nbytes = info.height * info.width * max(channels, 3) * (2 if dtype == "uint16" else 1)
    return Item(job, data, (info.height, info.width, 3), source, nbytes)


class Batcher:
    """Reads files ahead with a thread pool and emits batches bounded in count and bytes."""

    def __init__(self, run: Run, jobs: list[Job], out: StageQueue, readers: int, batch_size: int, max_bytes: int,
                 check_scans: bool = True):
        self.run, self.jobs, self.out = run, jobs, out
        self.check_scans = check_scans
        self.readers, self.batch_size, self.max_bytes = readers, batch_size, max_bytes

    def __call__(self) -> None:
        items = ((item, item.nbytes) for item in self._read_all())
        for batch in batches_by_size(items, self.batch_size, self.max_bytes):
            self.out.put(batch)
        self.out.put(DONE)

    def _read_all(self) -> Iterator[Item]:
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
                    except ItemError as exc:
                        self.run.fail(job, exc.stage, exc.error)
            finally:
                for _, fut in pending:
                    fut.cancel()

    def _timed_read(self, job: Job) -> Item:
        with self.run.timer("read"):
            return read_item(job, self.check_scans)


