"""The pipeline's worker processes: one encodes and writes, one decodes, each with its
own interpreter and CUDA context, fed through CUDA IPC staging buffers.

Why processes and not threads: in one process nvImageCodec's hardware JPEG decoder and
its CUDA JPEG encoder slow each other down; across two processes they do not. Likewise
a second decoder in another process adds its throughput (its own CPU Huffman threads and
GIL) to the parent's (figures in BENCHMARKS.md). Pixels cross by CUDA IPC: the parent owns two
shareable staging buffers per worker that the worker maps once; only layouts, paths and
results go through the pipe.

Protocol (pickled tuples over a ``multiprocessing`` Connection):

    parent -> worker   ("map", slot, ipc_handle, nbytes)   staging buffer ``slot``
                       ("batch", seq, slot, rows, dtype, dsts, fmt, quality)   (encode role)
                       ("decode", seq, slot, paths)                            (decode role)
                       ("flush",)                          answer once all before are done
                       ("stop",)
    worker -> parent   ("ready",) | ("failed", reason)     after starting
                       ("mapped", slot) | ("failed", reason)
                       ("released", seq, slot)             the slot's pixels were read
                       ("results", seq, [(status, value)], encode_s, write_s)
                       ("decoded", seq, good, errors, rows, seconds)
                       ("flushed",)

Encode: ``rows`` are the batch's kernel-table rows (offset, height, width, pitch,
channels); ``status`` is "ok" (value: bytes written), "encode" or "write" (value: the
reason). Decode: the worker reads ``paths``, decodes them to RGB into its own batch and
copies that batch's arena into the staging slot; ``good`` are the decoded positions,
``errors`` (position, stage, reason) the others, ``rows`` the layout in the slot.

The parent launches ``python -m gpuimg.pipeline.workers ADDRESS ROLE DEVICE READ_THREADS
ENCODER_THREADS`` with this checkout on PYTHONPATH. The pool keeps started workers per
(role, device, the config's worker settings), so a run finds one ready.

Example:
    >>> take("encode", 0, PipelineConfig(), wait=False) is None  # doctest: +SKIP
    True
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

from ..codec import Decoder
from ..errors import check_choice
from ..image import Image
from ..memory import Buffer, grown_capacity
from .codecs import encode_images, encode_settings, new_encoder
from .config import WORKER_ROLES as ROLES
from .config import PipelineConfig
from .files import atomic_write, output_format
from .results import reason

__all__ = ["Worker", "WorkerUnavailable", "Joining", "ROLES", "prestart", "take", "give_back"]



class WorkerUnavailable(RuntimeError):
    """The worker could not start here (no CUDA IPC, ...): the pipeline works in-process."""


# --------------------------------------------------------------------------- worker side


def _image_view(cupy: Any, base: int, nbytes: int, row: Any, dtype: str) -> Any:
    """An Image over one slot of a mapped staging buffer (no copy)."""
    offset, height, width, pitch, channels = (int(v) for v in row)
    itemsize = int(cupy.dtype(dtype).itemsize)
    memory = cupy.cuda.UnownedMemory(base, nbytes, None)
    array = cupy.ndarray((height, width, channels), dtype, cupy.cuda.MemoryPointer(memory, offset),
                         strides=(pitch, channels * itemsize, itemsize))
    return Image.from_array(array, device="cuda")


def _write_all(dsts: list[str], encoded: list[Any]) -> list[tuple[str, Any]]:
    results: list[tuple[str, Any]] = []
    for dst, data in zip(dsts, encoded):
        if isinstance(data, BaseException):
            results.append(("encode", reason(data)))
            continue
        try:
            results.append(("ok", atomic_write(dst, data)))
        except Exception as exc:
            results.append(("write", reason(exc)))
    return results


def _read(path: str) -> Any:
    """A file's bytes, or the exception reading it raised."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        return exc


class _Encoding:
    """The encode role: encode a staged batch, then write its files."""

    def __init__(self, cupy: Any, config: PipelineConfig):
        self.cupy = cupy
        self.encoder = new_encoder("cuda", config)
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def __call__(self, conn: Any, msg: tuple[Any, ...], mapped: dict[int, tuple[int, int]]) -> None:
        _, seq, slot, rows, dtype, dsts, fmt, quality = msg
        base, nbytes = mapped[slot]
        t0 = time.perf_counter()
        try:
            images = [_image_view(self.cupy, base, nbytes, row, dtype) for row in rows]
            with self.stream:
                settings = encode_settings(output_format(fmt), quality, "cuda")
                views = encode_images(self.encoder, images, fmt, quality, settings, self.stream)
            # own copies before the encoder's buffers are reused by the next batch
            encoded: list[Any] = [v if isinstance(v, BaseException) else bytes(v) for v in views]
        except Exception as exc:  # a whole-batch failure is reported per item
            encoded = [exc] * len(dsts)
        t1 = time.perf_counter()
        conn.send(("released", seq, slot))
        results = _write_all(dsts, encoded)
        conn.send(("results", seq, results, t1 - t0, time.perf_counter() - t1))


class _Decoding:
    """The decode role: read files, decode them to RGB with the configured decoders
    (``config.decode_backends``, as the parent's) into a local batch, copy its arena into
    the staging slot."""

    def __init__(self, cupy: Any, config: PipelineConfig):
        from concurrent.futures import ThreadPoolExecutor

        self.cupy = cupy
        # Warmed before "ready": a run that lets this worker join late must not wait for its first decode.
        self.decoder = Decoder("cuda", guard_reuse=False, backends=config.decode_backends,
                               isolation=config.isolation).warm_up()
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.pool = ThreadPoolExecutor(config.worker_read_threads, thread_name_prefix="gpuimg-worker-read")
        self.batch: Any = None

    def __call__(self, conn: Any, msg: tuple[Any, ...], mapped: dict[int, tuple[int, int]]) -> None:
        _, seq, slot, paths = msg
        base, nbytes = mapped[slot]
        t0 = time.perf_counter()
        datas = list(self.pool.map(_read, paths))
        readable = [i for i, d in enumerate(datas) if not isinstance(d, BaseException)]
        errors = [(i, "read", reason(d)) for i, d in enumerate(datas) if isinstance(d, BaseException)]
        good: list[int] = []
        rows: list[Any] = []
        if readable:
            result = self.decoder.decode_batch([datas[i] for i in readable], self.batch, mode="rgb", stream=self.stream)
            self.batch = result.images
            good = [readable[k] for k in result.indices]
            errors += [(readable[e.index], "decode", reason(e.error)) for e in result.errors]
            used = self.batch.used_bytes if good else 0
            if used > nbytes:  # the parent sized the slot for every item: cannot happen
                raise RuntimeError(f"decoded batch of {used} bytes does not fit the {nbytes}-byte staging slot")
            if used:
                self.cupy.cuda.runtime.memcpyAsync(base, self.batch.data_ptr, used, 3, self.stream.ptr)
            self.stream.synchronize()
            rows = self.batch.table()[:, :5].tolist() if good else []
        conn.send(("decoded", seq, good, sorted(errors), rows, time.perf_counter() - t0))


def _worker_main(conn: Any, role: str, device_id: int, config: PipelineConfig) -> None:
    """The worker process: map staging buffers, serve its role's requests, report."""
    # Ctrl-C and SIGTERM sent to the process group (a terminal, `timeout`, a scheduler) go
    # to the pipeline, which stops the run, reports it and then stops this worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import cupy

        cupy.cuda.Device(device_id).use()
        serve = {"encode": _Encoding, "decode": _Decoding}[role](cupy, config)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which falls back
        with contextlib.suppress(OSError, EOFError):  # unless the parent is gone already
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    mapped: dict[int, tuple[int, int]] = {}  # slot -> (device pointer, bytes)
    try:
        conn.send(("ready",))
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                break
            kind = msg[0]
            if kind == "stop":
                break
            if kind == "flush":
                conn.send(("flushed",))
            elif kind == "map":
                _, slot, handle, nbytes = msg
                old = mapped.pop(slot, None)
                try:
                    if old is not None:
                        cupy.cuda.runtime.ipcCloseMemHandle(old[0])
                    mapped[slot] = (int(cupy.cuda.runtime.ipcOpenMemHandle(handle)), int(nbytes))
                except Exception as exc:
                    conn.send(("failed", f"cannot map a staging buffer: {type(exc).__name__}: {exc}"))
                    continue
                conn.send(("mapped", slot))
            elif kind in ("batch", "decode"):
                try:
                    serve(conn, msg, mapped)
                except (BrokenPipeError, ConnectionError):
                    raise
                except Exception as exc:  # noqa: BLE001 - the parent stops the run with it
                    conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    except (BrokenPipeError, ConnectionError, EOFError):
        pass  # the parent went away (killed, or stopped without a goodbye): nothing to tell
    finally:
        for ptr, _ in mapped.values():
            try:
                cupy.cuda.runtime.ipcCloseMemHandle(ptr)
            except Exception:
                pass


# --------------------------------------------------------------------------- parent side


class Worker:
    """A started worker process (``role``) on one GPU and the staging buffers it mapped.

    One run uses a worker at a time (take/give_back); ``slots`` are the two shareable
    staging Buffers (None until first needed), ``retired`` the outgrown ones, kept until
    the worker has mapped their replacements (it may still read them until then).
    ``config``: its worker settings (read threads, encoder threads, start timeout).
    """

    SLOTS = 2

    def __init__(self, role: str, device_id: int, config: PipelineConfig | None = None):
        check_choice(role, "role", ROLES, "a worker role")
        config = config or PipelineConfig()
        self.role, self.device_id, self.config = role, device_id, config
        timeout = config.worker_start_timeout_s
        self.conn: Any = None
        self.slots: list[Any] = [None] * self.SLOTS
        self.retired: list[Any] = []
        self.healthy = False
        # A plain ``python -m`` child, not multiprocessing's spawn: spawn re-runs the
        # caller's main script in the child, which breaks scripts without a main guard.
        authkey = os.urandom(16)
        listener = Listener(authkey=authkey)
        env = dict(os.environ, GPUIMG_WORKER_AUTHKEY=authkey.hex())
        root = str(Path(__file__).resolve().parents[2])  # where this gpuimg is imported from
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gpuimg.pipeline.workers", str(listener.address), role, str(device_id),
                 str(config.worker_read_threads), str(config.encoder_threads)],
                env=env, stdin=subprocess.DEVNULL, start_new_session=os.name == "posix")
        except OSError as exc:
            listener.close()
            raise WorkerUnavailable(f"cannot start the {role} worker: {exc}") from exc
        with _lock:
            _launched.add(self.process)  # killed at exit if still starting then
        accepted: list[Any] = []

        def accept() -> None:
            # a worker that never connects, or fails the handshake, is the timeout below
            with contextlib.suppress(OSError, EOFError, AuthenticationError):
                accepted.append(listener.accept())

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        acceptor.join(timeout)
        listener.close()
        if not accepted:
            self.stop()
            raise WorkerUnavailable(f"the {role} worker did not connect within {timeout:.0f} s")
        self.conn = accepted[0]
        try:
            self._expect("ready")
            self.stage(0, 1 << 20)  # proves CUDA IPC works here before a run relies on it
            self._expect("mapped")
        except BaseException:
            self.stop()
            raise
        self.healthy = True
        with _lock:
            _launched.discard(self.process)

    def _expect(self, kind: str) -> None:
        timeout = self.config.worker_start_timeout_s
        if not self.conn.poll(timeout):
            raise WorkerUnavailable(f"the {self.role} worker did not answer within {timeout:.0f} s")
        try:
            msg = self.conn.recv()
        except EOFError:
            raise WorkerUnavailable(f"the {self.role} worker exited while starting") from None
        if msg[0] != kind:
            raise WorkerUnavailable(f"the {self.role} worker could not start: {msg[1] if len(msg) > 1 else msg}")

    def stage(self, slot: int, nbytes: int) -> Any:
        """Staging Buffer ``slot`` with room for ``nbytes``; a replacement is mapped first.

        Sends ("map", ...) when the slot is new or outgrown; its answer arrives on the
        connection like every other message.
        """
        buf = self.slots[slot]
        if buf is not None and buf.capacity >= nbytes:
            return buf
        if buf is not None:
            self.retired.append(buf)
        capacity = nbytes if buf is None else grown_capacity(buf.capacity, nbytes)
        buf = self.slots[slot] = Buffer(capacity, "cuda", shareable=True, purpose=f"the {self.role} worker's staging")
        self.conn.send(("map", slot, buf.ipc_handle(), buf.capacity))
        return buf

    def answer(self, kind: str, seq: int) -> tuple[Any, ...]:
        """The answer ``kind`` to request ``seq`` (map acknowledgements are skipped); a
        RuntimeError (and the worker marked unhealthy) when it failed or exited."""
        while True:
            try:
                msg = self.recv()
            except (EOFError, OSError):
                self.healthy = False
                raise RuntimeError(f"the {self.role} worker process exited during the run") from None
            if msg[0] == "failed":
                self.healthy = False
                raise RuntimeError(f"the {self.role} worker failed: {msg[1]}")
            if msg[0] == kind and msg[1] == seq:
                return msg

    def send(self, msg: tuple[Any, ...]) -> None:
        self.conn.send(msg)

    def recv(self) -> tuple[Any, ...]:
        return self.conn.recv()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.healthy = False
        if self.conn is not None:
            try:
                self.conn.send(("stop",))
            except Exception:
                pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        if self.conn is not None:
            self.conn.close()
        with _lock:
            _launched.discard(self.process)


Key = tuple[str, int, PipelineConfig]  # (role, device id, the config's worker settings)
_free: dict[Key, list[Worker]] = {}
_all: list[Worker] = []
_starting: dict[Key, threading.Event] = {}
_unavailable: dict[Key, str] = {}
_lock = threading.Lock()
_launched: set[subprocess.Popen] = set()  # worker processes not yet started (see _stop_all)


def _key(role: str, device_id: int, config: PipelineConfig) -> Key:
    """Workers are shared by pipelines whose configs agree on the worker settings."""
    settings = PipelineConfig(worker_read_threads=config.worker_read_threads, encoder_threads=config.encoder_threads,
                              worker_start_timeout_s=config.worker_start_timeout_s, encode_in_worker=True,
                              decode_in_worker=True)
    return role, device_id, settings


def _start(key: Key) -> Worker | None:
    try:
        worker = Worker(*key)
    except WorkerUnavailable as exc:
        with _lock:
            _unavailable[key] = str(exc)
        return None
    with _lock:
        _all.append(worker)
    return worker


def prestart(role: str, device_id: int, config: PipelineConfig) -> None:
    """Start a ``role`` worker on ``device_id`` in the background (if none is free or
    starting), so that a later run finds it ready: starting one takes a few seconds."""
    key = _key(role, device_id, config)
    with _lock:
        if key in _unavailable or _free.get(key) or key in _starting:
            return
        done = _starting[key] = threading.Event()

    def start() -> None:
        try:
            worker = _start(key)
            if worker is not None:
                with _lock:
                    _free.setdefault(key, []).append(worker)
        finally:
            with _lock:
                _starting.pop(key, None)
            done.set()

    threading.Thread(target=start, name=f"gpuimg-start-{role}-worker", daemon=True).start()


def take(role: str, device_id: int, config: PipelineConfig, wait: bool = True, start: bool = True) -> Worker | None:
    """A free ``role`` worker on ``device_id`` with ``config``'s worker settings, or None
    where workers cannot run. ``wait=False``: only one that is ready now; ``start``: then
    start one in the background for a later run (a process that runs once, like the
    ``gpuimg`` command, has no later run to give it to)."""
    key = _key(role, device_id, config)
    while True:
        with _lock:
            if key in _unavailable:
                return None
            free = _free.get(key)
            if free:
                return free.pop()
            starting = _starting.get(key)
        if not wait:
            if start:
                prestart(role, device_id, config)
            return None
        if starting is None:
            return _start(key)
        starting.wait()


class Joining:
    """A ``role`` worker that a run starts (if none is free or starting) and uses once it
    is ready, while the run goes on without it meanwhile (plan "join", see
    :meth:`PipelineConfig.worker_plan`).

    Example:
        >>> Joining("decode", 0, PipelineConfig()).get(threading.Event())  # doctest: +SKIP
    """

    def __init__(self, role: str, device_id: int, config: PipelineConfig):
        self.role, self.device_id, self.config = role, device_id, config
        prestart(role, device_id, config)

    def ready(self) -> Worker | None:
        """The worker, taken, if it is ready now; else None."""
        with _lock:
            free = _free.get(_key(self.role, self.device_id, self.config))
            return free.pop() if free else None

    def get(self, *ended: threading.Event, poll_s: float = 0.05) -> Worker | None:
        """Wait until the worker is ready (it is taken and returned), or one of ``ended`` is set,
        or none will come (it could not start here, or another run took it): None then.
        A worker that becomes ready after the run ended stays in the pool for a later run
        (or is stopped at exit)."""
        key = _key(self.role, self.device_id, self.config)
        while not any(e.is_set() for e in ended):
            worker = self.ready()
            if worker is not None:
                return worker
            with _lock:
                if key in _unavailable or (key not in _starting and not _free.get(key)):
                    return None
            ended[0].wait(poll_s)
        return None


def give_back(worker: Worker) -> None:
    """Return a worker after a run; one left in an unknown state is stopped instead."""
    worker.retired.clear()  # its replacements were mapped: the worker answered everything sent
    if not worker.healthy or not worker.alive():
        worker.stop()
        return
    with _lock:
        _free.setdefault(_key(worker.role, worker.device_id, worker.config), []).append(worker)


@atexit.register
def _stop_all() -> None:
    for worker in list(_all):
        try:
            worker.stop()
        except Exception:
            pass
    with _lock:
        starting = list(_launched)
    for process in starting:  # still starting in the background: nobody will use it now
        try:
            process.kill()
            process.wait(5)
        except Exception:
            pass


def _main(argv: list[str]) -> int:
    """``python -m gpuimg.pipeline.workers ADDRESS ROLE DEVICE READ_THREADS ENCODER_THREADS``.

    A parent that ended its run (or exited) before this worker connected has closed its
    listener: the worker then ends quietly, with no traceback on the run's terminal."""
    try:
        conn = Client(argv[1], authkey=bytes.fromhex(os.environ.pop("GPUIMG_WORKER_AUTHKEY", "")))
    except (OSError, EOFError, AuthenticationError):
        return 0
    _worker_main(conn, argv[2], int(argv[3]),
                 PipelineConfig(worker_read_threads=int(argv[4]), encoder_threads=int(argv[5])))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
