"""The JPEG scan check of a whole batch on the GPU (private).

:func:`~gpuimg.codec.containers.jpeg.scan_problem` looks at every 0xFF of a file's scans;
on the host that pass costs more than the hybrid decoder's share of a batch decode
(BENCHMARKS.md). Here the bytes of a batch, from each file's first scan on, go to the
device in one copy through a reused pinned buffer; one kernel lists, per file, the
positions of the 0xFF bytes that begin a marker (the same set as
``jpeg.markers``); one small copy and one wait bring them back; the host walk
(``jpeg.scan_walk``) then reads only those few positions. A file with more such
markers than the table holds is checked on the host instead.

Every buffer is reused (grown only for a batch larger than any before), so a steady run
allocates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..memory import Buffer
from .containers import jpeg

SOURCE = r"""
// data: the batch's bytes; starts: n + 1 offsets (file k is data[starts[k]:starts[k+1]]).
// Per file, up to cap positions (relative to its start) of 0xFF bytes followed by
// anything but 0x00, 0xFF or a restart marker; counts may exceed cap (the host then
// looks for itself).
extern "C" __global__ void jpeg_markers(const unsigned char* data, const long long* starts, int n, int cap,
                                        unsigned int* counts, unsigned int* found) {
    const long long total = starts[n];
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        if (data[i] != 0xFF) continue;
        int lo = 0, hi = n;
        while (hi - lo > 1) {
            int mid = (lo + hi) >> 1;
            if (starts[mid] <= i) lo = mid; else hi = mid;
        }
        if (i + 1 >= starts[lo + 1]) continue;  // a file's last byte begins nothing
        const unsigned char f = data[i + 1];
        if (f == 0x00 || f == 0xFF || (f >= 0xD0 && f <= 0xD7)) continue;
        const unsigned int k = atomicAdd(&counts[lo], 1u);
        if (k < (unsigned int)cap) found[(long long)lo * cap + k] = (unsigned int)(i - starts[lo]);
    }
}
"""

_THREADS = 256
_MAX_BLOCKS = 4096


class DeviceScanCheck:
    """``problems(datas, stream)``: per encoded JPEG, why its scans must not be decoded
    (the message of :func:`~gpuimg.codec.containers.jpeg.scan_problem`) or None.

    ``cap``: marker positions kept per file (files with more are checked on the host).
    """

    def __init__(self, device: str, cap: int = 256):
        import cupy

        self._cupy = cupy
        self.cap = int(cap)
        self._kernel = cupy.RawModule(code=SOURCE).get_function("jpeg_markers")
        self._host_bytes = Buffer(1 << 20, "cpu", pinned=True, purpose="the JPEG scan check's bytes")
        self._bytes = Buffer(1 << 20, device, purpose="the JPEG scan check's bytes")
        self._host_table = Buffer(8 * 65, "cpu", pinned=True, purpose="the JPEG scan check's table")
        self._table = Buffer(8 * 65, device, purpose="the JPEG scan check's table")
        self._found = Buffer(4 * 64 * (self.cap + 1), device, purpose="the JPEG scan check's results")
        self._host_found = Buffer(4 * 64 * (self.cap + 1), "cpu", pinned=True, purpose="the JPEG scan check's results")

    def problems(self, datas: Sequence[Any], stream: Any) -> list[str | None]:
        """Check ``datas`` (bytes or 1-D uint8 arrays of whole JPEG files); waits for ``stream``."""
        n = len(datas)
        if not n:
            return []
        raws = [d if isinstance(d, bytes) else bytes(memoryview(d)) for d in datas]
        firsts = [jpeg.first_scan(raw) for raw in raws]
        sizes = np.array([len(raw) - first if first >= 0 else 0 for raw, first in zip(raws, firsts)], np.int64)
        starts = np.zeros(n + 1, np.int64)
        np.cumsum(sizes, out=starts[1:])
        total = int(starts[-1])
        cap = self.cap
        self._host_bytes.ensure(total)
        self._bytes.ensure(total)
        self._host_table.ensure(8 * (n + 1))
        self._table.ensure(8 * (n + 1))
        self._found.ensure(4 * n * (cap + 1))
        self._host_found.ensure(4 * n * (cap + 1))
        staged = self._host_bytes.data
        for raw, first, a, b in zip(raws, firsts, starts[:-1], starts[1:]):
            if b > a:
                staged[a:b] = np.frombuffer(raw, np.uint8, b - a, first)
        np.frombuffer(self._host_table.data, np.int64, n + 1)[:] = starts
        runtime, ptr = self._cupy.cuda.runtime, stream.ptr
        counts_ptr = self._found.ptr + 4 * n * cap  # the counts follow the n * cap positions
        if total:
            runtime.memcpyAsync(self._bytes.ptr, self._host_bytes.ptr, total, 1, ptr)
        runtime.memcpyAsync(self._table.ptr, self._host_table.ptr, 8 * (n + 1), 1, ptr)
        runtime.memsetAsync(counts_ptr, 0, 4 * n, ptr)
        if total:
            blocks = max(1, min(_MAX_BLOCKS, -(-total // _THREADS)))
            with stream:
                self._kernel(
                    (blocks,), (_THREADS,),
                    (self._bytes.data, self._table.data, np.int32(n), np.int32(cap), self._found.data[4 * n * cap:],
                     self._found.data),
                )
        runtime.memcpyAsync(self._host_found.ptr, self._found.ptr, 4 * n * (cap + 1), 2, ptr)
        stream.synchronize()
        found = np.frombuffer(self._host_found.data, np.uint32, n * (cap + 1))
        counts = found[n * cap:]
        out: list[str | None] = []
        for k, (raw, first) in enumerate(zip(raws, firsts)):
            count = int(counts[k])
            if first < 0 or count > cap:
                out.append(jpeg.scan_problem(raw))  # no scan found by the walk, or too many markers
                continue
            markers = np.sort(found[k * cap : k * cap + count].astype(np.int64)) + first
            out.append(jpeg.scan_walk(raw, markers))
        return out
