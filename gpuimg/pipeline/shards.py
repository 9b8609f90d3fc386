"""A run split into shards: whole pipelines in their own processes, sharing the GPU.

One interpreter cannot keep a GPU busy on a dataset of small files: parsing, the Python of
each batch, the CPU half of the hybrid JPEG decoder and the CPU codecs all wait for one
GIL. So a large run is planned here (names, clashes, resume, stale temporary files: the
same rules as in one process, decided once for the whole run) and its jobs go to N shard
processes, each a :class:`~gpuimg.pipeline.Pipeline` with the same steps, config and
device, with its share of the cores (decoder threads, isolated CPU-codec children, CPU
encoder threads). Jobs are handed out in chunks as each shard asks for more (chunks
shrink as the run nears its end), so a shard that started late or got slow files takes
less and all finish together. Each shard reports every item as it ends; this process
merges them into the run's one :class:`~gpuimg.pipeline.Summary` and report and drives
the progress bar.

Guarantees kept across shards: outputs are written atomically by the shard that made
them; a stop (Ctrl-C, SIGTERM) reaches every shard, which finishes its in-flight writes
and reports ``interrupted``; a shard that dies (a native crash, the OOM killer) costs no
item by itself: each item it held unreported runs again alone in a fresh shard (a few at
once), so the item that killed it fails with the reason and no other item with it; the
rest of the queue goes on in the other shards (a fresh one starts if none is left).

Protocol (pickles): the parent writes ``(steps, config, device)`` to the shard's stdin
(the shard builds its Pipeline and starts its decoder's warm-up at once), then
``(options, cpu_codec_files)``, then ``("jobs", [Job, ...])`` chunks and last
``("end",)``; the shard writes to its stdout ``("want",)`` (its feed runs low),
``("done", index, bytes_in, bytes_out)``, ``("fail", index, stage, reason)``,
``("error", reason)`` (an exception in the shard itself) and last ``("end",
stage_seconds, interrupted)``. Its own prints go to stderr.

Example:
    >>> chunk_size(1000, shards=4, largest=64), chunk_size(40, shards=4, largest=64), chunk_size(1, 4, 64)
    (64, 5, 1)
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
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._exits import died_of
from ..device import usable_cores
from .config import PipelineConfig
from .files import Job, remove_stale_temps
from .options import RunOptions
from .results import Failure, Summary, account, reason

__all__ = ["run_shards", "shard_config", "shard_options", "shardable", "chunk_size"]



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


def chunk_size(remaining: int, shards: int, largest: int) -> int:
    """Jobs to hand a shard that asks for more: an even share of what is left, halved so
    the last chunks are small and the shards end together, at most ``largest``.

    Example:
        >>> chunk_size(100, 2, 8), chunk_size(3, 2, 8)
        (8, 1)
    """
    return max(1, min(largest, remaining // max(1, 2 * shards)))


def shard_options(options: RunOptions, shards: int) -> RunOptions:
    """The options each of ``shards`` processes runs with: no worker processes or shards of
    its own, and its share of ``max_batch_bytes`` (at least 64 MiB, never more than the
    run's), so the device memory of a sharded run stays about that of one process.

    Example:
        >>> opts = shard_options(RunOptions(), 8)
        >>> opts.max_batch_bytes >> 20, opts.shards, opts.workers
        (64, 1, False)
    """
    share = max(min(options.max_batch_bytes, 64 << 20), options.max_batch_bytes // max(1, shards))
    return options.replace(workers=False, shards=1, max_batch_bytes=share)


class _Shard:
    """One shard process: started with its pipeline, then fed chunks of jobs."""

    def __init__(self, specs: list[Any], config: PipelineConfig, device: str, events: queue.Queue, number: int):
        self.number = number
        self.held: dict[int, Job] = {}  # handed and not reported yet
        self.ended = False
        self.interrupted = False
        self.fed_end = False
        self.alone = False  # runs one item that a dead shard held
        self.error: str | None = None
        self.exit_code: int | None = None
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # this gpuimg, whether installed or a checkout
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gpuimg.pipeline.shards"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        # The shard's stdin is written by its own thread: a shard busy with a batch reads its
        # next chunk only when its feed runs dry, and the dispatcher must not wait for that.
        self._feed: queue.Queue = queue.Queue()
        self._feed.put((specs, config, device))
        threading.Thread(target=self._write, name=f"gpuimg-shard-{number}-feed", daemon=True).start()
        threading.Thread(target=self._read, args=(events,), name=f"gpuimg-shard-{number}", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self.exit_code is None and not self.ended

    def send(self, msg: Any) -> None:
        self._feed.put(msg)

    def hand(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.held[job.index] = job
        self.send(("jobs", jobs))

    def finish_feed(self) -> None:
        if not self.fed_end:
            self.fed_end = True
            self.send(("end",))

    def _write(self) -> None:
        stream = self.process.stdin
        assert stream is not None
        try:
            while True:
                msg = self._feed.get()
                pickle.dump(msg, stream)
                stream.flush()
                if msg == ("end",):
                    break
        except (BrokenPipeError, OSError, ValueError):  # it died: its held jobs go back to the queue
            pass
        finally:
            with contextlib.suppress(OSError, ValueError):
                stream.close()

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
            with contextlib.suppress(OSError):
                self.process.send_signal(signum)


def _exit_reason(code: int | None) -> str:
    name = died_of(code)
    if name is not None:
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
    cpu_codec_files: int = 0,
) -> None:
    """Process ``todo`` in ``count`` shard processes, merging their results into
    ``summary`` (see the module's docstring); a stop of this process stops them all.
    KeyboardInterrupt is raised again once every shard has stopped.
    """
    shard_cfg = shard_config(config, count)
    setup = (shard_options(options, count), cpu_codec_files // max(1, count))
    largest = options.batch_size if device == "cuda" else 4 * config.cpu_batch_size
    events: queue.Queue = queue.Queue()
    waiting: deque[Job] = deque(todo)
    suspects: deque[Job] = deque()  # held by a shard that died: each runs again alone
    dead_dirs: set[str] = set()  # output folders where a dead shard may have left a temporary file
    total, done = len(todo), 0
    stage_totals: dict[str, float] = {}
    shards: list[_Shard] = []
    stopped = False
    restarts = 0

    def launch() -> _Shard:
        shard = _Shard(specs, shard_cfg, device, events, len(shards))
        shard.send(setup)
        shards.append(shard)
        feed(shard)
        return shard

    def feed(shard: _Shard) -> None:
        if shard.alone:
            return  # its one item and its end were handed at launch
        if stopped or not waiting:
            shard.finish_feed()
            return
        n = chunk_size(len(waiting), sum(s.alive for s in shards), largest)
        shard.hand([waiting.popleft() for _ in range(min(n, len(waiting)))])

    def stop_all() -> None:
        for s in shards:
            s.finish_feed()
            s.signal(signal.SIGTERM)

    def launch_alone(job: Job) -> None:
        """A shard for one item that a dead shard held: it runs alone, so if it kills its
        shard too, it is the one that fails, and no other item with it."""
        shard = _Shard(specs, shard_cfg, device, events, len(shards))
        shard.alone = True
        shard.send(setup)
        shards.append(shard)
        shard.hand([job])
        shard.finish_feed()

    def lose(shard: _Shard) -> None:
        """A shard that exited without its end: what it held is run again, each item alone
        (the item that killed it is among them); an item that killed a shard alone fails."""
        for job in shard.held.values():
            if job.dst is not None:
                dead_dirs.add(os.path.dirname(job.dst))
            if shard.error is not None:
                summary.failures.append(Failure(str(job.src), "shard", f"its shard process failed ({shard.error})"))
                summary.failed += 1
            elif shard.alone:
                summary.failures.append(Failure(str(job.src), "shard",
                                                f"{_exit_reason(shard.exit_code)} while it processed this item alone"))
                summary.failed += 1
            else:
                suspects.append(job)
        shard.held.clear()

    try:
        for _ in range(min(count, len(todo))):
            launch()
        while any(s.exit_code is None for s in shards):
            try:
                shard, msg = events.get(timeout=0.1)
            except queue.Empty:
                continue
            except KeyboardInterrupt:
                if stopped:  # a second stop: do not wait for in-flight batches
                    for s in shards:
                        s.signal(signal.SIGKILL)
                else:
                    stopped = True
                    stop_all()
                continue
            kind = msg[0]
            if kind in ("done", "fail"):
                job = shard.held.pop(msg[1], None)
                if job is None:
                    continue
                account(summary, (kind, job, *msg[2:]))
                done += 1
                if progress is not None:
                    try:
                        progress(done, total)
                    except KeyboardInterrupt:
                        if not stopped:
                            stopped = True
                            stop_all()
            elif kind == "want":
                feed(shard)
            elif kind == "end":
                shard.ended = True
                shard.interrupted = bool(msg[2])
                for name, value in msg[1].items():
                    stage_totals[name] = stage_totals.get(name, 0.0) + value
            elif kind == "error":
                shard.error = msg[1]
            elif kind == "exit":
                shard.exit_code = msg[1]
                if not shard.ended and not stopped:
                    lose(shard)
                if not stopped:
                    while suspects and sum(s.alive and s.alone for s in shards) < count:
                        launch_alone(suspects.popleft())
                    takers = any(s.alive and not s.fed_end and not s.alone for s in shards)
                    if waiting and not takers and restarts < count + 2:
                        restarts += 1  # none is left to take the rest: a fresh shard does
                        launch()
    except BaseException:  # an error here (not a stop): no shard may go on writing without us
        for s in shards:
            s.signal(signal.SIGKILL)
        raise
    if dead_dirs:  # a shard killed mid-write leaves its temporary file: gone with its process
        remove_stale_temps(dead_dirs, keep=[j.src for j in todo])
    if not stopped:
        for job in [*waiting, *suspects]:  # left after the restarts ran out
            summary.failures.append(Failure(str(job.src), "shard", "no shard process could run it"))
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


class _Feed:
    """The shard's jobs as the Batcher pulls them: chunks read from stdin, the next one
    asked for (``("want",)``) while a chunk's worth is still buffered, so that the
    readers never wait for the parent in the middle of a run."""

    def __init__(self, source: Any, send: Callable[[tuple[Any, ...]], None], low: int):
        self.source, self.send, self.low = source, send, low
        self.buffer: deque[Job] = deque()
        self.asked = True  # the parent hands the first chunk unasked
        self.ended = False

    def __iter__(self) -> Iterator[Job]:
        while True:
            if not self.buffer and not self.ended:
                self._receive()
            if not self.buffer:
                return
            if len(self.buffer) <= self.low and not self.asked and not self.ended:
                self.asked = True
                self.send(("want",))
            yield self.buffer.popleft()

    def _receive(self) -> None:
        if not self.asked:
            self.asked = True
            self.send(("want",))
        try:
            msg = pickle.load(self.source)
        except (EOFError, OSError, pickle.UnpicklingError):  # the parent is gone or done
            msg = ("end",)
        self.asked = False
        if msg[0] == "jobs":
            self.buffer.extend(msg[1])
        else:
            self.ended = True


def _shard_main() -> int:
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what libraries print goes to stderr, not into the results
    _stop_once()
    source = sys.stdin.buffer
    from .api import Pipeline

    interrupted = False
    summary = Summary()
    gone = [False]
    lock = threading.Lock()  # the Batcher thread asks for jobs while the main thread reports

    def send(msg: tuple[Any, ...]) -> None:
        if gone[0]:
            return
        try:
            with lock:
                pickle.dump(msg, results)
                results.flush()
        except (BrokenPipeError, OSError):  # the parent is gone: stop cleanly
            gone[0] = True
            if threading.current_thread() is threading.main_thread():
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
        options, cpu_files = pickle.load(source)
        low = options.batch_size if device == "cuda" else 4 * config.cpu_batch_size
        pipeline._run_jobs(_Feed(source, send, low), options, summary, on_event=on_event, cpu_codec_files=cpu_files)
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
