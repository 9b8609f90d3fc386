"""Compositing and drawing on RGBA images (straight alpha): fill, gradient, blend, paste,
grid, collage, corner_radius, drop_shadow, stroke.

Every kernel reads the kernel table of its operands, so one launch serves a whole
ImageBatch (per-sample parameters where natural). Blending uses Pillow's integer
``alpha_composite`` arithmetic, so ``blend`` equals ``Image.alpha_composite`` bit for bit
wherever the layers overlap. Edges are antialiased from coverage: rounded corners from
the distance to the corner circle, strokes from a separable squared-distance transform of
the alpha mask (exact Euclidean distances up to the stroke width, O(width) work per pixel).

Example:
    >>> import numpy as np, gpuimg
    >>> from gpuimg.ops import compose
    >>> canvas = gpuimg.Image.empty(4, 6, 4, device="cpu")
    >>> compose.fill(canvas, (255, 0, 0, 255), out=canvas).numpy()[0, 0].tolist()
    [255, 0, 0, 255]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..image import Image, ImageBatch, images_of
from .registry import register_op
from ._engine.args import Source, check_border, check_range, check_src, per_sample, uniform_channels
from ._engine.batch import BLOCK, batch_view, grid_for, kernel_args, launch, pairs, prepare_out, readable_source, same_memory, span_bytes
from ._engine.kernels import PRELUDE as CUDA_PRELUDE, border_index, compiled as raw_kernel, current_config, dtype_entries, dtype_suffix, store_numpy
from ._engine.params import Blob, pack, upload, upload_blob

__all__ = ["fill", "gradient", "blend", "paste", "grid", "collage", "corner_radius", "drop_shadow", "stroke"]

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


# ----------------------------------------------------------------------------- NumPy twins


def _div255(a: np.ndarray) -> np.ndarray:
    return ((a >> 8) + a) >> 8


def over_numpy(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Pillow's alpha_composite of ``s`` over ``d`` ((..., 4) uint32 arrays) as the kernel does it."""
    s = s.astype(np.int64)
    d = d.astype(np.int64)
    sa, da = s[..., 3:4], d[..., 3:4]
    outa255 = sa * 255 + da * (255 - sa)
    coef1 = np.where(sa > 0, sa * 255 * 255 * 128 // np.maximum(outa255, 1), 0)
    coef2 = 255 * 128 - coef1
    rgb = _div255(s[..., :3] * coef1 + d[..., :3] * coef2 + (0x80 << 7)) >> 7
    out = np.concatenate([rgb, _div255(outa255 + 0x80)], axis=-1)
    return np.where(sa > 0, out, d)


def _rgba(arr: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> (H, W, 4) int64 as the kernels' ``load`` reads it."""
    a = arr.astype(np.int64)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.shape[2] == 3:
        a = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.int64)], axis=2)
    return a


def _store(arr: np.ndarray, channels: int) -> np.ndarray:
    return arr[..., :1].astype(np.uint8) if channels == 1 else arr[..., :channels].astype(np.uint8)


# ----------------------------------------------------------------------------- colours


def _color(color: Any, channels: int, name: str = "color") -> tuple[int, int, int, int]:
    """A colour as RGBA ints: a gray level, (r, g, b) or (r, g, b, a) in 0..255."""
    arr = np.atleast_1d(np.asarray(color, np.float64))
    if arr.ndim != 1 or arr.size not in (1, 3, 4) or not np.all((arr >= 0) & (arr <= 255)):
        raise ValueError(f"{name}={color!r} must be a gray level, (r, g, b) or (r, g, b, a) with values in [0, 255]")
    vals = np.rint(arr).astype(int).tolist()
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) == 3:
        vals.append(255)
    return tuple(vals)  # type: ignore[return-value]


# ----------------------------------------------------------------------------- fill and gradient


@register_op
def fill(dst: Source, color: Any, region: tuple[int, int, int, int] | None = None, *, out: Source | None = None, stream: Any = None) -> Source:
    """Fill ``region`` = (top, left, height, width) (default: everything, clipped) with ``color``.

    ``color``: gray level, (r, g, b) or (r, g, b, a). ``out=dst`` fills in place; otherwise
    ``dst`` is copied to a new image first.

    Example:
        >>> import gpuimg
        >>> img = gpuimg.Image.empty(4, 4, 3, device="cpu")
        >>> fill(img, 7, out=img).numpy()[3, 3].tolist()
        [7, 7, 7]
    """
    check_src(dst, "dst", dtypes=["uint8"])
    out = _copied(dst, out, stream)
    top, left, h, w = region if region is not None else (0, 0, 1 << 30, 1 << 30)
    if h < 0 or w < 0:
        raise ValueError(f"region={region!r} needs a non-negative height and width")
    rgba = _color(color, 4)
    rows = [(top, left, top + h, left + w, *rgba)] * len(images_of(out))
    if out.device == "cuda":
        prm = _params(rows, "fill", out, stream)
        _launch("fill", _max_pixels(out), len(images_of(out)), (out.data_ptr, out.kernel_table(stream), prm, np.int32(uniform_channels(out))), stream)
    else:
        for im in images_of(out):
            y0, x0 = max(0, top), max(0, left)
            y1, x1 = min(im.height, top + h), min(im.width, left + w)
            if y1 > y0 and x1 > x0:
                im.array[y0:y1, x0:x1] = _store(np.array(rgba)[None, None], im.channels)
    return out


def _copied(dst: Source, out: Source | None, stream: Any) -> Source:
    """``out`` holding ``dst``'s pixels (nothing to do when ``out`` is ``dst``)."""
    if out is not None and (out is dst or same_memory(out, dst)):
        return dst
    return dst.copy(out=out, stream=stream)


def _stops(stops: Sequence[Any]) -> np.ndarray:
    """Colour stops as sorted rows (position, r, g, b, a); bare colours are spaced evenly."""
    if not isinstance(stops, Sequence) or isinstance(stops, str) or len(stops) < 1:
        raise ValueError(f"stops={stops!r} must be a list of colours or (position, colour) pairs")
    pairs = []
    for i, stop in enumerate(stops):
        if isinstance(stop, tuple) and len(stop) == 2 and np.ndim(stop[1]) == 1:
            pos, col = float(stop[0]), stop[1]
        else:
            pos, col = (i / (len(stops) - 1) if len(stops) > 1 else 0.0), stop
        if not 0.0 <= pos <= 1.0:
            raise ValueError(f"stops[{i}] has position {pos}; positions must be in [0, 1]")
        pairs.append((pos, *_color(col, 4, f"stops[{i}]")))
    pairs.sort(key=lambda row: row[0])
    return np.asarray(pairs, np.float32)


def _gradient_rows(images: list[Image], kind: str, angle: float, center: Any, radius: Any) -> np.ndarray:
    rows = []
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    for im in images:
        h, w = im.height, im.width
        if kind == "linear":
            extent = max((abs(cos) * w + abs(sin) * h) / 2.0, 1e-6)
            rows.append((0.0, cos, sin, w / 2.0, h / 2.0, extent))
        else:
            cx, cy = (w / 2.0, h / 2.0) if center is None else (float(center[1]) * w, float(center[0]) * h)
            far = max(math.hypot(cx - x, cy - y) for x in (0, w) for y in (0, h))
            rows.append((1.0, cos, sin, cx, cy, max(far if radius is None else float(radius) * far, 1e-6)))
    return np.asarray(rows, np.float32)


@register_op
def gradient(
    dst: Source,
    stops: Sequence[Any],
    kind: str = "linear",
    angle: float = 0.0,
    center: tuple[float, float] | None = None,
    radius: float | None = None,
    *,
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Paint a linear or radial gradient through any number of colour ``stops``.

    ``stops``: colours (spread evenly) or ``(position, colour)`` pairs, positions in [0, 1].
    Linear: ``angle`` in degrees (0 left to right, 90 top to bottom), spanning the image so
    the corners reach the end stops. Radial: ``center`` = (y, x) as fractions of the image
    (default the middle), ``radius`` a fraction of the distance to the farthest corner
    (default 1). Colours are interpolated in straight RGBA and rounded.

    Example:
        >>> import gpuimg
        >>> img = gpuimg.Image.empty(1, 4, 3, device="cpu")
        >>> gradient(img, [(0, 0, 0), (255, 255, 255)], out=img).numpy()[0, :, 0].tolist()
        [32, 96, 159, 223]
    """
    check_src(dst, "dst", dtypes=["uint8"])
    if kind not in ("linear", "radial"):
        raise ValueError(f"kind={kind!r} is not a gradient kind; use 'linear' or 'radial'")
    if radius is not None and not radius > 0:
        raise ValueError(f"radius={radius!r} must be positive")
    table = _stops(stops)
    out = prepare_out(dst, out)
    images = images_of(out)
    rows = _gradient_rows(images, kind, float(angle), center, radius)
    if out.device == "cuda":
        prm = _params(rows, "gradient", out, stream)
        st = _params(table, "gradient.stops", out, stream)
        args = (out.data_ptr, out.kernel_table(stream), prm, st, np.int32(len(table)), np.int32(uniform_channels(out)))
        _launch("gradient", _max_pixels(out), len(images), args, stream)
    else:
        for im, row in zip(images, rows):
            im.array[...] = _store(_gradient_numpy(im.height, im.width, row, table), im.channels)
    return out


def _gradient_numpy(h: int, w: int, row: np.ndarray, stops: np.ndarray) -> np.ndarray:
    f = np.float32
    y, x = np.mgrid[:h, :w].astype(np.float32)
    dx, dy = (x + f(0.5)) - row[3], (y + f(0.5)) - row[4]
    if row[0] == 0:
        t = (dx * row[1] + dy * row[2] + row[5]) / (f(2) * row[5])
    else:
        t = np.sqrt(dx * dx + dy * dy) / row[5]
    pos = stops[:, 0]
    k = np.clip(np.searchsorted(pos[1:-1], t, side="left"), 0, max(len(pos) - 2, 0)) if len(pos) > 1 else np.zeros_like(t, int)
    a = stops[k]
    b = stops[np.minimum(k + 1, len(pos) - 1)]
    span = b[..., 0] - a[..., 0]
    u = np.where(span > 0, (t - a[..., 0]) / np.where(span > 0, span, f(1)), f(1))
    u = np.where(t <= pos[0], f(0), u)
    last = t >= pos[-1]
    a = np.where(last[..., None], stops[-1], a)
    b = np.where(last[..., None], stops[-1], b)
    u = np.where(last, f(0), u)
    col = a[..., 1:] + (b[..., 1:] - a[..., 1:]) * u[..., None]
    return np.clip(np.rint(col), 0, 255)


# ----------------------------------------------------------------------------- blend and paste


_BLEND_CHANNELS = {(3, 3), (3, 4), (4, 3), (4, 4)}


def _place(dst: Source, src: Source, top: Any, left: Any, opacity: Any, mode: str, out: Source | None, stream: Any) -> Source:
    check_src(dst, "dst", dtypes=["uint8"])
    check_src(src, "src", dtypes=["uint8"])
    if src.device != dst.device:
        raise ValueError(f"src is on {src.device!r} but dst is on {dst.device!r}")
    cs, cd = uniform_channels(src), uniform_channels(dst)
    if mode == "over" and (cs, cd) not in _BLEND_CHANNELS:
        raise ValueError(f"src has {cs} channels and dst {cd}; blend takes RGB or RGBA for both (convert gray first)")
    if mode == "paste" and cs != cd and (cs, cd) not in _BLEND_CHANNELS:
        raise ValueError(f"src has {cs} channels and dst {cd}; paste needs the same count (or RGB/RGBA)")
    layers = images_of(src)
    per_layer = isinstance(dst, ImageBatch)
    if per_layer and len(dst) != len(layers):
        raise ValueError(f"src has {len(layers)} images and dst {len(dst)}; give one layer per image of a dst batch")
    check_range(opacity, "opacity", 0.0, 1.0)
    n = len(layers)
    rows = np.stack([per_sample(top, n, "top"), per_sample(left, n, "left"), per_sample(opacity, n, "opacity")], axis=1)
    out = _copied(dst, out, stream)
    if out.device == "cuda":
        prm = _params(rows, "place", out, stream)
        args = (src.data_ptr, src.kernel_table(stream), out.data_ptr, out.kernel_table(stream), prm,
                np.int32(per_layer), np.int32(cs), np.int32(cd), np.int32(mode == "over"))
        _launch("composite", _max_pixels(src), n, args, stream)
    else:
        targets = images_of(out)
        for i, layer in enumerate(layers):
            _place_numpy(layer.array, targets[i if per_layer else 0].array, int(rows[i, 0]), int(rows[i, 1]), float(rows[i, 2]), mode)
    return out


def _place_numpy(s: np.ndarray, d: np.ndarray, top: int, left: int, opacity: float, mode: str) -> None:
    y0, x0 = max(0, -top), max(0, -left)
    y1, x1 = min(s.shape[0], d.shape[0] - top), min(s.shape[1], d.shape[1] - left)
    if y1 <= y0 or x1 <= x0:
        return
    a = _rgba(s[y0:y1, x0:x1])
    region = d[y0 + top : y1 + top, x0 + left : x1 + left]
    if mode == "over":
        if opacity < 1.0:
            a[..., 3] = np.rint(a[..., 3].astype(np.float32) * np.float32(opacity)).astype(np.int64)
        a = over_numpy(a, _rgba(region))
    region[...] = _store(a, d.shape[2])


@register_op(image_params=("src",))
def blend(
    dst: Source,
    src: Source,
    top: int | Sequence[int] = 0,
    left: int | Sequence[int] = 0,
    opacity: float | Sequence[float] = 1.0,
    *,
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """``src`` over ``dst`` at (top, left) (Porter-Duff over, straight alpha), clipped at the edges.

    Pillow's ``Image.alpha_composite`` arithmetic, so the overlap equals Pillow bit for bit
    (``opacity`` scales the source alpha first, rounded). Negative offsets are allowed.
    RGB layers count as opaque; an RGB ``dst`` stays RGB. ``src`` may be an ImageBatch of
    layers over one ``dst`` (non-overlapping, per-layer offsets; one launch) or over a ``dst``
    batch of the same length (layer i over image i). ``out=dst`` blends in place.

    Example:
        >>> import numpy as np, gpuimg
        >>> bg = gpuimg.Image.from_array(np.zeros((2, 2, 4), np.uint8))
        >>> fg = gpuimg.Image.from_array(np.full((1, 1, 4), 255, np.uint8))
        >>> blend(bg, fg, top=1, left=-0).numpy()[1, 0].tolist()
        [255, 255, 255, 255]
    """
    return _place(dst, src, top, left, opacity, "over", out, stream)


@register_op(image_params=("src",))
def paste(
    dst: Source,
    src: Source,
    top: int | Sequence[int] = 0,
    left: int | Sequence[int] = 0,
    *,
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Copy ``src`` into ``dst`` at (top, left) without blending, clipped (same rules as :func:`blend`).

    Example:
        >>> import numpy as np, gpuimg
        >>> bg = gpuimg.Image.from_array(np.zeros((2, 3, 3), np.uint8))
        >>> fg = gpuimg.Image.from_array(np.full((2, 2, 3), 9, np.uint8))
        >>> paste(bg, fg, left=2).numpy()[:, :, 0].tolist()
        [[0, 0, 9], [0, 0, 9]]
    """
    return _place(dst, src, top, left, 1.0, "paste", out, stream)


@register_op(step=False)
def grid(
    images: ImageBatch | Sequence[Image],
    columns: int,
    spacing: int = 0,
    background: Any = (0, 0, 0, 0),
    *,
    out: Image | None = None,
    stream: Any = None,
) -> Image:
    """Tile images in rows of ``columns`` cells (cell = largest image, images centred).

    An ImageBatch is placed with one launch (plus one fill); a list costs one launch each.

    Example:
        >>> import numpy as np, gpuimg
        >>> b = gpuimg.ImageBatch.from_images([np.full((2, 2, 3), v, np.uint8) for v in (1, 2, 3)])
        >>> grid(b, columns=2, spacing=1).shape
        (5, 5, 3)
    """
    items = images_of(images) if isinstance(images, ImageBatch) else list(images)
    if not items:
        raise ValueError("images must hold at least one image")
    if not isinstance(columns, int) or columns < 1:
        raise ValueError(f"columns={columns!r} must be a positive int")
    if not isinstance(spacing, int) or spacing < 0:
        raise ValueError(f"spacing={spacing!r} must be a non-negative int")
    cell_h, cell_w = max(im.height for im in items), max(im.width for im in items)
    rows_n = -(-len(items) // columns)
    channels = items[0].channels
    shape = (rows_n * cell_h + (rows_n - 1) * spacing, min(columns, len(items)) * cell_w + (min(columns, len(items)) - 1) * spacing, channels)
    canvas = prepare_out(items[0], out, shape)
    fill(canvas, background, out=canvas, stream=stream)
    tops = [(i // columns) * (cell_h + spacing) + (cell_h - im.height) // 2 for i, im in enumerate(items)]
    lefts = [(i % columns) * (cell_w + spacing) + (cell_w - im.width) // 2 for i, im in enumerate(items)]
    if isinstance(images, ImageBatch):
        return _place(canvas, images, tops, lefts, 1.0, "paste", canvas, stream)
    for im, t, l in zip(items, tops, lefts):
        _place(canvas, im, t, l, 1.0, "paste", canvas, stream)
    return canvas


@register_op(step=False)
def collage(
    images: Sequence[Image],
    positions: Sequence[tuple[int, int]],
    size: tuple[int, int],
    background: Any = (0, 0, 0, 0),
    *,
    out: Image | None = None,
    stream: Any = None,
) -> Image:
    """Blend images onto a new RGBA canvas of ``size`` = (height, width) at ``positions`` (top, left),
    in order (later images over earlier ones; overlaps and off-canvas parts allowed).

    Example:
        >>> import numpy as np, gpuimg
        >>> a = gpuimg.Image.from_array(np.full((2, 2, 4), 255, np.uint8))
        >>> int(collage([a, a], [(0, 0), (1, 1)], (3, 3)).numpy()[2, 2, 3])
        255
    """
    items = list(images)
    if len(items) != len(positions):
        raise ValueError(f"positions has {len(positions)} entries for {len(items)} images")
    if not items:
        raise ValueError("images must hold at least one image")
    h, w = size
    canvas = prepare_out(items[0], out, (int(h), int(w), 4))
    fill(canvas, background, out=canvas, stream=stream)
    for im, (t, l) in zip(items, positions):
        _place(canvas, im, t, l, 1.0, "over", canvas, stream)
    return canvas


# ----------------------------------------------------------------------------- corner radius


@register_op
def corner_radius(src: Source, radius: float | Sequence[float], *, out: Source | None = None, stream: Any = None) -> Source:
    """Round the corners: alpha times the pixel's coverage by the rounded rectangle (antialiased).

    ``radius`` in pixels (one per image allowed), clamped to half the shorter side. RGB in
    gives RGBA out. ``out=src`` works in place for RGBA.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((8, 8, 4), 255, np.uint8))
        >>> a = corner_radius(img, 4).numpy()[..., 3]
        >>> int(a[0, 0]), int(a[4, 4])
        (0, 255)
    """
    check_src(src, channels=(3, 4), dtypes=["uint8"])
    images = images_of(src)
    radii = per_sample(radius, len(images), "radius", np.float64)
    if np.any(radii < 0) or not np.all(np.isfinite(radii)):
        raise ValueError(f"radius={radius!r} must be non-negative")
    radii = np.minimum(radii, [min(im.height, im.width) / 2.0 for im in images]).astype(np.float32)
    shapes = [(im.height, im.width, 4) for im in images] if isinstance(src, ImageBatch) else (src.height, src.width, 4)
    out = prepare_out(src, out, shapes)
    cs = uniform_channels(src)
    if src.device == "cuda":
        prm = _params(radii, "corners", src, stream)
        args = (src.data_ptr, src.kernel_table(stream), out.data_ptr, out.kernel_table(stream), prm, np.int32(cs))
        _launch("corners", _max_pixels(src), len(images), args, stream)
    else:
        for im, o, r in zip(images, images_of(out), radii):
            o.array[...] = _corners_numpy(im.array, float(r))
    return out


def corner_coverage(h: int, w: int, r: float) -> np.ndarray:
    """Coverage of each pixel by an h x w rectangle with corners of radius ``r`` (float32)."""
    f = np.float32
    y, x = np.mgrid[:h, :w].astype(np.float32)
    px, py = x + f(0.5), y + f(0.5)
    r = f(r)
    cx = np.minimum(np.maximum(px, r), f(w) - r)
    cy = np.minimum(np.maximum(py, r), f(h) - r)
    dist = np.sqrt((px - cx) * (px - cx) + (py - cy) * (py - cy))
    return np.where(dist > 0, np.clip(r + f(0.5) - dist, 0, 1), f(1))


def _corners_numpy(arr: np.ndarray, r: float) -> np.ndarray:
    v = _rgba(arr)
    cov = corner_coverage(arr.shape[0], arr.shape[1], r)
    v[..., 3] = np.rint(v[..., 3].astype(np.float32) * cov).astype(np.int64)
    return v.astype(np.uint8)


# ----------------------------------------------------------------------------- drop shadow

_work = threading.local()


def _work_images(name: str, like: Source, shapes: list[tuple[int, int, int]], dtype: str) -> Source:
    """A per-thread reusable Image/ImageBatch for intermediate planes (grows, never shrinks)."""
    cache = getattr(_work, "items", None)
    if cache is None:
        cache = _work.items = {}
    key = (name, like.device, isinstance(like, ImageBatch))
    item = cache.get(key)
    if isinstance(like, ImageBatch):
        if item is None:
            item = cache[key] = ImageBatch.empty(shapes, dtype=dtype, device=like.device)
        elif item.shapes != shapes or item.dtype != np.dtype(dtype):
            item.set_shapes(shapes, dtype=dtype)
        return item
    if item is None:
        item = cache[key] = Image.empty(*shapes[0], dtype=dtype, device=like.device)
    return item.set_shape(*shapes[0], dtype=dtype)


@register_op
def drop_shadow(
    src: Source,
    offset: tuple[int, int] = (8, 8),
    blur_sigma: float = 6.0,
    color: Any = (0, 0, 0),
    opacity: float = 0.5,
    expand: bool = True,
    *,
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """A drop shadow: the alpha moved by ``offset`` = (dy, dx), blurred (gaussian, ``blur_sigma``),
    tinted ``color`` at ``opacity``, with the image over it. RGBA out.

    ``expand=True`` grows the canvas so neither image nor shadow is cut (margins of
    ``ceil(3 * sigma)`` plus the offset); otherwise the canvas keeps the image's size. Uses
    :func:`gpuimg.ops.filters.gaussian_blur` for the blur (constant zero border): 3 + blur
    launches per image or batch.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((10, 10, 4), 255, np.uint8))
        >>> drop_shadow(img, offset=(2, 3), blur_sigma=1.0).shape
        (16, 16, 4)
    """
    from .filters import gaussian_blur  # the blur belongs to the filters family

    check_src(src, channels=(3, 4), dtypes=["uint8"])
    if not blur_sigma > 0:
        raise ValueError(f"blur_sigma={blur_sigma!r} must be positive")
    check_range(opacity, "opacity", 0.0, 1.0)
    dy, dx = (int(v) for v in offset)
    pad = int(math.ceil(3 * blur_sigma)) if expand else 0
    top, left = (max(0, pad - dy), max(0, pad - dx)) if expand else (0, 0)
    bottom, right = (max(0, pad + dy), max(0, pad + dx)) if expand else (0, 0)
    images = images_of(src)
    canvases = [(im.height + top + bottom, im.width + left + right, 1) for im in images]
    mask = _work_images("shadow.mask", src, canvases, "uint8")
    blurred = _work_images("shadow.blurred", src, canvases, "uint8")
    shapes = [(h, w, 4) for h, w, _ in canvases]
    out = prepare_out(src, out, shapes if isinstance(src, ImageBatch) else shapes[0])
    rgba = _color(color, 4)
    n, cs = len(images), uniform_channels(src)
    mask_rows = np.tile([top + dy, left + dx], (n, 1))
    comp_rows = np.tile([top, left, opacity, *rgba], (n, 1))
    if src.device == "cuda":
        stab = src.kernel_table(stream)
        prm = _params(mask_rows, "shadow.mask", src, stream)
        _launch("shadow_mask", max(h * w for h, w, _ in canvases), n, (src.data_ptr, stab, mask.data_ptr, mask.kernel_table(stream), prm, np.int32(cs)), stream)
        gaussian_blur(mask, blur_sigma, border="constant", value=0.0, out=blurred, stream=stream)
        prm = _params(comp_rows, "shadow.compose", src, stream)
        args = (src.data_ptr, stab, blurred.data_ptr, blurred.kernel_table(stream), out.data_ptr, out.kernel_table(stream), prm, np.int32(cs))
        _launch("shadow_compose", max(h * w for h, w, _ in canvases), n, args, stream)
        return out
    for im, m in zip(images, images_of(mask)):
        m.array[...] = 0
        alpha = im.array[..., 3:4] if cs == 4 else np.full(im.shape[:2] + (1,), 255, np.uint8)
        _place_numpy(alpha, m.array, top + dy, left + dx, 1.0, "paste")
    gaussian_blur(mask, blur_sigma, border="constant", value=0.0, out=blurred)
    for im, b, o in zip(images, images_of(blurred), images_of(out)):
        shadow = np.empty(o.shape, np.int64)
        shadow[..., :3] = rgba[:3]
        shadow[..., 3] = np.rint(b.array[..., 0].astype(np.float32) * np.float32(opacity) * np.float32(rgba[3] / 255.0))
        o.array[...] = shadow.astype(np.uint8)
        _place_numpy(im.array, o.array, top, left, 1.0, "over")
    return out


# ----------------------------------------------------------------------------- stroke


@register_op
def stroke(
    src: Source,
    width: float,
    color: Any = (0, 0, 0),
    position: str = "outside",
    *,
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """An antialiased outline of the alpha shape (alpha >= 128), ``width`` pixels wide.

    ``position="outside"``: the stroke lies around the shape, under the image (the canvas
    keeps its size: pad first to make room). ``"inside"``: along the inner edge, over the
    image, keeping its alpha (the image border counts as an edge). Coverage is
    ``clamp(width + 1 - d, 0, 1)`` with ``d`` the exact Euclidean distance between pixel
    centres (separable squared-distance transform, two launches per image or batch).

    Example:
        >>> import numpy as np, gpuimg
        >>> a = np.zeros((9, 9, 4), np.uint8); a[3:6, 3:6] = 255
        >>> s = stroke(gpuimg.Image.from_array(a), 1, (255, 0, 0)).numpy()
        >>> s[2, 4].tolist(), int(s[0, 0, 3])
        ([255, 0, 0, 255], 0)
    """
    check_src(src, channels=(3, 4), dtypes=["uint8"])
    if position not in ("outside", "inside"):
        raise ValueError(f"position={position!r} is not a stroke position; use 'outside' or 'inside'")
    if not np.isfinite(width) or width < 0:
        raise ValueError(f"width={width!r} must be a non-negative number of pixels")
    rgba = _color(color, 4)
    images = images_of(src)
    reach = int(math.ceil(width)) + 1
    inside = position == "inside"
    shapes = [(im.height, im.width, 4) for im in images]
    out = prepare_out(src, out, shapes if isinstance(src, ImageBatch) else shapes[0])
    rows = np.tile([reach, float(inside), float(width), *rgba], (len(images), 1))
    if src.device == "cuda":
        cs = uniform_channels(src)
        gplane = _work_images("stroke.g", src, [(im.height, im.width, 1) for im in images], "float32")
        stab = src.kernel_table(stream)
        prm = _params(rows, "stroke", src, stream)
        gtab = gplane.kernel_table(stream)
        _launch("stroke_cols", _max_pixels(src), len(images), (src.data_ptr, stab, gplane.data_ptr, gtab, prm, np.int32(cs)), stream)
        args = (src.data_ptr, stab, gplane.data_ptr, gtab, out.data_ptr, out.kernel_table(stream), prm, np.int32(cs))
        _launch("stroke_rows", _max_pixels(src), len(images), args, stream)
        return out
    for im, o in zip(images, images_of(out)):
        o.array[...] = _stroke_numpy(im.array, float(width), rgba, inside, reach)
    return out


def bounded_distance(features: np.ndarray, reach: int, border_is_feature: bool) -> np.ndarray:
    """Euclidean distance from each pixel centre to the nearest feature pixel, exact up to
    ``reach`` (farther pixels get a value above ``reach``): the kernels' two passes in NumPy."""
    h, w = features.shape
    padded = np.pad(features, reach, constant_values=border_is_feature)
    g = np.full((h, w), np.float32(1e9))
    for k in range(reach, -1, -1):  # nearest wins: walk inwards
        hit = padded[reach - k : reach - k + h, reach : reach + w] | padded[reach + k : reach + k + h, reach : reach + w]
        g = np.where(hit, np.float32(k), g)
    gpad = np.pad(g, ((0, 0), (reach, reach)), constant_values=np.float32(0) if border_is_feature else np.float32(1e9))
    best = np.full((h, w), np.float32(1e18))
    for k in range(-reach, reach + 1):
        gy = gpad[:, reach + k : reach + k + w]
        best = np.minimum(best, np.float32(k * k) + gy * gy)
    return np.sqrt(best)


def _stroke_numpy(arr: np.ndarray, width: float, rgba: tuple[int, ...], inside: bool, reach: int) -> np.ndarray:
    a = _rgba(arr)
    shape = a[..., 3] >= ALPHA_SHAPE
    dist = bounded_distance(~shape if inside else shape, reach, inside)
    cov = np.clip(np.float32(width) + np.float32(1) - dist, 0, 1)
    if inside:
        out = a.copy()
        if width > 0:
            k = cov * np.float32(rgba[3] / 255.0)
            mixed = np.rint(a[..., :3].astype(np.float32) + (np.asarray(rgba[:3], np.float32) - a[..., :3]) * k[..., None])
            out[..., :3] = np.where(shape[..., None], mixed, a[..., :3])
        return out.astype(np.uint8)
    if width <= 0:
        return a.astype(np.uint8)
    layer = np.empty_like(a)
    layer[..., :3] = rgba[:3]
    layer[..., 3] = np.where(shape, rgba[3], np.rint(cov * np.float32(rgba[3])).astype(np.int64))
    return over_numpy(a, layer).astype(np.uint8)
