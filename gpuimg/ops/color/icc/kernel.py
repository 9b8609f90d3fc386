"""The colour-table kernel: its CUDA source (``lut3d``: RGB tables with exact blocks, and
CMYK tables, mixed in one batch) and its launch, one per Image or ImageBatch (:func:`convert_on_gpu`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._engine.args import Source
from ..._engine.batch import batch_view, grid_for, launch
from ..._engine.cache import cache
from ..._engine.kernels import PRELUDE, compiled, dtype_suffix
from ..._engine.params import Blob, pack, upload, upload_blob
from .engine import srgb_profile
from .tables import CmykTable, ProfileTable, profile_lut

__all__ = ["SOURCE", "convert_on_gpu"]

SOURCE = PRELUDE + r"""
#define GRID 52
#define STEP 5
// One tetrahedral interpolation: the corner at t + base, neighbours ``sr, sg, sb`` apart.
__device__ __forceinline__ void tetra(const u8* t, long long base, int sr, int sg, int sb,
                                      float fr, float fg, float fb, float* out) {
    int o1, o2;  // the two inner corners of the tetrahedron the fractions select
    float w0, w1, w2;  // the fractions in decreasing order
    if (fr >= fg) {
        if (fg >= fb)      { o1 = sr; o2 = sr + sg; w0 = fr; w1 = fg; w2 = fb; }
        else if (fr >= fb) { o1 = sr; o2 = sr + sb; w0 = fr; w1 = fb; w2 = fg; }
        else               { o1 = sb; o2 = sr + sb; w0 = fb; w1 = fr; w2 = fg; }
    } else {
        if (fb >= fg)      { o1 = sb; o2 = sg + sb; w0 = fb; w1 = fg; w2 = fr; }
        else if (fb >= fr) { o1 = sg; o2 = sg + sb; w0 = fg; w1 = fb; w2 = fr; }
        else               { o1 = sg; o2 = sr + sg; w0 = fg; w1 = fr; w2 = fb; }
    }
    const int o3 = sr + sg + sb;
    #pragma unroll
    for (int c = 0; c < 3; ++c) {
        const float c0 = to_f(t[base + c]), c1 = to_f(t[base + o1 + c]);
        const float c2 = to_f(t[base + o2 + c]), c3 = to_f(t[base + o3 + c]);
        out[c] = c0 + w0 * (c1 - c0) + w1 * (c2 - c1) + w2 * (c3 - c2);
    }
}
#define CMY_GRID 86
#define CMY_STEP 3
#define K_GRID 16
#define K_STEP 17
// A CMYK pixel (ink amounts) through CMYK table t: tetrahedral in C, M, Y on the K slices
// below and above its K, then linear in K (the NumPy twin's order of operations).
__device__ __forceinline__ void cmyk_to_rgb(const u8* grid, int t, const u8* p, float* rgb) {
    const int c = p[0], m = p[1], y = p[2], k = p[3];
    const int ic = min(c / CMY_STEP, CMY_GRID - 2), im = min(m / CMY_STEP, CMY_GRID - 2), iy = min(y / CMY_STEP, CMY_GRID - 2);
    const int ik = min(k / K_STEP, K_GRID - 2);
    const float third = 1.f / 3.f, seventeenth = 1.f / 17.f;
    const float fc = (float)(c - CMY_STEP * ic) * third, fm = (float)(m - CMY_STEP * im) * third;
    const float fy = (float)(y - CMY_STEP * iy) * third, fk = (float)(k - K_STEP * ik) * seventeenth;
    const int sy = K_GRID * 3, sm = CMY_GRID * sy, sc = CMY_GRID * sm;
    const long long base = (long long)t * CMY_GRID * sc + (long long)ic * sc + im * sm + iy * sy + ik * 3;
    float low[3], high[3];
    tetra(grid, base, sc, sm, sy, fc, fm, fy, low);
    tetra(grid, base + 3, sc, sm, sy, fc, fm, fy, high);
    #pragma unroll
    for (int ch = 0; ch < 3; ++ch) rgb[ch] = low[ch] + fk * (high[ch] - low[ch]);
}
template <typename T>
__device__ __forceinline__ void lut3d(const u8* src, const i64* stab, u8* dst, const i64* dtab,
                                      const u8* coarse, const int* cells, const u8* blocks, const int* which,
                                      const u8* cmyk) {
    const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y;
    const int b = blockIdx.z;
    Slot s = slot(src, stab, b), d = slot(dst, dtab, b);
    if (x >= s.width || y >= s.height) return;
    const T* p = (const T*)(s.p + y * s.pitch) + x * s.channels;
    T* q = (T*)(d.p + y * d.pitch) + x * d.channels;
    const int k = which[b];
    if (k <= -2) {  // a CMYK image (uint8 only: 4 ink channels in, RGB out): CMYK table -2 - k
        float rgb[3];
        cmyk_to_rgb(cmyk, -2 - k, (const u8*)p, rgb);
        store(q, rgb[0]); store(q + 1, rgb[1]); store(q + 2, rgb[2]);
        return;
    }
    const T v0 = p[0], v1 = p[1], v2 = p[2];
    const T alpha = s.channels == 4 ? p[3] : (T)0;
    if (k < 0) {  // no conversion for this image: copied as it is
        q[0] = v0; q[1] = v1; q[2] = v2;
        if (s.channels == 4) q[3] = alpha;
        return;
    }
    // Positions in 8-bit levels (the table's): a uint16 value divided by 257 (IEEE
    // division, as the twin: an 8-bit level times 257 comes back exactly).
    const float unit = sizeof(T) == 2 ? 257.f : 1.f;
    const float xr = to_f(v0) / unit, xg = to_f(v1) / unit, xb = to_f(v2) / unit;
    const int ir = min((int)(xr * 0.2f), GRID - 2), ig = min((int)(xg * 0.2f), GRID - 2), ib = min((int)(xb * 0.2f), GRID - 2);
    const float ar = xr - (float)(STEP * ir), ag = xg - (float)(STEP * ig), ab = xb - (float)(STEP * ib);
    const int cell = cells[(long long)k * (GRID - 1) * (GRID - 1) * (GRID - 1) + (ir * (GRID - 1) + ig) * (GRID - 1) + ib];
    float rgb[3];
    if (cell >= 0) {  // a cell where the transform bends: LittleCMS's value at every level
        const int jr = min((int)ar, STEP - 1), jg = min((int)ag, STEP - 1), jb = min((int)ab, STEP - 1);
        const long long base = (long long)cell * 648 + (jr * 36 + jg * 6 + jb) * 3;
        tetra(blocks, base, 108, 18, 3, ar - (float)jr, ag - (float)jg, ab - (float)jb, rgb);
    } else {
        const long long base = (long long)k * GRID * GRID * GRID * 3 + (ir * GRID * GRID + ig * GRID + ib) * 3;
        tetra(coarse, base, GRID * GRID * 3, GRID * 3, 3, ar * 0.2f, ag * 0.2f, ab * 0.2f, rgb);
    }
    const float scale = sizeof(T) == 2 ? 257.f : 1.f;
    store(q, rgb[0] * scale); store(q + 1, rgb[1] * scale); store(q + 2, rgb[2] * scale);
    if (s.channels == 4) q[3] = alpha;
}
extern "C" __global__ void lut3d_u8(const u8* src, const i64* stab, u8* dst, const i64* dtab,
                                    const u8* coarse, const int* cells, const u8* blocks, const int* which, const u8* cmyk) {
    lut3d<u8>(src, stab, dst, dtab, coarse, cells, blocks, which, cmyk);
}
extern "C" __global__ void lut3d_u16(const u8* src, const i64* stab, u8* dst, const i64* dtab,
                                     const u8* coarse, const int* cells, const u8* blocks, const int* which, const u8* cmyk) {
    lut3d<u16>(src, stab, dst, dtab, coarse, cells, blocks, which, cmyk);
}
"""


# The last few sets of profiles a batch held, packed for one upload each.
_blobs = cache("color:table-blobs", max_items=4)


def _tables_blob(tables: list[ProfileTable], cmyk_tables: list[CmykTable], key: tuple) -> Blob:
    """The batch's tables in one upload: coarse tables stacked, cell indices shifted to
    the concatenated blocks, CMYK grids stacked. Kept per set of profiles, so a folder of
    one camera's photos packs and uploads once (upload_blob skips the copy for the same
    Blob)."""

    def make() -> Blob:
        shift = np.cumsum([0] + [len(t.blocks) for t in tables[:-1]])
        cells = np.stack([np.where(t.cells >= 0, t.cells + s, -1) for t, s in zip(tables, shift)]).astype(np.int32)
        blocks = np.concatenate([t.blocks for t in tables]) if any(len(t.blocks) for t in tables) else np.zeros(1, np.uint8)
        grids = np.stack([t.grid for t in cmyk_tables]) if cmyk_tables else np.zeros(1, np.uint8)
        return pack(np.stack([t.coarse for t in tables]), cells, blocks, grids)

    return _blobs.get_or_make(key, make)


def convert_on_gpu(src: Source, out: Source, tables: list[ProfileTable], cmyk_tables: list[CmykTable], key: tuple,
                   which: list[int], stream: Any) -> None:
    """``src`` through its tables into ``out``, one launch: ``which`` per image is an RGB
    table, -1 (copied) or -2 - a CMYK table; ``key`` names this set of tables."""
    if not tables:  # no RGB image to convert: a table the kernel is given but never reads
        tables, key = [profile_lut(srgb_profile())], (key, "srgb-only")
    coarse, cells, blocks, grids = upload_blob("lut3d_tables", _tables_blob(tables, cmyk_tables, key), "cuda", stream)
    dev_which = upload("lut3d_which", np.asarray(which, np.int32), "cuda", stream)
    sview, dview = batch_view(src, stream), batch_view(out, stream)
    # No multiply-add contraction: the kernel rounds as its NumPy twin does.
    kernel = compiled(SOURCE, f"lut3d_{dtype_suffix(src.dtype)}", ("--std=c++17", "--fmad=false"))
    args = (np.uint64(sview.base), sview.table, np.uint64(dview.base), dview.table, coarse, cells, blocks, dev_which, grids)
    launch(kernel, grid_for(sview), (32, 8, 1), args, stream)
