"""Proof that a GPU decode wrote its whole target (private).

nvJPEG reports success on some corrupt scans and leaves blocks of the image (its MCUs, as
narrow as 8 pixels) as the buffer held them, so a reused buffer would hand back an
earlier image's pixels. Before a GPU decode, one kernel sets every 8-byte word of each
target to a value hashed from a per-process random seed and the word's position (a real
image matches one with probability 2**-64); after it, one kernel counts per target the
words still equal to it. Any count above zero means part of that target was never
written (every hole of 15 bytes or more holds a whole word). On the GPU the two passes
cost a few microseconds per 1080p image; both serve a whole batch in one launch each;
the counts come back in one small copy, the only host synchronisation the check adds.

The tables live in reused device and pinned buffers, so a steady run allocates nothing.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...memory import Buffer

SOURCE = r"""
__device__ __forceinline__ unsigned long long canary_word(unsigned long long seed, unsigned long long i) {
    unsigned long long x = seed ^ (i * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31; x *= 0xBF58476D1CE4E5B9ull; x ^= x >> 29; x *= 0x94D049BB133111EBull; x ^= x >> 32;
    return x;
}

// table: per target (address, bytes). One thread per 8-byte word, grid-stride over
// blockIdx.x, one grid row (blockIdx.y) per target.
extern "C" __global__ void canary_fill(const unsigned long long* table, unsigned long long seed) {
    unsigned long long* p = (unsigned long long*)table[2 * blockIdx.y];
    unsigned long long words = table[2 * blockIdx.y + 1] / 8;
    for (unsigned long long w = blockIdx.x * blockDim.x + threadIdx.x; w < words; w += gridDim.x * blockDim.x)
        p[w] = canary_word(seed, w);
}

extern "C" __global__ void canary_count(const unsigned long long* table, unsigned long long seed, unsigned int* counts) {
    const unsigned long long* p = (const unsigned long long*)table[2 * blockIdx.y];
    unsigned long long words = table[2 * blockIdx.y + 1] / 8;
    unsigned int same = 0;
    for (unsigned long long w = blockIdx.x * blockDim.x + threadIdx.x; w < words; w += gridDim.x * blockDim.x)
        same += p[w] == canary_word(seed, w);
    if (same) atomicAdd(&counts[blockIdx.y], same);
}
"""

OPTIONS: tuple[str, ...] = ()
WORD = 8
_MAX_GRID_X = 512
_THREADS = 256


class Canary:
    """The fill/count pair for one device: ``fill(targets, stream)`` before a decode,
    ``unwritten(stream)`` after it gives, per target, the bytes known unwritten."""

    def __init__(self, device: str):
        import cupy

        self._cupy = cupy
        self._device = device
        self._seed = int.from_bytes(os.urandom(8), "little")
        module = cupy.RawModule(code=SOURCE, options=OPTIONS)
        self._fill = module.get_function("canary_fill")
        self._count = module.get_function("canary_count")
        self._table = Buffer(16 * 64, device, purpose="the decode canary table")
        self._counts = Buffer(4 * 64, device, purpose="the decode canary counts")
        self._host_table = Buffer(16 * 64, "cpu", pinned=True, purpose="the decode canary table")
        self._host_counts = Buffer(4 * 64, "cpu", pinned=True, purpose="the decode canary counts")
        self._n = 0
        self._grid_x = 1

    def fill(self, targets: list[tuple[int, int]], stream: Any) -> None:
        """Mark ``targets`` ((device address, bytes) each) on ``stream``."""
        cupy = self._cupy
        n = len(targets)
        self._n = n
        if not n:
            return
        for buf, size in ((self._table, 16 * n), (self._host_table, 16 * n), (self._counts, 4 * n), (self._host_counts, 4 * n)):
            buf.ensure(size)
        host = np.frombuffer(self._host_table.data, np.uint64, 2 * n)
        host[:] = np.asarray(targets, np.uint64).reshape(-1)
        ptr = stream.ptr
        cupy.cuda.runtime.memcpyAsync(self._table.ptr, self._host_table.ptr, 16 * n, 1, ptr)
        cupy.cuda.runtime.memsetAsync(self._counts.ptr, 0, 4 * n, ptr)
        most = max(nbytes for _, nbytes in targets) // WORD
        self._grid_x = max(1, min(_MAX_GRID_X, -(-most // _THREADS)))
        with stream:
            self._fill((self._grid_x, n), (_THREADS,), (self._table.data, np.uint64(self._seed)))

    def unwritten(self, stream: Any) -> list[int]:
        """Bytes (at least) of each target of the last :meth:`fill` still unwritten;
        waits for ``stream``."""
        cupy = self._cupy
        n = self._n
        if not n:
            return []
        with stream:
            self._count((self._grid_x, n), (_THREADS,), (self._table.data, np.uint64(self._seed), self._counts.data))
        cupy.cuda.runtime.memcpyAsync(self._host_counts.ptr, self._counts.ptr, 4 * n, 2, stream.ptr)
        stream.synchronize()
        return [int(c) * WORD for c in np.frombuffer(self._host_counts.data, np.uint32, n)]
