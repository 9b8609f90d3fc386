"""Dataset pipeline: folders of files -> decode -> ops -> encode -> files (or tensors).

``Pipeline(steps)`` holds the op calls; ``run`` processes a dataset with overlapping
stages, and ``batches`` feeds a training loop:

    reader threads      read file bytes and parse headers, once (prefetching ahead)
    batcher             groups files by count AND decoded size (``max_batch_bytes``)
    decode thread       its own CUDA stream and Decoder (config.decode_backends); decodes
                        batch N+1 into a ring of reused ImageBatch arenas while batch N
                        is processed
    process thread      runs the steps batch-wise (one launch per op per batch) into
                        reused step outputs, on its own stream
    encode thread       its own stream and Encoder (reused CodeStreams); its calls and the
                        decoder's take turns (they slow each other down when they overlap)
    writer threads      write each output atomically (temporary name, then rename)

The Decoder and Encoder live on the Pipeline and are reused by its later runs (a new
decoder's first batches are slow: see :class:`~gpuimg.pipeline.codecs.CodecPool`). How it
runs (lanes, ring, worker processes, codec settings) is a :class:`PipelineConfig`.

Memory bound: a batch holds at most ``batch_size`` images and at most ``max_batch_bytes``
bytes of decoded pixels (height x width x 3; an image larger than that alone forms a batch
of one). The run holds ``decode_lanes x decode_ring`` decoded batches and ``1 +
encode_lanes`` sets of step outputs, so device memory stays under about ``(2 + 2 x
steps) x max_batch_bytes`` for steps that do not enlarge images (lower ``max_batch_bytes``
on a small GPU). Buffers grow to the largest batch seen and are then reused: the steady
state allocates nothing (see :func:`gpuimg.memory_stats`). A GPU out-of-memory error
splits the batch in halves (down to single images) instead of ending the run.

Example:
    >>> import gpuimg, tempfile
    >>> p = gpuimg.Pipeline([("resize_shorter", {"size": 64})], device="cpu")
    >>> summary = p.run("assets/", tempfile.mkdtemp(), include=["coffee.jpg", "chelsea.jpg"], format="jpeg", quality=90)
    >>> summary.processed, summary.failed
    (2, 0)
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, ArgumentTypeError
from ..device import resolve_device
from . import workers as worker_pool
from .codecs import CodecPool
from .config import PipelineConfig
from .files import Job, check_run_files, is_done, mean_file_bytes, output_format, plan_jobs, remove_stale_temps
from .files import cpu_codec_files as count_cpu_codec_files
from .options import DEFAULT_MAX_BATCH_BYTES, RunOptions
from .process import start
from .results import REPORT_NAME, Failure, Run, Summary, account, write_report
from .shards import run_shards, shardable
from .sinks import FileSink, JoiningSink, WorkerSink
from .steps import Step, StepSpec, check_steps, fixed_output_size
from .tensors import TensorIterator

__all__ = ["Pipeline", "RunOptions", "DEFAULT_MAX_BATCH_BYTES", "prepare_run", "progress_callback"]


class Pipeline:
    """A sequence of op calls applied batch-wise to datasets.

    ``steps``: callables taking and returning an ImageBatch (``out=``/``stream=`` are
    passed when they accept them), or ``(name, kwargs)`` pairs naming a registered op of
    :mod:`gpuimg.ops` (see :func:`~gpuimg.pipeline.available_ops`), so a pipeline can come
    from a JSON file (:func:`~gpuimg.pipeline.load_steps`). An image parameter of an op
    (the overlay of ``blend``/``paste``) may be a file path: it is decoded once, here.
    ``config``: how it runs (:class:`PipelineConfig`; default: ``PipelineConfig()``).
    ``device``: "cpu", "cuda" or None for the default.

    Example:
        >>> p = Pipeline([("invert", {})], config=PipelineConfig(decode_lanes=1), device="cpu")
        >>> p.steps
        [['invert', {}]]
    """

    def __init__(self, steps: Iterable[StepSpec] = (), config: PipelineConfig | None = None, device: str | None = None):
        self.device = resolve_device(device)
        self.config = config if config is not None else PipelineConfig()
        if not isinstance(self.config, PipelineConfig):
            raise ArgumentTypeError(f"config must be a PipelineConfig, got {type(self.config).__name__}")
        self._specs = list(steps)  # as given: what a shard process rebuilds its steps from
        self._steps = [Step(s, self.device) for s in self._specs]
        # Argument errors that would fail every image: now, on the CPU twins of the steps.
        # The ops check their arguments alike on every device, and a CPU probe costs no
        # CUDA context here: this process may only plan and hand the run to shard processes,
        # and an in-process run makes its context in the decoder's warm-up, overlapped.
        check_steps(self._steps if self.device == "cpu" else [Step(s, "cpu") for s in self._specs if not callable(s)],
                    "cpu")
        self._codecs = CodecPool(self.device, self.config)  # kept between runs: see CodecPool

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
        name: str | None = None,
    ) -> list[Job]:
        """The jobs a run would do: each input and its output path (None: refused).
        ``name``: an output name template (:class:`~gpuimg.pipeline.files.NameTemplate`).

        Example:
            >>> Pipeline([], device="cpu").plan([], "out")
            []
        """
        return plan_jobs(inputs, output_dir, output_format(format).suffix, include, exclude, name=name)

    def prewarm(self) -> None:
        """Start making the decoder and paying its first decode in the background (on a
        GPU: nvImageCodec's import, a CUDA context, its codecs' first allocations), so
        that the first run's planning and first reads overlap it. Every run calls it; the
        command and the shard processes call it as early as they can. Idempotent.

        Example:
            >>> Pipeline([], device="cpu").prewarm()
        """
        self._codecs.prewarm()

    def shard_count(self, jobs: Sequence[Job], options: RunOptions | None = None) -> int:
        """How many processes a run of ``jobs`` is split over (:mod:`~gpuimg.pipeline.shards`):
        ``options.shards`` where given, else chosen from the job and the machine
        (:meth:`PipelineConfig.shard_count`); 1 (this process) for steps that cannot be
        rebuilt in another process (Python callables).

        Example:
            >>> Pipeline([("invert", {})], device="cpu").shard_count([])
            1
        """
        asked = options.shards if options is not None else None
        if asked == 1 or not jobs or not shardable(self._specs):
            return 1
        if asked is not None:
            return min(asked, len(jobs))
        return self.config.shard_count(len(jobs), int(mean_file_bytes(jobs) * len(jobs)), device=self.device)

    def run(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike],
        output_dir: str | os.PathLike,
        options: RunOptions | None = None,
        *,
        progress: bool | Callable[[int, int], None] | None = None,
        planned: Sequence[Job] | None = None,
        **changes: Any,
    ) -> Summary:
        """Process every input into ``output_dir``; returns a :class:`Summary`.

        ``options``: a :class:`~gpuimg.pipeline.RunOptions` (default: its defaults); any
        of its fields may instead (or as well) be given as keywords: ``format`` ("jpeg"),
        ``quality`` (90), ``batch_size`` (64), ``max_batch_bytes``, ``include``,
        ``exclude``, ``name``, ``resume``, ``readers``, ``writers``, ``report``,
        ``workers``, ``shards``, ``mode``, ``background``, ``keep_metadata``. A bad value
        raises ArgumentError naming it before anything runs.

        ``mode``: what each output image is (:class:`~gpuimg.pipeline.steps.OutputRule`):
        "keep" (default: channels and bit depth kept where ``format`` stores them; alpha
        composited onto ``background`` and 16-bit rounded to 8-bit where it does not),
        or "rgb", "rgba", "gray" for every image. ArgumentError for a mode ``format`` cannot
        store.

        ``keep_metadata``: what each output keeps of its input's EXIF, XMP and ICC
        profile where ``format`` stores them: "all" (default; the EXIF says Orientation 1
        as the pixels were turned upright, its thumbnail is dropped), "icc" (the colour
        profile only: no EXIF, GPS or XMP), "no-gps", "none".

        How it uses the machine is chosen from the job (:meth:`shard_count`): a run of
        many files is split into shard processes, each a whole pipeline on its slice of
        the inputs, sharing the GPU and the cores (:mod:`~gpuimg.pipeline.shards`;
        ``shards=1`` keeps it in this process); a short run works here, where it ends
        before other processes would have started.

        Failures are per item (listed in the summary and in the JSON report, by default
        ``output_dir/gpuimg-report.json``); the run goes on. ``resume=True`` skips inputs
        whose output exists and is at least as new. ``progress=True`` draws a tqdm bar
        (``tqdm.auto``: a widget in a notebook, text in a terminal); a callable
        ``progress(done, total)`` is called from the calling thread after each finished
        item instead; False/None: nothing. On the CPU a batch holds at most
        ``config.cpu_batch_size`` images whatever ``batch_size`` says. ``readers``/``writers``: threads
        reading inputs and writing outputs (raise ``readers`` for slow or remote storage).
        ``workers`` (GPU, in-process runs): encode and write in a worker process, and decode part of the
        batches in another, so the codecs overlap (True: wait for them to start; None:
        chosen from the inputs' count and sizes, see :meth:`PipelineConfig.worker_plan`:
        a long run starts them and they join it once started; False: everything in this
        process).
        ``planned``: the jobs :meth:`plan` made of the same inputs and options, where the
        caller has them already (the folder is then not listed again).
        Ctrl-C stops the run cleanly (every shard too):
        finished outputs are kept, no partial file is left, and the summary says
        ``interrupted``.

        Output names follow one rule (:func:`~gpuimg.pipeline.files.plan_jobs`): the input's
        relative path with its extension replaced by the format's suffix (or ``name``, a
        template); inputs that would share an output, or overwrite an input, are per-item
        failures decided before any write, for the whole run. ArgumentError (nothing written)
        when ``report`` is an input or output file of
        the run. Temporary files that killed runs left in the output folders are removed.

        Raises:
            ArgumentError: an option's value is not allowed (``quality=0``, an unknown
                ``format``, a ``mode`` the format cannot store; :class:`RunOptions`), or
                ``output_dir`` / ``report`` would overwrite the run's inputs; raised
                before anything is read or written. A ``ValueError``.
            NameTemplateError: ``name`` is not a template that names files (an
                ArgumentError).
            ArgumentTypeError: ``options`` is not a RunOptions, or ``progress`` is not a
                bool, None or a callable. A ``TypeError``.

            A file that cannot be read, decoded, processed or written does not raise: it
            is a failure in the returned Summary.

        Example:
            >>> s = Pipeline([], device="cpu").run([], "/tmp/gpuimg-doc-out")
            >>> s.processed, s.failed
            (0, 0)
        """
        opts = RunOptions.of(options, **changes)
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise ArgumentTypeError(f"progress must be True, False, None or a callable(done, total), got {progress!r}")
        summary = Summary()
        started = time.perf_counter()
        report_path = Path(opts.report) if opts.report is not None else Path(output_dir) / REPORT_NAME
        if planned is None:
            jobs = self.plan(inputs, output_dir, format=opts.format, include=opts.include, exclude=opts.exclude,
                             name=opts.name)
        else:  # planned already by the caller (the command lists a folder once)
            jobs = list(planned)
        todo = prepare_run(jobs, output_dir, report_path, opts.resume, summary)  # ArgumentError: nothing written
        shards = self.shard_count(todo, opts)
        try:
            if shards > 1:
                with progress_callback(progress, len(todo)) as report_progress:
                    run_shards(self._specs, self.config, self.device, todo, opts, summary, shards, report_progress,
                               count_cpu_codec_files(todo, self.device))
            else:
                self._run_jobs(todo, opts, summary, progress=progress)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            summary.seconds = time.perf_counter() - started
            summary.report_path = str(report_path)
            write_report(summary, self.steps)
        return summary

    def process_jobs(self, jobs: Sequence[Job], options: RunOptions | None = None, **changes: Any) -> Summary:
        """The work of :meth:`run` on jobs planned already (each input's output path:
        :meth:`plan`; a job may carry its input's bytes, ``Job.data``): decode, steps,
        encode, atomic writes, per-item failures in the returned Summary. No planning,
        resume, shards or report: for callers that do those themselves over many calls
        (:mod:`gpuimg.ray`'s actors). ``options`` / keywords as :meth:`run`'s; ``workers``
        defaults to False here (everything in this process).

        Example:
            >>> import tempfile
            >>> p = Pipeline([("invert", {})], device="cpu")
            >>> jobs = p.plan(["assets/coffee.jpg", "assets/nothing.jpg"], tempfile.mkdtemp())
            >>> s = p.process_jobs(jobs)
            >>> s.processed, [f.stage for f in s.failures]
            (1, ['read'])
        """
        if options is None:
            changes.setdefault("workers", False)
        opts = RunOptions.of(options, **changes)
        summary = Summary()
        self._run_jobs(list(jobs), opts, summary)
        return summary

    def _run_jobs(self, todo: Iterable[Job], options: RunOptions, summary: Summary, *, progress: Any = None,
                  on_event: Callable[[tuple[Any, ...]], None] | None = None, cpu_codec_files: int | None = None) -> None:
        """``todo`` through the stages in this process into ``summary`` (wall and stage
        times included); ``todo`` may be a list or an iterable the readers pull from (a
        shard's feed; then ``cpu_codec_files`` says how many of its files the CPU codecs
        will decode). ``on_event`` sees each item's result as it is counted (the shards
        report them so). KeyboardInterrupt goes on to the caller."""
        if cpu_codec_files is None:
            todo = list(todo)
            cpu_codec_files = count_cpu_codec_files(todo, self.device)
        self._codecs.prewarm(cpu_codec_files)  # overlaps the first reads
        started = time.perf_counter()
        run = Run()
        try:
            self._process(run, todo, summary, options, progress, on_event)
        finally:
            _finish(summary, run, started)

    def _process(self, run: Run, todo: list[Job], summary: Summary, options: RunOptions, progress: Any,
                 on_event: Callable[[tuple[Any, ...]], None] | None = None) -> None:
        """The jobs through the stages into ``summary``."""
        batch_size = options.batch_size
        if self.device == "cpu":
            batch_size = min(batch_size, self.config.cpu_batch_size)
        # Ctrl-C while waiting for the encode worker to start is a stop too (the caller's try)
        plan = self._worker_plan(todo, options.workers)
        sink = self._sink(run, options, plan)
        total = len(todo) if isinstance(todo, Sized) else 0  # a shard's feed has no length (and no progress)
        with progress_callback(progress, total) as report_progress:
            self._execute(run, todo, sink, batch_size, options.max_batch_bytes, options.readers, summary,
                          report_progress, plan, on_event, total)

    def _worker_plan(self, jobs: list[Job], workers: bool | None) -> str:
        """How a run of ``jobs`` uses the worker processes, decided once for all roles
        (``workers``: the run's argument; see :meth:`PipelineConfig.worker_plan`)."""
        if workers is False or not self.config.worker_roles(self.device):
            return "off"
        return self.config.worker_plan(len(jobs), mean_file_bytes(jobs), workers)

    def _worker(self, role: str, plan: str) -> Any:
        """A ``role`` worker process for a run with worker ``plan``: a Worker, a
        :class:`~gpuimg.pipeline.workers.Joining` (plan "join" and none is ready yet: it
        joins the run once started), or None."""
        if plan == "off" or role not in self.config.worker_roles(self.device):
            return None
        if plan == "join":
            joining = worker_pool.Joining(role, _device_id(), self.config)
            return joining.ready() or joining
        return worker_pool.take(role, _device_id(), self.config, wait=plan == "wait", start=self.config.prestart_workers)

    def _sink(self, run: Run, options: RunOptions, plan: str) -> Any:
        """Encode + write in the encode worker process where one can run (GPU) and is ready
        or worth waiting for (see ``run``), else in this process."""
        worker = self._worker("encode", plan)
        fmt, quality = options.output, options.quality
        rule = dict(mode=options.mode, background=options.background, keep=options.keep_metadata)

        def remote(worker: Any) -> WorkerSink:
            return WorkerSink(run, worker, fmt, quality, **rule)

        if isinstance(worker, worker_pool.Worker):
            return remote(worker)
        local = FileSink(run, self._codecs, fmt, quality, options.writers, **rule)
        return local if worker is None else JoiningSink(local, worker, remote)

    def _execute(self, run: Run, jobs: list[Job], sink: Any, batch_size: int, max_bytes: int, readers: int,
                 summary: Summary, progress: Callable[[int, int], None] | None, plan: str,
                 on_event: Callable[[tuple[Any, ...]], None] | None = None, total: int = 0) -> None:
        threads = self._start(run, jobs, sink, batch_size, max_bytes, readers, plan)
        done = 0
        try:
            while True:
                event = run.next_event()
                if event is None or event[0] == "end":
                    break
                done += 1
                account(summary, event)
                if on_event is not None:
                    on_event(event)
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
                    account(summary, event)
                    if on_event is not None:
                        with contextlib.suppress(KeyboardInterrupt):
                            on_event(event)
        if run.fatal is not None:
            raise run.fatal

    def _start(self, run: Run, jobs: list[Job], sink: Any, batch_size: int, max_bytes: int, readers: int,
               plan: str = "off") -> list[threading.Thread]:
        return start(run, jobs, sink, self._codecs, self._steps, batch_size, max_bytes, readers,
                     self._worker("decode", plan))

    # ----------------------------------------------------------------- ML exit
    def batches(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike],
        batch_size: int = 64,
        *,
        size: tuple[int, int] | None = None,
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

        ``size`` (height, width): after the steps, images not of that size are resized to
        it, so every tensor row has one shape. None (default): the steps' own output size
        where it is fixed (steps ending in a crop to 512x512 give 512x512 tensors);
        ArgumentError where it depends on the input (no steps, ``resize_shorter`` alone):
        give ``size`` then. Decoding and processing of the next batches run ahead
        (``prefetch`` batches) while the caller trains. A yielded tensor is ordered on the
        caller's current CUDA stream (no host sync) and stays valid until the next batch is
        taken (work the caller queued on its current stream before then is waited for):
        copy it to keep it longer. Files that fail are skipped; ``iterator.failures`` lists
        them. ``torch.from_dlpack(tensor)`` shares the memory. Fixed batch sizes: batches
        are formed by count (the last one may be shorter), not by ``max_batch_bytes``. With more than
        one decode lane (``config.decode_lanes``, or the decode worker: ``workers`` as in :meth:`run`)
        batches may come in a different order; ``workers=False`` keeps the file order.

        Example:
            >>> p = Pipeline([("resize_shorter", {"size": 64}), ("center_crop", {"size": (56, 56)})], device="cpu")
            >>> for x, paths in p.batches("assets/", 2, mean=(0.485, 0.456, 0.406), include=["coffee.*"]):
            ...     print(x.shape, x.dtype)  # in training: model(torch.from_dlpack(x))
            (2, 3, 56, 56) float32
        """
        RunOptions(batch_size=batch_size, readers=readers)  # ArgumentError naming a bad one
        if size is None:
            size = fixed_output_size(self._steps, self.device)
            if size is None:
                raise ArgumentError("batches() needs size=(height, width): the steps' output size depends on the input "
                                    f"(steps: {self.steps}); end them in a crop or resize to a fixed size, or give size")
        self._codecs.prewarm()
        jobs = plan_jobs(inputs, None, "", include, exclude)  # no outputs: tensors only
        return self.tensors_of_jobs(jobs, batch_size, size=size, mean=mean, std=std, readers=readers,
                                    prefetch=prefetch, workers=workers)

    def tensors_of_jobs(
        self,
        jobs: Sequence[Job],
        batch_size: int = 64,
        *,
        size: tuple[int, int],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        readers: int = 2,
        prefetch: int = 2,
        workers: bool | None = False,
    ) -> TensorIterator:
        """:meth:`batches` of jobs planned already (a job may carry its input's bytes,
        ``Job.data``), at ``size``; for callers that plan themselves (:mod:`gpuimg.ray`).

        Example:
            >>> from gpuimg.pipeline.files import plan_jobs
            >>> it = Pipeline([], device="cpu").tensors_of_jobs(plan_jobs(["assets/coffee.jpg"], None, ""), size=(8, 8))
            >>> [x.shape for x, _ in it]
            [(1, 3, 8, 8)]
        """
        jobs = list(jobs)

        def start_stages(run: Run, sink: Any) -> list[threading.Thread]:
            # Fixed batch sizes for training: batches are formed by count only.
            return self._start(run, jobs, sink, batch_size, 2**62, readers, self._worker_plan(jobs, workers))

        return TensorIterator(start_stages, self.device, batch_size, size, mean, std, prefetch)


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def progress_callback(progress: Any, total: int) -> Iterator[Callable[[int, int], None] | None]:
    """``run``'s ``progress`` as a callback: True draws a ``tqdm.auto`` bar (closed on
    exit, also on Ctrl-C), a callable is used as it is, False/None gives None.

    Example:
        >>> with progress_callback(None, 3) as cb:
        ...     cb is None
        True
    """
    if progress is None or progress is False:
        yield None
    elif progress is True:
        from tqdm.auto import tqdm

        with tqdm(total=total, unit="img") as bar:
            yield lambda done, _total: bar.update(done - bar.n)
    else:  # a callable (``run`` checked it)
        yield progress


def prepare_run(jobs: list[Job], output_dir: str | os.PathLike, report_path: str | os.PathLike, resume: bool,
                summary: Summary) -> list[Job]:
    """What a run of planned ``jobs`` does before any item: refuse a report path that is an
    input or output (ArgumentError), remove stale temporary files of killed runs, count the
    refused jobs as failures and (``resume``) the done ones as skipped in ``summary``;
    returns the jobs to do. One copy for :meth:`Pipeline.run` and :mod:`gpuimg.ray`.

    Example:
        >>> import tempfile
        >>> s = Summary()
        >>> prepare_run([Job(0, Path("a.jpg"), None, refused="why")], tempfile.mkdtemp(), "r.json", False, s)
        []
        >>> s.failed, s.failures[0].reason
        (1, 'why')
    """
    check_run_files(jobs, report_path)  # before anything is written
    out_dirs = {os.path.dirname(j.dst) for j in jobs if j.dst is not None}
    remove_stale_temps(out_dirs | {os.fspath(output_dir), os.path.dirname(os.path.abspath(report_path))},
                       keep=[j.src for j in jobs])
    todo = []
    for job in jobs:
        if job.dst is None:
            summary.failures.append(Failure(str(job.src), "plan", job.refused or "no output path"))
            summary.failed += 1
        elif resume and is_done(job):
            summary.skipped += 1
        else:
            todo.append(job)
    return todo


def _finish(summary: Summary, run: Run, started: float) -> None:
    """The run's wall time and stage times into ``summary``."""
    summary.seconds = time.perf_counter() - started
    summary.stage_seconds = {k: round(v, 4) for k, v in run.timer.seconds.items()}


def _device_id() -> int:
    import cupy

    return int(cupy.cuda.Device().id)
