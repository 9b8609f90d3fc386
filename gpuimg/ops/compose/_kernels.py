"""The compose family's CUDA source (its extra prelude and kernels), the compiled-kernel
lookup and the launch helper shared by every compose submodule."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...image import images_of
from .._engine.args import Source
from .._engine.batch import launch
from .._engine.kernels import PRELUDE as CUDA_PRELUDE, compiled as raw_kernel
from .._engine.params import upload

_THREADS = 256
_MAX_BLOCKS = 2048
ALPHA_SHAPE = 128  # a pixel belongs to the shape (for strokes) when its alpha is at least this

# ----------------------------------------------------------------------------- CUDA

_PRELUDE = r"""
#define DIV255(a) ((((a) >> 8) + (a)) >> 8)
// Pillow's AlphaComposite.c (PRECISION_BITS 7): s over d, straight alpha, all uint8.
__device__ __forceinline__ void over(const u32 s[4], u32 d[4]) {
    if (s[3] == 0) return;
    const u32 blend = d[3] * (255 - s[3]);
    const u32 outa255 = s[3] * 255 + blend;
    const u32 coef1 = s[3] * 255 * 255 * 128 / outa255;
    const u32 coef2 = 255 * 128 - coef1;
    for (int k = 0; k < 3; ++k) d[k] = DIV255(s[k] * coef1 + d[k] * coef2 + (0x80 << 7)) >> 7;
    d[3] = DIV255(outa255 + 0x80);
}
__device__ __forceinline__ void load(const u8* p, int c, u32 v[4]) {
    if (c == 1) { v[0] = v[1] = v[2] = p[0]; v[3] = 255; return; }
    v[0] = p[0]; v[1] = p[1]; v[2] = p[2]; v[3] = c == 4 ? p[3] : 255;
}
__device__ __forceinline__ void store(u8* p, int c, const u32 v[4]) {
    if (c == 1) { p[0] = (u8)v[0]; return; }
    p[0] = (u8)v[0]; p[1] = (u8)v[1]; p[2] = (u8)v[2]; if (c == 4) p[3] = (u8)v[3];
}
#define GRID_LOOP(n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)
"""

_KERNELS = r"""
// Fill a rectangle (clipped) of every image with a colour. prm rows: top, left, bottom, right, c0..c3.
extern "C" __global__ void fill(u8* dst, const i64* dtab, const float* prm, int c) {
    const Slot d = slot(dst, dtab, blockIdx.y); const float* P = prm + blockIdx.y * 8;
    const i64 y0 = max((i64)0, (i64)P[0]), x0 = max((i64)0, (i64)P[1]);
    const i64 y1 = min(d.height, (i64)P[2]), x1 = min(d.width, (i64)P[3]);
    if (y1 <= y0 || x1 <= x0) return;
    const i64 cw = x1 - x0;
    u32 v[4] = {(u32)P[4], (u32)P[5], (u32)P[6], (u32)P[7]};
    GRID_LOOP((y1 - y0) * cw) { const i64 y = y0 + i / cw, x = x0 + i % cw; store(d.p + y * d.pitch + x * c, c, v); }
}

// Linear (kind 0) or radial (kind 1) gradient. prm rows: kind, cos, sin, cx, cy, extent.
// stops rows: position, c0..c3 (sorted by position).
extern "C" __global__ void gradient(u8* dst, const i64* dtab, const float* prm, const float* stops, int nstops, int c) {
    const Slot d = slot(dst, dtab, blockIdx.y); const float* P = prm + blockIdx.y * 6;
    GRID_LOOP(d.height * d.width) {
        const i64 y = i / d.width, x = i % d.width;
        const float dx = ((float)x + 0.5f) - P[3], dy = ((float)y + 0.5f) - P[4];
        float t = P[0] == 0.f ? (dx * P[1] + dy * P[2] + P[5]) / (2.f * P[5]) : sqrtf(dx * dx + dy * dy) / P[5];
        const float* a = stops; const float* b = stops;
        float u = 0.f;
        if (t >= stops[(nstops - 1) * 5]) { a = b = stops + (nstops - 1) * 5; }
        else if (t > stops[0]) {
            int k = 0; while (k + 2 < nstops && stops[(k + 1) * 5] < t) ++k;
            a = stops + k * 5; b = a + 5;
            u = b[0] > a[0] ? (t - a[0]) / (b[0] - a[0]) : 1.f;
        }
        u32 v[4];
        for (int k = 0; k < 4; ++k) v[k] = (u32)fminf(fmaxf(rintf(a[1 + k] + (b[1 + k] - a[1 + k]) * u), 0.f), 255.f);
        store(d.p + y * d.pitch + x * c, c, v);
    }
}

// Layer blockIdx.y of src at (top, left) of dst (dst row 0, or row = layer when per_layer).
// mode 0: paste (copy), mode 1: Porter-Duff over with the layer's opacity. prm rows: top, left, opacity.
extern "C" __global__ void composite(const u8* src, const i64* stab, u8* dst, const i64* dtab, const float* prm,
                                     int per_layer, int cs, int cd, int mode) {
    const int L = blockIdx.y;
    const Slot s = slot(src, stab, L), d = slot(dst, dtab, per_layer ? L : 0);
    const i64 top = (i64)prm[L * 3], left = (i64)prm[L * 3 + 1]; const float op = prm[L * 3 + 2];
    const i64 y0 = max((i64)0, -top), x0 = max((i64)0, -left);
    const i64 y1 = min(s.height, d.height - top), x1 = min(s.width, d.width - left);
    if (y1 <= y0 || x1 <= x0) return;
    const i64 cw = x1 - x0;
    GRID_LOOP((y1 - y0) * cw) {
        const i64 y = y0 + i / cw, x = x0 + i % cw;
        u32 a[4], b[4];
        load(s.p + y * s.pitch + x * cs, cs, a);
        u8* q = d.p + (y + top) * d.pitch + (x + left) * cd;
        if (mode == 0) { store(q, cd, a); continue; }
        if (op < 1.f) a[3] = (u32)rintf((float)a[3] * op);
        load(q, cd, b);
        over(a, b);
        store(q, cd, b);
    }
}

// Rounded corners: alpha times the pixel's coverage by the rounded rectangle. prm: radius.
extern "C" __global__ void corners(const u8* src, const i64* stab, u8* dst, const i64* dtab, const float* prm, int cs) {
    const Slot s = slot(src, stab, blockIdx.y), d = slot(dst, dtab, blockIdx.y);
    const float r = prm[blockIdx.y];
    GRID_LOOP(s.height * s.width) {
        const i64 y = i / s.width, x = i % s.width;
        u32 v[4]; load(s.p + y * s.pitch + x * cs, cs, v);
        const float px = (float)x + 0.5f, py = (float)y + 0.5f;
        const float cx = fminf(fmaxf(px, r), (float)s.width - r), cy = fminf(fmaxf(py, r), (float)s.height - r);
        const float dist = sqrtf((px - cx) * (px - cx) + (py - cy) * (py - cy));
        const float cov = dist > 0.f ? fminf(fmaxf(r + 0.5f - dist, 0.f), 1.f) : 1.f;
        v[3] = (u32)rintf((float)v[3] * cov);
        store(d.p + y * d.pitch + x * 4, 4, v);
    }
}

// Shadow mask: the source alpha moved by (sy, sx) on the canvas, 0 elsewhere. prm rows: sy, sx.
extern "C" __global__ void shadow_mask(const u8* src, const i64* stab, u8* dst, const i64* dtab, const float* prm, int cs) {
    const Slot s = slot(src, stab, blockIdx.y), d = slot(dst, dtab, blockIdx.y);
    const i64 sy = (i64)prm[blockIdx.y * 2], sx = (i64)prm[blockIdx.y * 2 + 1];
    GRID_LOOP(d.height * d.width) {
        const i64 y = i / d.width - sy, x = i % d.width - sx;
        u8 a = 0;
        if (y >= 0 && y < s.height && x >= 0 && x < s.width) a = cs == 4 ? s.p[y * s.pitch + x * 4 + 3] : 255;
        d.p[(i / d.width) * d.pitch + i % d.width] = a;
    }
}

// Shadow (colour, blurred mask x opacity) with the image over it at (iy, ix).
// prm rows: iy, ix, opacity, c0, c1, c2, c3.
extern "C" __global__ void shadow_compose(const u8* src, const i64* stab, const u8* mask, const i64* mtab,
                                          u8* dst, const i64* dtab, const float* prm, int cs) {
    const Slot s = slot(src, stab, blockIdx.y), m = slot(mask, mtab, blockIdx.y), d = slot(dst, dtab, blockIdx.y);
    const float* P = prm + blockIdx.y * 7;
    const i64 iy = (i64)P[0], ix = (i64)P[1];
    GRID_LOOP(d.height * d.width) {
        const i64 y = i / d.width, x = i % d.width;
        u32 b[4] = {(u32)P[3], (u32)P[4], (u32)P[5], 0};
        b[3] = (u32)rintf((float)m.p[y * m.pitch + x] * P[2] * (P[6] / 255.f));
        const i64 yy = y - iy, xx = x - ix;
        if (yy >= 0 && yy < s.height && xx >= 0 && xx < s.width) { u32 a[4]; load(s.p + yy * s.pitch + xx * cs, cs, a); over(a, b); }
        store(d.p + y * d.pitch + x * 4, 4, b);
    }
}

// Stroke pass 1: per pixel, the vertical distance (within R) to the nearest feature pixel of
// its column. Features: shape pixels (outside stroke) or non-shape pixels and the rows just
// beyond the image (inside stroke). prm rows: R, inside, width, c0..c3.
__device__ __forceinline__ bool feature(const Slot& s, int cs, i64 y, i64 x, bool inside) {
    if (y < 0 || y >= s.height || x < 0 || x >= s.width) return inside;
    const bool shape = cs == 4 ? s.p[y * s.pitch + x * 4 + 3] >= ALPHA_SHAPE : true;
    return inside ? !shape : shape;
}
extern "C" __global__ void stroke_cols(const u8* src, const i64* stab, u8* gbuf, const i64* gtab, const float* prm, int cs) {
    const Slot s = slot(src, stab, blockIdx.y), g = slot(gbuf, gtab, blockIdx.y);
    const float* P = prm + blockIdx.y * 7; const int R = (int)P[0]; const bool inside = P[1] != 0.f;
    GRID_LOOP(s.height * s.width) {
        const i64 y = i / s.width, x = i % s.width;
        float best = 1e9f;
        for (int k = 0; k <= R; ++k) {
            if (feature(s, cs, y - k, x, inside) || feature(s, cs, y + k, x, inside)) { best = (float)k; break; }
        }
        ((float*)(g.p + y * g.pitch))[x] = best;
    }
}

// Stroke pass 2: d^2 = min over |k| <= R of k^2 + g(y, x + k)^2 (exact within R), then the
// antialiased stroke coverage clamp(width + 1 - d) and the composite.
extern "C" __global__ void stroke_rows(const u8* src, const i64* stab, const u8* gbuf, const i64* gtab,
                                       u8* dst, const i64* dtab, const float* prm, int cs) {
    const Slot s = slot(src, stab, blockIdx.y), g = slot(gbuf, gtab, blockIdx.y), d = slot(dst, dtab, blockIdx.y);
    const float* P = prm + blockIdx.y * 7; const int R = (int)P[0]; const bool inside = P[1] != 0.f;
    const float width = P[2];
    GRID_LOOP(s.height * s.width) {
        const i64 y = i / s.width, x = i % s.width;
        const float* grow = (const float*)(g.p + y * g.pitch);
        float best = 1e18f;
        for (int k = 0; k <= R && (float)(k * k) < best; ++k) {
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                const i64 xx = x + sgn * k;
                float gy;
                if (xx < 0 || xx >= s.width) { if (!inside) continue; gy = 0.f; } else gy = grow[xx];
                best = fminf(best, (float)(k * k) + gy * gy);
            }
        }
        const float dist = sqrtf(best);
        u32 a[4]; load(s.p + y * s.pitch + x * cs, cs, a);
        const bool shape = a[3] >= ALPHA_SHAPE;
        const float cov = fminf(fmaxf(width + 1.f - dist, 0.f), 1.f);
        u32 out[4];
        if (inside) {
            out[0] = a[0]; out[1] = a[1]; out[2] = a[2]; out[3] = a[3];
            if (shape && width > 0.f) {
                const float k = cov * (P[6] / 255.f);
                for (int c = 0; c < 3; ++c) out[c] = (u32)rintf((float)a[c] + (P[3 + c] - (float)a[c]) * k);
            }
        } else if (width <= 0.f) {
            out[0] = a[0]; out[1] = a[1]; out[2] = a[2]; out[3] = a[3];
        } else {
            // The stroke layer is solid under the shape (it shows through its soft edge).
            out[0] = (u32)P[3]; out[1] = (u32)P[4]; out[2] = (u32)P[5];
            out[3] = shape ? (u32)P[6] : (u32)rintf(cov * P[6]);
            over(a, out);
        }
        store(d.p + y * d.pitch + x * 4, 4, out);
    }
}
""".replace("ALPHA_SHAPE", str(ALPHA_SHAPE))


def _kernel(name: str) -> Any:
    # --fmad=false: the same float rounding as the NumPy twins (no fused multiply-adds).
    return raw_kernel(CUDA_PRELUDE + _PRELUDE + _KERNELS, name, ("--std=c++17", "--fmad=false"))


def _grid(work: int, count: int) -> tuple[int, int]:
    return min(_MAX_BLOCKS, max(1, -(-work // _THREADS))), count


def _launch(name: str, work: int, count: int, args: tuple[Any, ...], stream: Any) -> None:
    launch(_kernel(name), _grid(work, count), (_THREADS,), args, stream)


def _max_pixels(x: Source) -> int:
    return max(im.height * im.width for im in images_of(x))


def _params(rows: Any, name: str, src: Source, stream: Any) -> Any:
    return upload(f"compose.{name}", np.asarray(rows, np.float32).reshape(-1), src.device, stream)
