"""RunOptions: everything one run of a pipeline is asked to do, as one frozen, validated,
picklable object.

:meth:`Pipeline.run <gpuimg.pipeline.Pipeline.run>`, :meth:`~gpuimg.pipeline.Pipeline.process_jobs`,
the ``gpuimg process`` command, the shard processes of a run and :mod:`gpuimg.ray` all build
one and pass it on whole, so an option is spelled, checked and defaulted in one place. The
output format is resolved once (:attr:`RunOptions.output`); a bad value raises before
anything runs, naming the option.

Example:
    >>> opts = RunOptions(format="JPG", quality=85)
    >>> opts.format, opts.output.suffix, opts.quality
    ('jpeg', '.jpg', 85)
    >>> RunOptions(quality=0)
    Traceback (most recent call last):
    ...
    gpuimg.errors.ArgumentError: quality must be an int >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ..codec import formats
from ..errors import ArgumentError, ArgumentTypeError, check_choice, check_int
from ..meta import KEEP
from .files import NameTemplate, output_format
from .steps import OutputRule

__all__ = ["RunOptions", "DEFAULT_MAX_BATCH_BYTES"]

DEFAULT_MAX_BATCH_BYTES = 512 * 2**20  # ~80 decoded 1080p RGB images


@dataclass(frozen=True)
class RunOptions:
    """What a run does (see :meth:`Pipeline.run <gpuimg.pipeline.Pipeline.run>` for each
    option's meaning); frozen and picklable, so it crosses into shard processes and Ray
    actors as it is.

    ``format``: the output format (any alias or case; held by its canonical name, the
    resolved :class:`~gpuimg.codec.formats.Format` is :attr:`output`). ``include`` /
    ``exclude``: globs (held as tuples). ``report``: the JSON report's path (None:
    ``output_dir/gpuimg-report.json``). ``workers``: worker processes (None: chosen from
    the data). ``shards``: how many processes share the run (None: chosen from the job
    and the machine, see :meth:`PipelineConfig.shard_count
    <gpuimg.pipeline.PipelineConfig.shard_count>`; 1: this process only).
    ``readers``/``writers``: two readers and one writer by default: on a warm page cache
    more threads only compete with the codec threads for the interpreter, and more
    writers wait on the directory lock; raise ``readers`` for storage with latency.

    Raises:
        ArgumentError: a field's value is not allowed; the message names the field, the
            value and what is allowed (``quality`` an int in [1, 100]; ``batch_size``,
            ``max_batch_bytes``, ``readers``, ``writers`` ints >= 1; ``shards`` None or an
            int >= 1; ``format``, ``mode``, ``keep_metadata`` one of their choices;
            ``background`` three ints 0..255; ``include``/``exclude`` globs). A
            ``ValueError``.
        NameTemplateError: ``name`` is not a template that names files (an
            ArgumentError).

    Example:
        >>> RunOptions(include=["*.png"], background=[0, 0, 0]).include
        ('*.png',)
        >>> RunOptions().replace(resume=True).resume
        True
        >>> RunOptions(keep_metadata="some")
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: keep_metadata='some' is not a metadata choice; use one of ('all', 'icc', 'no-gps', 'none')
    """

    format: str = "jpeg"
    quality: int = 90
    batch_size: int = 64
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    name: str | None = None
    resume: bool = False
    readers: int = 2
    writers: int = 1
    report: str | None = None
    workers: bool | None = None
    shards: int | None = None
    mode: str = "keep"
    background: tuple[int, int, int] = (255, 255, 255)
    keep_metadata: str = "all"
    output: formats.Format = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fmt = output_format(self.format)  # ArgumentError naming the choices
        set_ = object.__setattr__
        set_(self, "output", fmt)
        set_(self, "format", fmt.name)
        for name in ("quality", "batch_size", "max_batch_bytes", "readers", "writers"):
            check_int(getattr(self, name), name, low=1)
        check_int(self.quality, "quality", 1, 100)
        check_int(self.shards, "shards", low=1, optional=True)
        if not isinstance(self.resume, bool):
            raise ArgumentError(f"resume must be True or False, got {self.resume!r}")
        if self.workers is not None and not isinstance(self.workers, bool):
            raise ArgumentError(f"workers must be True, False or None, got {self.workers!r}")
        set_(self, "include", _globs("include", self.include) if self.include is not None else None)
        set_(self, "exclude", _globs("exclude", self.exclude))
        if self.report is not None:
            set_(self, "report", os.fspath(self.report))
        if self.name is not None:
            NameTemplate(self.name)  # a bad template raises NameTemplateError (a ValueError) naming it
        set_(self, "background", tuple(self.background) if not isinstance(self.background, str) else self.background)
        OutputRule(fmt, self.mode, self.background)  # ArgumentError: a mode the format cannot store, a bad background
        check_choice(self.keep_metadata, "keep_metadata", KEEP, "a metadata choice")

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` (checked like a new one).

        Example:
            >>> RunOptions().replace(format="png").output.suffix
            '.png'
        """
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, options: RunOptions | None = None, **changes: Any) -> RunOptions:
        """``options`` (default: the defaults) with ``changes``: how ``Pipeline.run``'s
        keyword arguments become one object.

        Example:
            >>> RunOptions.of(None, quality=80).quality, RunOptions.of(RunOptions(quality=70)).quality
            (80, 70)
        """
        if options is not None and not isinstance(options, RunOptions):
            raise ArgumentTypeError(f"options must be a RunOptions, got {type(options).__name__}")
        base = options if options is not None else cls()
        return dataclasses.replace(base, **changes) if changes else base


def _globs(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    try:
        globs = tuple(value)
    except TypeError:
        raise ArgumentError(f"{name} must be a glob or a list of globs, got {value!r}") from None
    if not all(isinstance(g, str) for g in globs):
        raise ArgumentError(f"{name} must hold glob strings, got {value!r}")
    return globs
