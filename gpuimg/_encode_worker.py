"""The pipeline's encode-and-write worker: a separate process that encodes processed
batches and writes the files, so that decoding (in the pipeline's process) and encoding
(here) run at the same time.

Why a process and not a thread: in one process nvImageCodec's hardware JPEG decoder and
its CUDA JPEG encoder slow each other down (H200, batches of 64: decode 3,610 img/s
alone, 1,473 beside an encoding thread; encode 5,643 alone, 1,074 beside a decoding
thread), so the in-process pipeline makes them take turns. Across two processes (two
CUDA contexts) they do not interfere: decode ran at 3,260-3,369 img/s beside an encoding
process against 3,321 alone. The pixels cross by CUDA IPC: the pipeline copies each
processed batch (device to device) into one of two shared staging buffers that this
process maps once; only the layout, the output paths and the results go through the pipe.

Protocol (pickled tuples over a ``multiprocessing`` Connection):

    parent -> worker   ("map", slot, ipc_handle, nbytes)   staging buffer ``slot``
                       ("batch", seq, slot, rows, dtype, dsts, fmt, quality)
                       ("flush",)                          answer once all before are done
                       ("stop",)
    worker -> parent   ("ready",) | ("failed", reason)     after starting
                       ("mapped", slot) | ("failed", reason)
                       ("released", seq, slot)             the slot's pixels were read
                       ("results", seq, [(status, value)], encode_s, write_s)
                       ("flushed",)

``rows`` are the batch's kernel-table rows (offset, height, width, pitch, channels) and
``status`` is "ok" (value: bytes written), "encode" or "write" (value: the reason).

Example:
    >>> worker = take(0)   # doctest: +SKIP
    >>> give_back(worker)  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Client, Listener
from pathlib import Path
from typing import Any

__all__ = ["EncodeWorker", "WorkerUnavailable", "prestart", "take", "give_back", "enabled"]

START_TIMEOUT_S = 120.0  # spawning, importing CuPy and nvImageCodec, creating a CUDA context


class WorkerUnavailable(RuntimeError):
    """The worker could not start here (no spawn, no CUDA IPC, ...): encode in-process."""


def enabled() -> bool:
    """Whether pipelines may use the worker (``GPUIMG_ENCODE_WORKER=0`` turns it off)."""
    return os.environ.get("GPUIMG_ENCODE_WORKER", "1").strip().lower() not in ("0", "false", "no", "off")


# --------------------------------------------------------------------------- worker side


def _image_view(cupy: Any, base: int, nbytes: int, row: Any, dtype: str) -> Any:
    """An Image over one slot of a mapped staging buffer (no copy)."""
    from .image import Image

    offset, height, width, pitch, channels = (int(v) for v in row)
    itemsize = int(cupy.dtype(dtype).itemsize)
    memory = cupy.cuda.UnownedMemory(base, nbytes, None)
    array = cupy.ndarray((height, width, channels), dtype, cupy.cuda.MemoryPointer(memory, offset),
                         strides=(pitch, channels * itemsize, itemsize))
    return Image.from_array(array, device="cuda")


def _write_all(dsts: list[str], encoded: list[Any]) -> list[tuple[str, Any]]:
    from ._files import atomic_write
    from .pipeline import _reason

    results: list[tuple[str, Any]] = []
    for dst, data in zip(dsts, encoded):
        if isinstance(data, BaseException):
            results.append(("encode", _reason(data)))
            continue
        try:
            results.append(("ok", atomic_write(dst, data)))
        except Exception as exc:
            results.append(("write", _reason(exc)))
    return results


def _worker_main(conn: Any, device_id: int) -> None:
    """The worker process: map staging buffers, encode batches, write files, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the pipeline, which stops us
    try:
        import cupy

        cupy.cuda.Device(device_id).use()
        from .pipeline import _encode, _new_encoder

        encoder = _new_encoder("cuda")
        stream = cupy.cuda.Stream(non_blocking=True)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which falls back
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    mapped: dict[int, tuple[int, int]] = {}  # slot -> (device pointer, bytes)
    try:
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
            elif kind == "batch":
                _, seq, slot, rows, dtype, dsts, fmt, quality = msg
                base, nbytes = mapped[slot]
                t0 = time.perf_counter()
                try:
                    images = [_image_view(cupy, base, nbytes, row, dtype) for row in rows]
                    with stream:
                        views = _encode(encoder, images, fmt, quality, stream)
                    # own copies before the encoder's buffers are reused by the next batch
                    encoded: list[Any] = [v if isinstance(v, BaseException) else bytes(v) for v in views]
                except Exception as exc:  # a whole-batch failure is reported per item
                    encoded = [exc] * len(dsts)
                t1 = time.perf_counter()
                conn.send(("released", seq, slot))
                results = _write_all(dsts, encoded)
                conn.send(("results", seq, results, t1 - t0, time.perf_counter() - t1))
    finally:
        for ptr, _ in mapped.values():
            try:
                cupy.cuda.runtime.ipcCloseMemHandle(ptr)
            except Exception:
                pass


# --------------------------------------------------------------------------- parent side


class EncodeWorker:
    """A started worker process on one GPU and the staging buffers it has mapped.

    One run uses a worker at a time (take/give_back); ``slots`` are the two shareable
    staging Buffers (None until first needed), ``retired`` the outgrown ones, kept until
    the worker has mapped their replacements (it may still read them until then).
    """

    SLOTS = 2

    def __init__(self, device_id: int):
        self.device_id = device_id
        self.conn: Any = None
        self.slots: list[Any] = [None] * self.SLOTS
        self.retired: list[Any] = []
        self.healthy = False
        # A plain ``python -m`` child, not multiprocessing's spawn: spawn re-runs the
        # caller's main script in the child, which breaks scripts without a main guard.
        authkey = os.urandom(16)
        listener = Listener(authkey=authkey)
        env = dict(os.environ, GPUIMG_WORKER_AUTHKEY=authkey.hex())
        root = str(Path(__file__).resolve().parent.parent)  # where this gpuimg is imported from
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gpuimg._encode_worker", str(listener.address), str(device_id)],
                env=env, stdin=subprocess.DEVNULL, start_new_session=os.name == "posix")
        except OSError as exc:
            listener.close()
            raise WorkerUnavailable(f"cannot start the encode worker: {exc}") from exc
        accepted: list[Any] = []
        acceptor = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
        acceptor.start()
        acceptor.join(START_TIMEOUT_S)
        listener.close()
        if not accepted:
            self.stop()
            raise WorkerUnavailable(f"the encode worker did not connect within {START_TIMEOUT_S:.0f} s")
        self.conn = accepted[0]
        try:
            self._expect("ready")
            self.stage(0, 1 << 20)  # proves CUDA IPC works here before a run relies on it
            self._expect("mapped")
        except BaseException:
            self.stop()
            raise
        self.healthy = True

    def _expect(self, kind: str) -> None:
        if not self.conn.poll(START_TIMEOUT_S):
            raise WorkerUnavailable(f"the encode worker did not answer within {START_TIMEOUT_S:.0f} s")
        try:
            msg = self.conn.recv()
        except EOFError:
            raise WorkerUnavailable("the encode worker exited while starting") from None
        if msg[0] != kind:
            raise WorkerUnavailable(f"the encode worker could not start: {msg[1] if len(msg) > 1 else msg}")

    def stage(self, slot: int, nbytes: int) -> Any:
        """Staging Buffer ``slot`` with room for ``nbytes``; a replacement is mapped first.

        Sends ("map", ...) when the slot is new or outgrown; its answer arrives on the
        connection like every other message.
        """
        from .memory import Buffer

        buf = self.slots[slot]
        if buf is not None and buf.capacity >= nbytes:
            return buf
        if buf is not None:
            self.retired.append(buf)
        capacity = max(nbytes, 0 if buf is None else buf.capacity * 3 // 2)
        buf = self.slots[slot] = Buffer(capacity, "cuda", shareable=True, purpose="the encode worker's staging")
        self.conn.send(("map", slot, buf.ipc_handle(), buf.capacity))
        return buf

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


_free: dict[int, list[EncodeWorker]] = {}
_all: list[EncodeWorker] = []
_starting: dict[int, threading.Event] = {}
_unavailable: dict[int, str] = {}
_lock = threading.Lock()


def _start(device_id: int) -> EncodeWorker | None:
    try:
        worker = EncodeWorker(device_id)
    except WorkerUnavailable as exc:
        with _lock:
            _unavailable[device_id] = str(exc)
        return None
    with _lock:
        _all.append(worker)
    return worker


def prestart(device_id: int) -> None:
    """Start a worker on ``device_id`` in the background (if none is free or starting), so
    that a later run finds it ready: starting one takes a few seconds."""
    with _lock:
        if device_id in _unavailable or _free.get(device_id) or device_id in _starting:
            return
        done = _starting[device_id] = threading.Event()

    def start() -> None:
        try:
            worker = _start(device_id)
            if worker is not None:
                with _lock:
                    _free.setdefault(device_id, []).append(worker)
        finally:
            with _lock:
                _starting.pop(device_id, None)
            done.set()

    threading.Thread(target=start, name="gpuimg-start-encode-worker", daemon=True).start()


def take(device_id: int, wait: bool = True) -> EncodeWorker | None:
    """A free worker on ``device_id``, or None where workers cannot run. ``wait=False``:
    only one that is ready now (one is started in the background for next time)."""
    while True:
        with _lock:
            if device_id in _unavailable:
                return None
            free = _free.get(device_id)
            if free:
                return free.pop()
            starting = _starting.get(device_id)
        if not wait:
            prestart(device_id)
            return None
        if starting is None:
            return _start(device_id)
        starting.wait()


def give_back(worker: EncodeWorker) -> None:
    """Return a worker after a run; one left in an unknown state is stopped instead."""
    worker.retired.clear()  # its replacements were mapped: the worker answered everything sent
    if not worker.healthy or not worker.alive():
        worker.stop()
        return
    with _lock:
        _free.setdefault(worker.device_id, []).append(worker)


@atexit.register
def _stop_all() -> None:
    for worker in list(_all):
        try:
            worker.stop()
        except Exception:
            pass


if __name__ == "__main__":  # the worker process: python -m gpuimg._encode_worker ADDRESS DEVICE
    _worker_main(Client(sys.argv[1], authkey=bytes.fromhex(os.environ.pop("GPUIMG_WORKER_AUTHKEY"))), int(sys.argv[2]))
