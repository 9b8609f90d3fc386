"""What a run did: per-item failures, the Summary, the JSON report, and the run's shared
state (stop flag, result queue, stage timers, first fatal error).

Example:
    >>> s = Summary(processed=3, seconds=1.5)
    >>> s.images_per_second
    2.0
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .files import Job, atomic_write
from .stages import StageTimer

__all__ = ["Failure", "Summary", "Run", "reason", "account", "write_report", "REPORT_NAME"]

REPORT_NAME = "gpuimg-report.json"


@dataclass
class Failure:
    """One input that produced no output: its path, the stage and the reason.

    Example:
        >>> Failure("a.jpg", "decode", "truncated").stage
        'decode'
    """

    path: str
    stage: str
    reason: str


@dataclass
class Summary:
    """What a run did. ``stage_seconds``: busy time of each stage (threads summed), which
    shows the bottleneck; ``images_per_second`` counts processed images over wall time.

    Example:
        >>> print(Summary(processed=2, seconds=1.0))
        processed 2, skipped 0, failed 0 in 1.00 s (2.0 images/s); read 0.0 MB, wrote 0.0 MB
    """

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
        """The summary as plain data (what the report holds).

        Example:
            >>> Summary(processed=1, seconds=2.0).as_dict()["images_per_second"]
            0.5
        """
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


# How the codec names a source it was handed as bytes (gpuimg.codec.sources): the pipeline
# reads the files itself and decodes their bytes, so its messages name the file instead.
_BYTES_LABEL = re.compile(r"<(?:bytes|bytearray|memoryview|array) of \d+ bytes>")


def reason(error: Any, path: str | os.PathLike | None = None) -> str:
    """The text a failure is reported with (an exception's type and message), with the
    codec's ``<bytes of N bytes>`` replaced by ``path`` where one is given.

    Example:
        >>> reason(ValueError("bad")), reason(FileNotFoundError(2, "No such file"))
        ('ValueError: bad', '[Errno 2] No such file')
        >>> reason(ValueError("cannot decode <bytes of 4 bytes>: junk"), "in/a.jpg")
        'ValueError: cannot decode in/a.jpg: junk'
    """
    if isinstance(error, BaseException):
        text = str(error) or type(error).__name__
        text = f"{type(error).__name__}: {text}" if not isinstance(error, OSError) else text
    else:
        text = str(error)
    if path is not None:
        text = _BYTES_LABEL.sub(lambda _: os.fspath(path), text)
    return text


class Run:
    """The shared state of one run: stop flag, result queue, timers, first fatal error.

    Example:
        >>> run = Run()
        >>> run.results.put(("end",)); run.next_event()
        ('end',)
    """

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

    def fail(self, job: Job, stage: str, error: Any) -> None:
        self.results.put(("fail", job, stage, reason(error, job.src)))

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


def failure_of(event: tuple[Any, ...]) -> Failure:
    """The Failure a ("fail", job, stage, reason) event stands for."""
    return Failure(str(event[1].src), event[2], event[3])


def account(summary: Summary, event: tuple[Any, ...]) -> None:
    """Count a ("done", job, bytes in, bytes out) or ("fail", ...) event in ``summary``.

    Example:
        >>> s = Summary(); account(s, ("done", None, 10, 4)); (s.processed, s.bytes_out)
        (1, 4)
    """
    if event[0] == "done":
        summary.processed += 1
        summary.bytes_in += event[2]
        summary.bytes_out += event[3]
    elif event[0] == "fail":
        summary.failed += 1
        summary.failures.append(failure_of(event))


def write_report(summary: Summary, steps: list[list[Any]]) -> None:
    """Write the JSON report (summary, steps, failures) to ``summary.report_path``.

    Example:
        >>> import tempfile, pathlib, json
        >>> s = Summary(report_path=str(pathlib.Path(tempfile.mkdtemp()) / "r.json"))
        >>> write_report(s, [["invert", {}]])
        >>> json.loads(pathlib.Path(s.report_path).read_text())["steps"]
        [['invert', {}]]
    """
    if summary.report_path is None:
        return
    report = {"summary": summary.as_dict(), "steps": steps}
    report["summary"].pop("failures")
    report["failures"] = [asdict(f) for f in summary.failures]
    # ensure_ascii (the default) on purpose: a file name that is not valid UTF-8 (held as
    # surrogate escapes) is written as \udcXX escapes instead of failing the report.
    atomic_write(Path(summary.report_path), json.dumps(report, indent=1).encode())
