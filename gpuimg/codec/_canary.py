"""Proof that a GPU decode wrote its whole target (private).

nvJPEG reports success on some corrupt scans and leaves part of the image as the buffer
held it, so a reused buffer would hand back an earlier image's pixels. Before a GPU
decode, one kernel sets 32 bytes of every 512 of each target to a pattern made from a
per-process random seed (a real image matches 32 such bytes with probability 2**-256);
after it, one kernel counts per target the blocks still equal to it. Any count above
zero means part of that target was never written (a run of 1 KB or more always holds a
whole block). Both kernels serve a whole batch in one launch each; the counts come back
in one small copy, the only host synchronisation the check adds.

The tables live in reused device and pinned buffers, so a steady run allocates nothing.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..memory import Buffer

BLOCK = 32
STRIDE = 512
SMALL = 16 << 10  # targets smaller than this get a block every 32 bytes (checked whole)

SOURCE = r"""
__device__ __forceinline__ unsigned int canary_word(unsigned long long seed, unsigned long long i) {
    unsigned long long x = seed ^ (i * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31; x *= 0xBF58476D1CE4E5B9ull; x ^= x >> 29; x *= 0x94D049BB133111EBull; x ^= x >> 32;
    return (unsigned int)x;
}

// table: per target (address, bytes). One thread per 32-byte block, grid-stride over
// blockIdx.x, one grid row (blockIdx.y) per target.
extern "C" __global__ void canary_fill(const unsigned long long* table, unsigned long long seed) {
    unsigned long long base = table[2 * blockIdx.y], n = table[2 * blockIdx.y + 1];
    unsigned long long stride = n < SMALL ? BLOCK : STRIDE;
    unsigned long long blocks = n / stride;
    for (unsigned long long b = blockIdx.x * blockDim.x + threadIdx.x; b < blocks; b += gridDim.x * blockDim.x) {
        unsigned int* p = (unsigned int*)(base + b * stride);
        for (int w = 0; w < BLOCK / 4; ++w) p[w] = canary_word(seed, b * (BLOCK / 4) + w);
    }
}

extern "C" __global__ void canary_count(const unsigned long long* table, unsigned long long seed, unsigned int* counts) {
    unsigned long long base = table[2 * blockIdx.y], n = table[2 * blockIdx.y + 1];
    unsigned long long stride = n < SMALL ? BLOCK : STRIDE;
    unsigned long long blocks = n / stride;
    unsigned int same = 0;
    for (unsigned long long b = blockIdx.x * blockDim.x + threadIdx.x; b < blocks; b += gridDim.x * blockDim.x) {
        const unsigned int* p = (const unsigned int*)(base + b * stride);
        bool all = true;
        for (int w = 0; w < BLOCK / 4; ++w) all = all && p[w] == canary_word(seed, b * (BLOCK / 4) + w);
        same += all;
    }
    if (same) atomicAdd(&counts[blockIdx.y], same);
}
"""

OPTIONS = (f"-DBLOCK={BLOCK}", f"-DSTRIDE={STRIDE}ull", f"-DSMALL={SMALL}ull")
_THREADS = 256
_MAX_GRID_X = 64


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
        most = max(nbytes for _, nbytes in targets) // BLOCK
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
        return [int(c) * BLOCK for c in np.frombuffer(self._host_counts.data, np.uint32, n)]
