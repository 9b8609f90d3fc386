"""The same Pipeline on Ray Data actors: every GPU of a machine or of a cluster.

Three ways in (``pip install "gpuimg[ray]"``; importing gpuimg never imports Ray):

* :class:`ProcessBatches`, a callable class for ``Dataset.map_batches``: a batch of rows
  (``path``, optionally ``bytes`` as ``ray.data.read_binary_files(..., include_paths=True)``
  gives them, optionally ``output``) in, one status row per input out (``path``,
  ``output``, ``ok``, ``stage``, ``reason``, ``bytes_in``, ``bytes_out``); the outputs are
  written by the actor, atomically. :class:`TensorBatches` gives normalised float32 CHW
  tensors instead (a ``tensor`` column), for training. A bad file is a row with a reason,
  never a failed task.
* :func:`run_on_ray`: the folder job of :meth:`gpuimg.Pipeline.run` fanned out over one
  actor per GPU (or per stated fraction of one), with its guarantees: one naming rule,
  atomic writes, resume, one merged report (``gpuimg-report.json``), a Summary, progress.
* ``gpuimg process SRC DST --ray [ADDRESS]`` (a local Ray without an address) and
  ``--gpus N`` (N actors on this machine).

Each actor holds one Pipeline (its decoder, encoder and buffers reused from batch to
batch) with gpuimg's own worker processes off: an actor is already a process of its own
on its GPU, and the worker processes would add two CUDA contexts per actor. Inputs are
local paths or folders, or URLs that fsspec reads (``s3://``, ``gs://``, ``file://``; the
actors read them, so an unreadable object is one failed row). Outputs go to
``output_dir``, which every actor must reach (a shared file system on a cluster).

Example:
    >>> plan_actors(cpus=2, gpus=0, device="cpu", actors=2)  # the 2-CPU machine: room left for Ray's own tasks
    ActorPlan(actors=2, num_gpus=0.0, num_cpus=0.5)
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import ArgumentError, RayNotInstalledError, check_int  # RayNotInstalledError: re-exported, its old home (in __all__)
from .pipeline.api import Pipeline, prepare_run, progress_callback
from .pipeline.options import RunOptions
from .pipeline.config import PipelineConfig
from .pipeline.files import Job, path_filter, plan_outputs
from .pipeline.results import REPORT_NAME, Failure, Summary, reason, write_report

__all__ = ["ProcessBatches", "TensorBatches", "run_on_ray", "plan_actors", "ActorPlan", "RayNotInstalledError"]

INSTALL_HINT = 'pip install "gpuimg[ray]"'


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or RayNotInstalledError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the part gpuimg uses
    except ImportError as exc:
        raise RayNotInstalledError(f"running on Ray needs Ray Data: {INSTALL_HINT} ({exc})") from None
    return ray


def _is_url(path: Any) -> bool:
    return isinstance(path, str) and "://" in path


def actor_config(config: PipelineConfig) -> PipelineConfig:
    """``config`` for a pipeline inside an actor: gpuimg's worker processes off (an actor
    is a process of its own; each worker would add a CUDA context per actor).

    Example:
        >>> c = actor_config(PipelineConfig())
        >>> c.encode_in_worker, c.decode_in_worker, c.prestart_workers
        (False, False, False)
    """
    return dataclasses.replace(config, encode_in_worker=False, decode_in_worker=False, prestart_workers=False)


class _PipelineActor:
    """What both actor classes hold: one Pipeline (workers off) on the actor's device."""

    def __init__(self, steps: Iterable[Any], config: PipelineConfig | None, device: str | None,
                 storage_options: dict[str, Any] | None):
        self.pipeline = Pipeline(steps, config=actor_config(config or PipelineConfig()), device=device)
        self.storage_options = storage_options or {}

    def _jobs(self, batch: dict[str, Any], outputs: Sequence[str | None]) -> tuple[list[Job], dict[int, str]]:
        """The batch's jobs (the bytes given, or read here from URLs; local paths are read by
        the pipeline's readers) and the read failures {row: reason}."""
        paths = [str(p) for p in batch["path"]]
        given = batch.get("bytes")
        data: list[bytes | None] = [bytes(b) for b in given] if given is not None else [None] * len(paths)
        failed: dict[int, str] = {}
        urls = [i for i, p in enumerate(paths) if data[i] is None and _is_url(p)]
        if urls:
            import fsspec

            fs, _ = fsspec.core.url_to_fs(paths[urls[0]], **self.storage_options)
            got = fs.cat([paths[i] for i in urls], on_error="return")
            for i in urls:
                value = got.get(fsspec.core.strip_protocol(paths[i]), got.get(paths[i]))
                if isinstance(value, bytes):
                    data[i] = value
                else:
                    failed[i] = reason(value if value is not None else FileNotFoundError(2, "not found", paths[i]))
        jobs = [Job(i, Path(p), Path(o) if o else None, data=d)
                for i, (p, o, d) in enumerate(zip(paths, outputs, data)) if i not in failed]
        return jobs, failed


class ProcessBatches(_PipelineActor):
    """A ``Dataset.map_batches`` class: decode, the steps and encode on the actor's device,
    each output written atomically; one status row per input.

    Input columns: ``path`` (local path or URL), optionally ``bytes`` (the file's bytes,
    as ``read_binary_files(..., include_paths=True)`` gives them; without it the actor reads
    ``path``) and ``output`` (the output path; without it the output is named by the
    pipeline's rule from ``input_root`` and ``output_dir``: ``sub/a.png`` under
    ``input_root`` -> ``output_dir/sub/a.jpg``). Output columns: ``path``, ``output``,
    ``ok``, ``stage`` and ``reason`` (empty where ok), ``bytes_in``, ``bytes_out``.
    The other arguments are :meth:`gpuimg.Pipeline.run`'s. Two inputs of one batch that
    would write one output both fail, as in a run; across batches only :func:`run_on_ray`
    (which plans the whole job first) can tell.

    Example:
        >>> import os, tempfile
        >>> fn = ProcessBatches([("resize_shorter", {"size": 32})], tempfile.mkdtemp(), input_root="assets", device="cpu")
        >>> rows = fn({"path": ["assets/coffee.jpg", "assets/missing.jpg"]})
        >>> rows["ok"].tolist(), rows["stage"].tolist()
        ([True, False], ['', 'read'])
        >>> out = tempfile.mkdtemp()  # rows as read_binary_files("s3://bucket/in", include_paths=True) gives them
        >>> fn = ProcessBatches([], out, input_root="s3://bucket/in", device="cpu")
        >>> rows = fn({"path": ["bucket/in/sub/coffee.jpg"], "bytes": [open("assets/coffee.jpg", "rb").read()]})
        >>> os.path.relpath(rows["output"][0], out), rows["ok"].tolist()
        ('sub/coffee.jpg', [True])

    On Ray: ``ds.map_batches(ProcessBatches, fn_constructor_kwargs=dict(steps=..., output_dir=...,
    input_root=...), compute=ray.data.ActorPoolStrategy(size=2), num_gpus=1)``.
    """

    def __init__(self, steps: Iterable[Any] = (), output_dir: str | os.PathLike | None = None, *,
                 input_root: str | os.PathLike | None = None, options: RunOptions | None = None,
                 config: PipelineConfig | None = None, device: str | None = None,
                 storage_options: dict[str, Any] | None = None, **changes: Any):
        # each call is a short run of its own: no shards inside an actor (Ray runs the actors)
        self.options = RunOptions.of(options, **changes).replace(workers=False, shards=1)
        super().__init__(steps, config, device, storage_options)
        self.output_dir, self.input_root = output_dir, input_root
        self.suffix = self.options.output.suffix

    def _outputs(self, batch: dict[str, Any]) -> tuple[list[str | None], list[str]]:
        """Each row's output path ('' where refused) and refusal reason ('' where none)."""
        if batch.get("output") is not None:
            return [str(o) for o in batch["output"]], [""] * len(batch["output"])
        if self.output_dir is None or self.input_root is None:
            raise ArgumentError("ProcessBatches needs an 'output' column, or output_dir= and input_root= (the folder "
                                "the paths are relative to) to name the outputs")
        root = str(self.input_root)
        # Ray's readers give an object store's paths without their protocol ("bucket/key")
        in_store = _is_url(root)
        paths = [_local_form(p if _is_url(p) or not in_store else "store://" + p) for p in map(str, batch["path"])]
        jobs = plan_outputs(paths, _local_form(root), self.output_dir, self.suffix)
        return [str(j.dst) if j.dst else "" for j in jobs], [j.refused or "" for j in jobs]

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        count = len(batch["path"])
        outputs, refused = self._outputs(batch)
        rows = _StatusRows([str(p) for p in batch["path"]], outputs)
        for i, why in enumerate(refused):
            if why:
                rows.fail(i, "plan", why)
        jobs, failed = self._jobs(batch, [o if not refused[i] else None for i, o in enumerate(outputs)])
        for i, why in failed.items():
            rows.fail(i, "read", why)
        jobs = [j for j in jobs if j.dst is not None]
        summary = self.pipeline.process_jobs(jobs, self.options)
        by_src = {str(j.src): j for j in jobs}
        for failure in summary.failures:
            rows.fail(by_src[failure.path].index, failure.stage, failure.reason)
        for job in jobs:
            if rows.ok[job.index]:
                rows.done(job.index, len(job.data) if job.data is not None else _size(job.src), _size(job.dst))
        assert len(rows.ok) == count
        return rows.columns()


class TensorBatches(_PipelineActor):
    """A ``Dataset.map_batches`` class for training: the steps, then each image resized to
    ``size`` (height, width) where needed and normalised by ``mean``/``std`` (0..1 scale)
    into float32 CHW, as :meth:`gpuimg.Pipeline.batches` gives them (on the host: Ray's
    blocks live there). Input columns as :class:`ProcessBatches`'s (``path``, optionally
    ``bytes``); output columns ``path``, ``ok``, ``reason`` and ``tensor`` (N, C, H, W),
    zeros where not ok.

    Example:
        >>> fn = TensorBatches([], size=(8, 8), device="cpu")
        >>> out = fn({"path": ["assets/coffee.jpg", "assets/missing.jpg"]})
        >>> out["tensor"].shape, out["tensor"].dtype, out["ok"].tolist()
        ((2, 3, 8, 8), dtype('float32'), [True, False])
    """

    def __init__(self, steps: Iterable[Any] = (), *, size: tuple[int, int], mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, batch_size: int = 64, config: PipelineConfig | None = None,
                 device: str | None = None, storage_options: dict[str, Any] | None = None):
        super().__init__(steps, config, device, storage_options)
        self.size, self.mean, self.std, self.batch_size = tuple(size), mean, std, batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        paths = [str(p) for p in batch["path"]]
        jobs, failed = self._jobs(batch, [None] * len(paths))
        reasons = dict(failed)
        tensors: dict[int, np.ndarray] = {}
        index = {str(j.src): j.index for j in jobs}
        with self.pipeline.tensors_of_jobs(jobs, self.batch_size, size=self.size, mean=self.mean, std=self.std) as it:
            for x, srcs in it:
                host = x.get() if hasattr(x, "get") else np.array(x)  # a copy: the ring slot is reused
                for k, src in enumerate(srcs):
                    tensors[index[src]] = host[k]
            for failure in it.failures:
                reasons[index[failure.path]] = f"{failure.stage}: {failure.reason}"
        channels = next(iter(tensors.values())).shape[0] if tensors else 3
        out = np.zeros((len(paths), channels, *self.size), np.float32)
        for i, t in tensors.items():
            out[i] = t
        ok = np.array([i in tensors for i in range(len(paths))])
        for i in range(len(paths)):
            if not ok[i] and i not in reasons:
                reasons[i] = "no tensor came back"
        return {"path": np.array(paths, dtype=object), "ok": ok,
                "reason": np.array([reasons.get(i, "") for i in range(len(paths))], dtype=object), "tensor": out}


class _StatusRows:
    """The status columns of one batch, filled row by row."""

    def __init__(self, paths: list[str], outputs: list[str | None]):
        n = len(paths)
        self.paths, self.outputs = paths, [o or "" for o in outputs]
        self.ok, self.stage, self.reason = [True] * n, [""] * n, [""] * n
        self.bytes_in, self.bytes_out = [0] * n, [0] * n

    def fail(self, i: int, stage: str, why: str) -> None:
        self.ok[i], self.stage[i], self.reason[i] = False, stage, why

    def done(self, i: int, bytes_in: int, bytes_out: int) -> None:
        self.bytes_in[i], self.bytes_out[i] = bytes_in, bytes_out

    def columns(self) -> dict[str, np.ndarray]:
        text = {name: np.array(getattr(self, attr), dtype=object)
                for name, attr in (("path", "paths"), ("output", "outputs"), ("stage", "stage"), ("reason", "reason"))}
        return {**text, "ok": np.array(self.ok, dtype=bool),
                "bytes_in": np.array(self.bytes_in, dtype=np.int64), "bytes_out": np.array(self.bytes_out, dtype=np.int64)}


def _size(path: Any) -> int:
    try:
        return os.stat(path).st_size
    except (OSError, TypeError):
        return 0


def _local_form(path: str) -> str:
    """A path or URL as an absolute POSIX-like path (``s3://b/k`` -> ``/b/k``), for the
    pipeline's naming rule, which works on paths."""
    if not _is_url(path):
        return os.path.abspath(os.path.expanduser(path))
    return "/" + path.split("://", 1)[1].lstrip("/")


class ActorPlan(NamedTuple):
    """How many actors a job runs and what each asks Ray for."""

    actors: int
    num_gpus: float
    num_cpus: float


def plan_actors(cpus: float, gpus: float, device: str, actors: int | None = None,
                gpus_per_actor: float = 1.0) -> ActorPlan:
    """The actors of a job on a cluster of ``cpus`` CPUs and ``gpus`` GPUs.

    On the GPU: ``gpus_per_actor`` each (0.5: two actors share a GPU), as many as fit
    unless ``actors`` says. On the CPU: ``actors`` (default: one per CPU but one). Each
    actor asks for at most one CPU and together they leave at least one CPU (half of a
    one-CPU machine) to Ray's own tasks: actors holding every CPU starve the tasks that
    feed them, and the job waits forever (the 2-CPU case).

    Example:
        >>> plan_actors(cpus=16, gpus=1, device="cuda", gpus_per_actor=0.5)
        ActorPlan(actors=2, num_gpus=0.5, num_cpus=1.0)
        >>> plan_actors(cpus=1, gpus=0, device="cpu")
        ActorPlan(actors=1, num_gpus=0.0, num_cpus=0.5)
    """
    check_int(actors, "actors", low=1, optional=True)
    if not 0 < gpus_per_actor:
        raise ArgumentError(f"gpus_per_actor must be positive, got {gpus_per_actor!r}")
    if device == "cuda":
        if gpus <= 0:
            raise ArgumentError("the pipeline runs on the GPU but the Ray cluster has no GPUs; "
                                "use device='cpu' (--device cpu) or a cluster with GPUs")
        fit = int(gpus / gpus_per_actor + 1e-9)
        if fit < 1 or (actors is not None and actors > fit):
            # Ray would wait for GPUs that never come
            raise ArgumentError(f"{actors or 1} actor(s) of {gpus_per_actor} GPU each need more than the {gpus:g} GPU(s) "
                                "of the Ray cluster; give fewer actors or a smaller gpus_per_actor")
        count, per_gpu = (actors if actors is not None else fit), float(gpus_per_actor)
    else:
        count, per_gpu = (actors if actors is not None else max(1, int(cpus) - 1)), 0.0
    spare = cpus - 1 if cpus >= 2 else cpus / 2
    return ActorPlan(count, per_gpu, round(min(1.0, spare / count), 4))


def _plan_inputs(pipeline: Pipeline, inputs: Any, output_dir: Any, options: RunOptions,
                 storage_options: dict[str, Any]) -> tuple[list[Job], dict[str, str]]:
    """The job's jobs by the pipeline's rule, and {job source: what the actors read and the
    report names} (the URL of an object-store input, else the path itself)."""
    if not _is_url(inputs):
        return pipeline.plan(inputs, output_dir, format=options.format, include=options.include,
                             exclude=options.exclude, name=options.name), {}
    import fsspec

    fs, root = fsspec.core.url_to_fs(inputs, **storage_options)
    found = fs.find(root) if fs.isdir(root) else [root]
    root_dir = root if fs.isdir(root) else os.path.dirname(root)
    keep = path_filter(options.include, options.exclude)
    base = _local_form(fs.unstrip_protocol(root_dir))
    urls = {}
    for path in found:
        rel = os.path.relpath("/" + path.lstrip("/"), "/" + root_dir.lstrip("/")).replace(os.sep, "/")
        if keep(rel):
            urls[os.path.join(base, rel)] = fs.unstrip_protocol(path)
    jobs = plan_outputs(sorted(urls), base, output_dir, options.output.suffix)
    return jobs, {str(j.src): urls[os.fspath(j.src)] for j in jobs}


def run_on_ray(
    pipeline: Pipeline,
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    output_dir: str | os.PathLike,
    options: RunOptions | None = None,
    *,
    progress: bool | Callable[[int, int], None] | None = None,
    address: str | None = None,
    actors: int | None = None,
    gpus_per_actor: float = 1.0,
    rows_per_task: int | None = None,
    storage_options: dict[str, Any] | None = None,
    device: str | None = None,
    calls_per_actor: int = 1,
    **changes: Any,
) -> Summary:
    """:meth:`pipeline.run <gpuimg.Pipeline.run>` fanned out over Ray actors; returns the
    merged :class:`~gpuimg.pipeline.Summary` (and writes its report, by default
    ``output_dir/gpuimg-report.json``).

    The driver plans every output by the pipeline's one naming rule (the same files,
    names and refusals as ``run``), skips done outputs (``resume``), removes temporary
    files of killed runs, and hands the rest to :class:`ProcessBatches` actors
    (:func:`plan_actors`: one per GPU, or per ``gpus_per_actor`` of one; ``actors`` to
    say how many); the actors write atomically and send one status row per input back,
    merged here into the summary, the report and ``progress`` (as in ``run``) as they
    come. ``inputs``: as ``run``'s, or a URL fsspec reads (``s3://bucket/photos``; its
    ``storage_options``); on an object store, ``resume`` skips outputs that exist.
    ``address``: the Ray cluster (None: the one this process is connected to, else a
    local Ray, shut down at the end). ``device``: the actors' ("cuda" or "cpu"; None:
    "cuda" where the cluster has GPUs, else "cpu"), whatever the driver has: the head of
    a cluster needs no GPU. ``calls_per_actor``: ``map_batches`` calls an actor runs at
    once, on its one Pipeline (2: the next call decodes while the last one's final batches
    encode, for twice the buffers; bench/ray_bench.py measures it). ``rows_per_task``: inputs per ``map_batches``
    call (default: 4 batches, fewer where that would leave an actor under 4 calls). Ctrl-C stops the job: finished outputs kept, the
    summary says ``interrupted``. ``options`` and the keywords of :class:`~gpuimg.pipeline.RunOptions`
    (``format``, ``quality``, ``include``, ``resume``, ...) are ``run``'s (``shards`` and
    ``workers`` do not apply: the actors are the processes).

    Example:
        >>> import gpuimg, gpuimg.ray, tempfile
        >>> pipe = gpuimg.Pipeline([("resize_shorter", {"size": 64})])
        >>> summary = gpuimg.ray.run_on_ray(pipe, "assets/", tempfile.mkdtemp(), include=["*.jpg"])  # doctest: +SKIP
        >>> summary.processed, summary.failed  # doctest: +SKIP
        (4, 0)
    """
    opts = RunOptions.of(options, **changes)
    ray = import_ray()
    storage_options = storage_options or {}
    summary = Summary()
    started = time.perf_counter()
    report_path = Path(opts.report) if opts.report is not None else Path(output_dir) / REPORT_NAME
    jobs, urls = _plan_inputs(pipeline, inputs, output_dir, opts, storage_options)
    todo = prepare_run(jobs, output_dir, report_path, opts.resume and not urls, summary)
    if opts.resume and urls:  # an object store's modification times are not comparable with ours
        summary.skipped += sum(1 for j in todo if j.dst.exists())  # type: ignore[union-attr]
        todo = [j for j in todo if not j.dst.exists()]  # type: ignore[union-attr]
    own_ray = not ray.is_initialized()
    try:
        if todo:
            if own_ray:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            _run_actors(ray, pipeline, device, todo, urls, summary, progress, _ActorCount(actors, gpus_per_actor,
                        calls_per_actor), rows_per_task, storage_options, opts)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.seconds = time.perf_counter() - started
        summary.report_path = str(report_path)
        write_report(summary, pipeline.steps)
        if own_ray and ray.is_initialized():
            ray.shutdown()
    return summary


class _ActorCount(NamedTuple):
    """What run_on_ray was asked for: actors, the GPU share of each, calls at once in each."""

    actors: int | None
    gpus_per_actor: float
    calls_per_actor: int


def _actor_pool(ray: Any, size: int, calls: int) -> tuple[Any, dict[str, Any]]:
    """Ray Data's actor pool of ``size`` actors running ``calls`` calls at once each, and the
    remote arguments that takes (the keywords changed between Ray versions)."""
    check_int(calls, "calls_per_actor", low=1)
    if calls == 1:
        return ray.data.ActorPoolStrategy(size=size), {}
    params = inspect.signature(ray.data.ActorPoolStrategy).parameters
    if "max_concurrent_calls_per_actor" not in params:  # older Ray: a threaded actor
        return ray.data.ActorPoolStrategy(size=size), {"max_concurrency": calls}
    extra = {"enable_true_multi_threading": True} if "enable_true_multi_threading" in params else {}
    return ray.data.ActorPoolStrategy(size=size, max_concurrent_calls_per_actor=calls, **extra), {}


def _run_actors(ray: Any, pipeline: Pipeline, device: str | None, todo: list[Job], urls: dict[str, str],
                summary: Summary, progress: Any, asked: _ActorCount, rows_per_task: int | None,
                storage_options: dict[str, Any], options: RunOptions) -> None:
    resources = ray.cluster_resources()
    gpus = resources.get("GPU", 0.0)
    device = device if device is not None else ("cuda" if gpus > 0 else "cpu")
    plan = plan_actors(resources.get("CPU", 1.0), gpus, device, asked.actors, asked.gpus_per_actor)
    compute, remote_args = _actor_pool(ray, plan.actors, asked.calls_per_actor)
    # Rows per map_batches call: a few of the pipeline's batches (its stages overlap inside
    # a call), but at least 4 calls per actor so that the actors share the work evenly.
    batch = options.batch_size if device == "cuda" else pipeline.config.cpu_batch_size
    per_task = rows_per_task or max(1, min(4 * batch, math.ceil(len(todo) / (4 * plan.actors))))
    rows = [{"path": urls.get(str(j.src), str(j.src)), "output": str(j.dst)} for j in todo]
    ray.data.DataContext.get_current().enable_progress_bars = False  # the driver draws one bar of finished items
    dataset = ray.data.from_items(rows).map_batches(
        ProcessBatches,
        fn_constructor_kwargs=dict(steps=pipeline.steps, config=pipeline.config, device=device,
                                   storage_options=storage_options, options=options),
        batch_size=per_task, batch_format="numpy", compute=compute, num_gpus=plan.num_gpus or None,
        num_cpus=plan.num_cpus, **remote_args,
    )
    done = 0
    quiet = logging.getLogger("ray.data")  # its per-run INFO lines and the note that its bars are off
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with _restore_level(quiet, level), progress_callback(progress, len(todo)) as report_progress:
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for i in range(len(batch["path"])):
                if batch["ok"][i]:
                    summary.processed += 1
                    summary.bytes_in += int(batch["bytes_in"][i])
                    summary.bytes_out += int(batch["bytes_out"][i])
                else:
                    summary.failed += 1
                    summary.failures.append(Failure(str(batch["path"][i]), str(batch["stage"][i]), str(batch["reason"][i])))
                done += 1
                if report_progress is not None:
                    report_progress(done, len(todo))


@contextlib.contextmanager
def _restore_level(logger: logging.Logger, level: int) -> Iterator[None]:
    try:
        yield
    finally:
        logger.setLevel(level)
