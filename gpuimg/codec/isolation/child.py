"""The isolated decoder's child process (private; started by :mod:`gpuimg.codec.isolation.pool`).

It runs nvImageCodec's CPU backends on encoded files the parent placed in a shared memory
block and decodes them into that block, so that a crash, a runaway allocation or a hang in
a third-party codec costs this process, never the caller's. It imports only NumPy and
nvImageCodec: a restart after a crash is quick.

Protocol (pickled tuples over the socket the parent passed as fd ``argv[1]``):

    parent -> child   ("map", nbytes) + the memfd sent with SCM_RIGHTS    the shared block
                      ("decode", items, budget)   items: (in_off, in_len, out_off, h, w, c,
                                                  dtype, sample_format, color_spec, any_depth, codec)
                      ("stop",)
    child -> parent   ("ready",) after start; ("mapped",); ("decoded", statuses)

With ``GPUIMG_ISOLATION_SELFTEST=1`` in its environment, an input holding
``gpuimg-selftest-crash``, ``-hang`` or ``-memory`` makes the child crash, hang or allocate
past its limit while decoding it, as a hostile file would (the containment tests use it).

``codec`` is "" for nvImageCodec's codecs, or the name of a format Pillow decodes ("gif",
"ico", ...: :func:`gpuimg.codec.pillow.decode`, Pillow imported on the first such item).

A status is "ok", "failed" (nvImageCodec returned nothing), ("failed", reason) (Pillow
refused it), "memory" (the decode hit the
address-space budget) or ("unwritten", bytes): the decoder reported success but left that
many bytes of the target as they were. Before decoding, 32 bytes of every 512 of each
target are set to a random pattern made at start; a block still equal to it afterwards
was not written (a real image matches 32 random bytes with probability 2**-256), so any
unwritten run of 1 KB or more is found at a sixteenth of the cost of checking it all.
"""

from __future__ import annotations

import mmap
import os
import resource
import signal
import socket
import sys
import time
from multiprocessing.connection import Connection

import numpy as np

_BLOCK = 32
_STRIDE = 512


def _status_bytes(field: bytes) -> int:
    """A size from /proc/self/status (``b"VmSize:"``, ``b"VmPeak:"``) in bytes."""
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0



class _Child:
    def __init__(self, threads: int):
        from gpuimg.codec._nvimgcodec import load  # the import without its loader noise

        nv = load()
        self.nv = nv
        self.decoder = nv.Decoder(
            device_id=nv.NVIMGCODEC_DEVICE_CPU_ONLY, max_num_cpu_threads=threads, backends=[nv.Backend(nv.CPU_ONLY)]
        )
        self.block: np.ndarray | None = None
        rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
        self.canary = rng.integers(0, 256, (2048, _BLOCK), dtype=np.uint8)

    def map(self, fd: int, nbytes: int) -> None:
        self.block = None  # the old mapping goes when its last view does
        self.block = np.frombuffer(mmap.mmap(fd, nbytes), np.uint8)
        os.close(fd)

    def _sampled(self, flat: np.ndarray) -> np.ndarray:
        """The canary blocks of ``flat``: 32 bytes of every 512 (every 32 bytes of a small
        target), so any unwritten run of 1 KB or more holds one whole block."""
        stride = _BLOCK if flat.size < (16 << 10) else _STRIDE
        rows = flat.size // stride
        return flat[: rows * stride].reshape(rows, stride)[:, :_BLOCK]

    def fill(self, flat: np.ndarray) -> None:
        blocks, k = self._sampled(flat), len(self.canary)
        for start in range(0, len(blocks), k):
            blocks[start : start + k] = self.canary[: len(blocks) - start]

    def unwritten(self, flat: np.ndarray) -> int:
        """Bytes of ``flat`` (at least) that still hold the canary: never written."""
        blocks, k = self._sampled(flat), len(self.canary)
        same = 0
        for start in range(0, len(blocks), k):
            part = blocks[start : start + k]
            same += int((part == self.canary[: len(part)]).all(axis=1).sum())
        return same * _BLOCK

    def _alone(self, stream: object, image: object, params: object) -> object:
        try:
            return self.decoder.decode([stream], images=[image], params=params)[0]
        except MemoryError:
            return "memory"
        except Exception:
            return None

    def _pillow(self, item: tuple, codec: str, fmt: str, limit: int) -> object:
        """Decode one item of a format Pillow decodes into its target; its status."""
        from gpuimg.codec.pillow import PillowFailed, decode

        assert self.block is not None
        in_off, in_len, out_off, h, w, c = item[:6]
        flat = self.block[out_off : out_off + h * w * c]
        self.fill(flat)
        data = self.block[in_off : in_off + in_len].tobytes()
        try:
            if _SELFTEST:
                _selftest([self.block[in_off : in_off + in_len]], limit)
            px = decode(data, codec, h, w, c, bgr=fmt == "I_BGR")
        except MemoryError:
            return "memory"
        except PillowFailed as exc:
            return ("failed", str(exc))
        flat.reshape(h, w, c)[...] = px
        missing = self.unwritten(flat)
        return ("unwritten", missing) if missing else "ok"

    def decode(self, items: list[tuple], budget: int) -> list:
        nv, block = self.nv, self.block
        assert block is not None
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = _status_bytes(b"VmSize:") + budget
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        try:
            groups: dict[tuple, list[int]] = {}
            for k, item in enumerate(items):
                groups.setdefault(item[6:], []).append(k)
            statuses: list = ["failed"] * len(items)
            for (dtype, fmt, spec, any_depth, codec), members in groups.items():
                if codec:
                    for k in members:
                        statuses[k] = self._pillow(items[k], codec, fmt, limit)
                    continue
                streams, images, flats = [], [], []
                for k in members:
                    in_off, in_len, out_off, h, w, c = items[k][:6]
                    itemsize = np.dtype(dtype).itemsize
                    flat = block[out_off : out_off + h * w * c * itemsize]
                    self.fill(flat)
                    flats.append(flat)
                    streams.append(nv.CodeStream(block[in_off : in_off + in_len]))
                    images.append(nv.as_image(flat.view(dtype).reshape(h, w, c)))
                params = nv.DecodeParams(
                    apply_exif_orientation=False,
                    color_spec=getattr(nv.ColorSpec, spec),
                    allow_any_depth=any_depth,
                    sample_format=getattr(nv.SampleFormat, fmt),
                )
                peak = _status_bytes(b"VmPeak:")
                try:
                    if _SELFTEST:
                        _selftest([block[items[k][0] : items[k][0] + items[k][1]] for k in members], limit)
                    results = self.decoder.decode(streams, images=images, params=params)
                except MemoryError:
                    results = ["memory"] * len(members)
                except Exception:  # an argument error fails the call: try each item alone
                    results = [self._alone(cs, img, params) for cs, img in zip(streams, images)]
                # A refused allocation is the likely reason for a failure when this call
                # pushed the address space to within 64 MB of the limit.
                after = _status_bytes(b"VmPeak:")
                near_limit = after > peak and after > limit - (64 << 20)
                for k, flat, result in zip(members, flats, results):
                    if result is None:
                        statuses[k] = "memory" if near_limit else "failed"
                    elif isinstance(result, str):
                        statuses[k] = result
                    else:
                        missing = self.unwritten(flat)
                        statuses[k] = ("unwritten", missing) if missing else "ok"
            return statuses
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


_SELFTEST = os.environ.get("GPUIMG_ISOLATION_SELFTEST") == "1"


def _selftest(inputs: list[np.ndarray], limit: int) -> None:
    for data in inputs:
        raw = data.tobytes()
        if b"gpuimg-selftest-crash" in raw:
            os.kill(os.getpid(), signal.SIGSEGV)
        if b"gpuimg-selftest-hang" in raw:
            while True:
                time.sleep(60)
        if b"gpuimg-selftest-memory" in raw:
            bytearray(limit)  # more than the budget left: MemoryError


def main() -> None:
    # Ctrl-C and SIGTERM sent to the whole process group (a terminal, `timeout`, a
    # scheduler) are the parent's to handle: it finishes or stops the run, then this
    # process, which would otherwise die mid-item and look like a crash of the codec.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=int(sys.argv[1]))
    conn = Connection(os.dup(sock.fileno()))
    child = _Child(int(sys.argv[2]))
    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # the parent is gone: nothing to answer
            return
        if msg[0] == "map":
            _, fds, _, _ = socket.recv_fds(sock, 1, 1)
            child.map(fds[0], msg[1])
            conn.send(("mapped",))
        elif msg[0] == "decode":
            conn.send(("decoded", child.decode(msg[1], msg[2])))
        else:
            return


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, ConnectionError, EOFError):
        pass  # the parent is gone (killed, or it stopped without a goodbye): nobody to answer
