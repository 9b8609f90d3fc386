"""Effects: ``corner_radius``, ``drop_shadow`` and ``stroke``, with their NumPy twins
(``corner_coverage``, ``bounded_distance``)."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ArgumentError
from ...image import Image, ImageBatch, images_of
from ..filters import gaussian_blur  # the blur belongs to the filters family
from ..registry import register_op
from .._engine.args import Source, check_range, check_src, number, numbers, per_sample, uniform_channels
from .._engine.batch import prepare_out
from ._common import _color, _rgba
from ._kernels import ALPHA_SHAPE, _launch, _max_pixels, _params
from .layers import _place_numpy, over_numpy


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
        raise ArgumentError(f"radius={radius!r} must be non-negative")
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
    check_src(src, channels=(3, 4), dtypes=["uint8"])
    if not number(blur_sigma, "blur_sigma") > 0:
        raise ArgumentError(f"blur_sigma={blur_sigma!r} must be positive")
    check_range(opacity, "opacity", 0.0, 1.0)
    dy, dx = numbers(offset, "offset", 2, integer=True)
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
        raise ArgumentError(f"position={position!r} is not a stroke position; use 'outside' or 'inside'")
    width = number(width, "width", low=0)
    rgba = _color(color, 4)
    images = images_of(src)
    # No two pixel centres of an image are h + w apart: a wider stroke covers exactly what
    # that one does, and the distance passes stay bounded by the image.
    width = min(width, float(max(im.height + im.width for im in images)))
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
