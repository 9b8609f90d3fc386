"""A run split into shards: whole pipelines in their own processes, sharing the GPU.

One interpreter cannot keep a GPU busy on a dataset of small files: parsing, the Python of
each batch, the CPU half of the hybrid JPEG decoder and the CPU codecs all wait for one
GIL. So a large run is planned here (names, clashes, resume, stale temporary files: the
same rules as in one process, decided once for the whole run) and its jobs are dealt out
to N shard processes (:func:`shard_jobs`: balanced by input bytes), each a
:class:`~gpuimg.pipeline.Pipeline` with the same steps, config and device running
:meth:`~gpuimg.pipeline.Pipeline.process_jobs` on its slice, with its share of the cores
(decoder threads, isolated CPU-codec children). Each shard reports every item as it
ends; this process merges them into the run's one :class:`~gpuimg.pipeline.Summary` and
report and drives the progress bar.

Guarantees kept across shards: outputs are written atomically by the shard that made
them; a stop (Ctrl-C, SIGTERM) reaches every shard, which finishes its in-flight writes
and reports ``interrupted``; a shard that dies (a native crash, the OOM killer) costs
only its unreported items, which are run once more in a fresh shard, and fail with the
reason if that one dies too.

Protocol: the parent writes two pickles to the shard's stdin, ``(steps, config, device)``
(the shard builds its Pipeline and starts its decoder's warm-up at once) and then
``(jobs, options)``; the shard writes pickled tuples to its stdout, ``("done", index,
bytes_in, bytes_out)``, ``("fail", index, stage, reason)``, and last ``("end",
stage_seconds, interrupted)``. Its own prints go to stderr.

Example:
    >>> from gpuimg.pipeline.files import Job
    >>> from pathlib import Path
    >>> jobs = [Job(i, Path(f"{i}.jpg"), Path(f"o/{i}.jpg"), size=s) for i, s in enumerate([9, 1, 5, 5])]
    >>> [[j.index for j in part] for part in shard_jobs(jobs, 2)]
    [[0, 1], [2, 3]]
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..device import usable_cores
from .config import PipelineConfig
from .files import Job
from .options import RunOptions
from .results import Failure, Summary, account, reason

__all__ = ["shard_jobs", "input_sizes", "run_shards", "shard_config", "shardable"]

# How long a stopped shard may take to finish its in-flight batch and report.
_STOP_GRACE_S = 60.0


def shard_jobs(jobs: Sequence[Job], count: int, sizes: Sequence[int] | None = None) -> list[list[Job]]:
    """``jobs`` dealt to ``count`` shards, largest input first to the least loaded (by
    bytes: ``sizes``, default each job's ``size``), each shard's jobs then in input order
    (readers and outputs stay local).

    Example:
        >>> from pathlib import Path
        >>> js = [Job(i, Path(str(i)), Path(str(i))) for i in range(5)]
        >>> [[j.index for j in part] for part in shard_jobs(js, 2, sizes=[1, 1, 1, 1, 1])]
        [[0, 2, 4], [1, 3]]
    """
    weights = [max(int(w), 1) for w in (sizes if sizes is not None else [j.size for j in jobs])]
    parts: list[list[Job]] = [[] for _ in range(max(1, count))]
    loads = [0] * len(parts)
    for k in sorted(range(len(jobs)), key=lambda k: -weights[k]):
        least = loads.index(min(loads))
        parts[least].append(jobs[k])
        loads[least] += weights[k]
    return [sorted(p, key=lambda j: j.index) for p in parts if p]


def input_sizes(jobs: Sequence[Job]) -> list[int]:
    """Each job's input bytes (its ``size``, its ``data``, or the file's; 0 if unknown).

    Example:
        >>> from pathlib import Path
        >>> input_sizes([Job(0, Path("assets/coffee.jpg"), None), Job(1, Path("nowhere.jpg"), None)])[1]
        0
    """
    sizes = []
    for job in jobs:
        if job.size:
            sizes.append(job.size)
        elif job.data is not None:
            sizes.append(len(job.data))
        else:
            try:
                sizes.append(os.stat(job.src).st_size)
            except (OSError, TypeError, ValueError):
                sizes.append(0)
    return sizes


def shardable(specs: Sequence[Any]) -> bool:
    """Whether the steps can be rebuilt in another process: named ops with picklable
    arguments (a Python callable step keeps the run in this process).

    Example:
        >>> shardable([("invert", {})]), shardable([lambda batch: batch])
        (True, False)
    """
    if any(callable(s) for s in specs):
        return False
    try:
        pickle.dumps(list(specs))
    except Exception:
        return False
    return True


def shard_config(config: PipelineConfig, shards: int, cores: int | None = None) -> PipelineConfig:
    """The config each of ``shards`` processes runs with: its share of the cores for the
    decoder's threads and the isolated CPU-codec children, and no worker processes of its
    own (the shards are the extra processes).

    Example:
        >>> cfg = shard_config(PipelineConfig(), 4, cores=16)
        >>> cfg.decoder_threads, cfg.isolation.children, cfg.encode_in_worker, cfg.prestart_workers
        (4, 4, False, False)
    """
    share = max(1, (usable_cores() if cores is None else cores) // max(1, shards))
    changes: dict[str, Any] = dict(
        decoder_threads=config.decoder_threads or share,
        encoder_threads=min(config.encoder_threads, share) if config.encoder_threads else share,
        encoder_cpu_threads=config.encoder_cpu_threads or share,
        encode_in_worker=False, decode_in_worker=False, prestart_workers=False,
    )
    if config.isolation.children is None:
        changes["isolation"] = dataclasses.replace(config.isolation, children=share)
    return dataclasses.replace(config, **changes)


class _Shard:
    """One shard process: started with its pipeline, then handed its jobs."""

    def __init__(self, specs: list[Any], config: PipelineConfig, device: str, events: queue.Queue, number: int):
        self.number = number
        self.jobs: list[Job] = []
        self.reported: set[int] = set()
        self.ended = False
        self.interrupted = False
        self.stage_seconds: dict[str, float] = {}
        self.error: str | None = None
        self.exit_code: int | None = None
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # this gpuimg, whether installed or a checkout
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gpuimg.pipeline.shards"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env, start_new_session=False,
        )
        assert self.process.stdin is not None
        pickle.dump((specs, config, device), self.process.stdin)
        self.process.stdin.flush()
        self._reader = threading.Thread(target=self._read, args=(events,), name=f"gpuimg-shard-{number}", daemon=True)
        self._reader.start()

    def hand(self, jobs: list[Job], options: RunOptions) -> None:
        self.jobs = jobs
        assert self.process.stdin is not None
        try:
            pickle.dump((jobs, options), self.process.stdin)
            self.process.stdin.close()
        except (BrokenPipeError, OSError):  # it died at start: its jobs are unreported, and retried
            pass

    def _read(self, events: queue.Queue) -> None:
        stream = self.process.stdout
        assert stream is not None
        try:
            while True:
                try:
                    msg = pickle.load(stream)
                except (EOFError, pickle.UnpicklingError, OSError):
                    break
                events.put((self, msg))
                if msg[0] == "end":
                    break
        finally:
            self.process.wait()
            events.put((self, ("exit", self.process.returncode)))

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            try:
                self.process.send_signal(signum)
            except OSError:
                pass

    def unreported(self) -> list[Job]:
        return [j for j in self.jobs if j.index not in self.reported]


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"its shard process was killed by {name}"
    return f"its shard process ended (exit status {code})"


def run_shards(
    specs: list[Any],
    config: PipelineConfig,
    device: str,
    todo: list[Job],
    options: RunOptions,
    summary: Summary,
    count: int,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Process ``todo`` in ``count`` shard processes, merging their results into
    ``summary`` (see the module's docstring); a stop of this process stops them all.
    KeyboardInterrupt is raised again once every shard has stopped.
    """
    shard_cfg = shard_config(config, count)
    shard_opts = options.replace(workers=False, shards=1)
    events: queue.Queue = queue.Queue()
    by_index = {j.index: j for j in todo}
    done = [0]
    total = len(todo)
    stage_totals: dict[str, float] = {}

    def launch(parts: list[list[Job]], first: int) -> list[_Shard]:
        shards = [_Shard(specs, shard_cfg, device, events, first + k) for k in range(len(parts))]
        for shard, part in zip(shards, parts):
            shard.hand(part, shard_opts)
        return shards

    def wait(shards: list[_Shard]) -> bool:
        """Until every shard has exited; True when a stop came."""
        running = len(shards)
        stopped = False
        while running:
            try:
                shard, msg = events.get(timeout=0.1 if not stopped else 1.0)
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                if stopped:  # a second stop: do not wait for in-flight batches
                    for s in shards:
                        s.signal(signal.SIGKILL)
                    continue
                stopped = True
                for s in shards:
                    s.signal(signal.SIGTERM)
                continue
            kind = msg[0]
            if kind in ("done", "fail"):
                job = by_index.get(msg[1])
                if job is None or job.index in shard.reported:
                    continue
                shard.reported.add(job.index)
                account(summary, (kind, job, *msg[2:]))
                done[0] += 1
                if progress is not None:
                    try:
                        progress(done[0], total)
                    except KeyboardInterrupt:
                        events.put((shard, ("stop",)))
            elif kind == "stop":
                if not stopped:
                    stopped = True
                    for s in shards:
                        s.signal(signal.SIGTERM)
            elif kind == "end":
                shard.ended = True
                shard.interrupted = bool(msg[2])
                for name, value in msg[1].items():
                    stage_totals[name] = stage_totals.get(name, 0.0) + value
            elif kind == "error":
                shard.error = msg[1]
            elif kind == "exit":
                running -= 1
                shard.exit_code = msg[1]
        return stopped

    shards = launch(shard_jobs(todo, count, input_sizes(todo)), 0)
    stopped = False
    try:
        stopped = wait(shards)
    except BaseException:
        for s in shards:
            s.signal(signal.SIGKILL)
        raise
    lost = [(s, j) for s in shards if not s.ended for j in s.unreported()]
    again = [j for s, j in lost if s.error is None]
    if again and not stopped:  # a shard died (a crash, not an error): its unreported items once more
        retry = launch([again], len(shards))
        stopped = wait(retry)
        shards += retry
        lost = [(s, j) for s, j in lost if s.error is not None]
        lost += [(s, j) for s in retry if not s.ended for j in s.unreported()]
    for shard, job in lost:
        if stopped:
            continue  # not done because the run stopped: --resume does them
        why = f"its shard process failed ({shard.error})" if shard.error else _exit_reason(shard.exit_code)
        summary.failures.append(Failure(str(job.src), "shard", f"{why} before this item was done; nothing was written for it"))
        summary.failed += 1
    summary.stage_seconds = {k: round(v, 4) for k, v in stage_totals.items()}
    if stopped or any(s.interrupted for s in shards):
        raise KeyboardInterrupt


# --------------------------------------------------------------------------- shard side


def _stop_once() -> None:
    """The first SIGTERM or SIGINT raises KeyboardInterrupt in the main thread (the
    pipeline's clean stop); later ones are ignored, so that stop is not cut short."""
    state = {"raised": False}

    def handler(signum: int, frame: Any) -> None:
        if not state["raised"]:
            state["raised"] = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _shard_main() -> int:
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what libraries print goes to stderr, not into the results
    _stop_once()
    source = sys.stdin.buffer
    from .api import Pipeline

    interrupted = False
    summary = Summary()
    gone = [False]

    def send(msg: tuple[Any, ...]) -> None:
        if gone[0]:
            return
        try:
            pickle.dump(msg, results)
            results.flush()
        except (BrokenPipeError, OSError):  # the parent is gone: stop cleanly
            gone[0] = True
            raise KeyboardInterrupt from None

    def on_event(event: tuple[Any, ...]) -> None:
        if event[0] == "done":
            send(("done", event[1].index, event[2], event[3]))
        elif event[0] == "fail":
            send(("fail", event[1].index, event[2], event[3]))

    try:
        specs, config, device = pickle.load(source)
        pipeline = Pipeline(specs, config=config, device=device)
        pipeline.prewarm()  # overlaps the parent's planning
        jobs, options = pickle.load(source)
        pipeline._run_jobs(jobs, options, summary, on_event=on_event)
    except KeyboardInterrupt:
        interrupted = True
    except EOFError:  # the parent stopped before handing the jobs
        interrupted = True
    except Exception as exc:  # a bug or a broken install: the parent names it for each unfinished item
        with contextlib.suppress(KeyboardInterrupt):
            send(("error", reason(exc)))
        raise
    with contextlib.suppress(KeyboardInterrupt):
        send(("end", summary.stage_seconds, interrupted or summary.interrupted))
    return 0


if __name__ == "__main__":
    sys.exit(_shard_main())
