"""Layers: ``blend`` (Pillow's alpha_composite arithmetic), ``paste``, ``grid`` and
``collage``, with the NumPy twin of the over operator (``over_numpy``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ArgumentError, ArgumentTypeError, check_int
from ...image import Image, ImageBatch, images_of
from ..registry import register_op
from .._engine.args import Source, check_range, check_src, numbers, per_sample, uniform_channels
from .._engine.batch import prepare_out
from ._common import _copied, _rgba, _store
from ._kernels import _launch, _max_pixels, _params
from .paint import fill


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



# ----------------------------------------------------------------------------- blend and paste


_BLEND_CHANNELS = {(3, 3), (3, 4), (4, 3), (4, 4)}


def _place(dst: Source, src: Source, top: Any, left: Any, opacity: Any, mode: str, out: Source | None, stream: Any) -> Source:
    check_src(dst, "dst", dtypes=["uint8"])
    check_src(src, "src", dtypes=["uint8"])
    if src.device != dst.device:
        raise ArgumentError(f"src is on {src.device!r} but dst is on {dst.device!r}")
    cs, cd = uniform_channels(src), uniform_channels(dst)
    if mode == "over" and 1 in (cs, cd) and {cs, cd} <= {1, 3, 4}:
        return _blend_gray(dst, src, top, left, opacity, out, stream)
    if mode == "over" and (cs, cd) not in _BLEND_CHANNELS:
        raise ArgumentError(f"src has {cs} channels and dst {cd}; blend takes gray, RGB or RGBA for both")
    if mode == "paste" and cs != cd and (cs, cd) not in _BLEND_CHANNELS:
        raise ArgumentError(f"src has {cs} channels and dst {cd}; paste needs the same count (or RGB/RGBA)")
    layers = images_of(src)
    per_layer = isinstance(dst, ImageBatch)
    if per_layer and len(dst) != len(layers):
        raise ArgumentError(f"src has {len(layers)} images and dst {len(dst)}; give one layer per image of a dst batch")
    check_range(opacity, "opacity", 0.0, 1.0)
    n = len(layers)
    rows = np.stack([per_sample(top, n, "top", np.int64), per_sample(left, n, "left", np.int64),
                     per_sample(opacity, n, "opacity")], axis=1).astype(np.float32)
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


def _blend_gray(dst: Source, src: Source, top: Any, left: Any, opacity: Any, out: Source | None, stream: Any) -> Source:
    """``blend`` where a side is gray: the gray side is taken as RGB (its level in R, G and
    B, opaque), the layers composited as RGB(A), and a gray ``dst`` gets the result's gray
    level back (bt601): Pillow's ``alpha_composite(dst.convert("RGBA"), src).convert("L")``."""
    from ..color import convert, to_gray

    rgb_src = convert(src, "rgb", stream=stream) if uniform_channels(src) == 1 else src
    if uniform_channels(dst) != 1:
        return _place(dst, rgb_src, top, left, opacity, "over", out, stream)
    mixed = _place(convert(dst, "rgb", stream=stream), rgb_src, top, left, opacity, "over", None, stream)
    return to_gray(mixed, out=out, stream=stream)


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
    RGB layers count as opaque; an RGB ``dst`` stays RGB. A gray side is taken as RGB (its
    level in R, G and B) and a gray ``dst`` stays gray: the composite's bt601 gray level,
    as Pillow's ``alpha_composite(dst.convert("RGBA"), src).convert("L")``. ``src`` may be an ImageBatch of
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


def _image_list(images: Any, op: str, batch: bool = True) -> list[Image]:
    """The images ``op`` lays out: an ImageBatch (where ``batch``) or a non-empty list of
    Images; ArgumentTypeError/ArgumentError saying what was given instead."""
    if isinstance(images, ImageBatch) and batch:
        items = images_of(images)
    elif isinstance(images, Image | ImageBatch) or isinstance(images, str | bytes) or not isinstance(images, Sequence):
        wanted = "an ImageBatch or a list of Images" if batch else "a list of Images"
        hint = f" (for one image: {op}([image], ...))" if isinstance(images, Image) else ""
        hint = hint or (" (for a batch: list(batch))" if isinstance(images, ImageBatch) else "")
        raise ArgumentTypeError(f"{op} takes {wanted}, got {type(images).__name__}{hint}")
    else:
        items = list(images)
        for i, im in enumerate(items):
            if not isinstance(im, Image):
                raise ArgumentTypeError(f"{op}: images[{i}] must be a gpuimg.Image, got {type(im).__name__}")
    if not items:
        raise ArgumentError(f"{op}: images must hold at least one image")
    return items


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
    items = _image_list(images, "grid")
    check_int(columns, "columns", low=1)
    check_int(spacing, "spacing", low=0)
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
    items = _image_list(images, "collage", batch=False)
    if isinstance(positions, str | bytes) or not isinstance(positions, Sequence) or len(positions) != len(items):
        raise ArgumentError(f"positions must hold one (top, left) per image ({len(items)}), got {positions!r}")
    places = [numbers(p, f"positions[{i}]", 2, integer=True) for i, p in enumerate(positions)]
    h, w = numbers(size, "size", 2, integer=True, low=1)
    canvas = prepare_out(items[0], out, (h, w, 4))
    fill(canvas, background, out=canvas, stream=stream)
    for im, (t, l) in zip(items, places):
        _place(canvas, im, t, l, 1.0, "over", canvas, stream)
    return canvas
