"""Painting: ``fill`` (a colour into a rectangle) and ``gradient`` (linear or radial, any
number of colour stops), with their NumPy twins."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ArgumentError
from ...image import Image, images_of
from ..registry import register_op
from .._engine.args import Source, check_src, number, numbers, uniform_channels
from .._engine.batch import prepare_out
from ._common import _color, _copied, _store
from ._kernels import _launch, _max_pixels, _params


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
    top, left, h, w = numbers(region, "region", 4, integer=True) if region is not None else (0, 0, 1 << 30, 1 << 30)
    if h < 0 or w < 0:
        raise ArgumentError(f"region={region!r} needs a non-negative height and width")
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



def _stops(stops: Sequence[Any]) -> np.ndarray:
    """Colour stops as sorted rows (position, r, g, b, a); bare colours are spaced evenly."""
    if not isinstance(stops, Sequence) or isinstance(stops, str) or len(stops) < 1:
        raise ArgumentError(f"stops={stops!r} must be a list of colours or (position, colour) pairs")
    pairs = []
    for i, stop in enumerate(stops):
        if isinstance(stop, tuple) and len(stop) == 2 and np.ndim(stop[1]) == 1:
            pos, col = float(stop[0]), stop[1]
        else:
            pos, col = (i / (len(stops) - 1) if len(stops) > 1 else 0.0), stop
        if not 0.0 <= pos <= 1.0:
            raise ArgumentError(f"stops[{i}] has position {pos}; positions must be in [0, 1]")
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
        raise ArgumentError(f"kind={kind!r} is not a gradient kind; use 'linear' or 'radial'")
    angle = number(angle, "angle")
    if radius is not None and not number(radius, "radius") > 0:
        raise ArgumentError(f"radius={radius!r} must be positive")
    if center is not None:
        center = numbers(center, "center", 2)
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
