"""Resize family: resize, resize_shorter and fit, all through the fused resampler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from ...errors import ArgumentError, check_choice
from ...image import Image, ImageBatch
from ..registry import register_op
from .._engine.args import Source, number, per_sample
from .._engine.batch import readable_source
from ._common import _check, _fill, _result, _shapes, _sizes
from ._plan import ALPHA_MODES, Spec, cached_plan, check_alpha, check_method, premultiplies
from .resample import resample

__all__ = ["resize", "resize_shorter", "fit", "FIT_MODES", "ALPHA_MODES"]


# ============================================================================ resize family
def _run_resample(src: Source, out: Source | None, key: Any, geometry_fn: Callable[[], tuple[list, list]],
                  shapes: list[tuple[int, int, int]], sizes: list[tuple[int, int]], channels: int, method: str,
                  antialias: bool, background: Any, stream: Any, alpha: str) -> Source:
    """Resample ``src`` (checked: ``shapes``, ``channels``) into ``sizes``.

    ``geometry_fn`` gives (source boxes, destination rects) on a plan-cache miss only.
    """

    def specs() -> list[Spec]:
        boxes, rects = geometry_fn()
        return [Spec(tuple(map(float, b)), s, r) for b, s, r in zip(boxes, sizes, rects)]

    plan = cached_plan((key, tuple(shapes), tuple(sizes)), src, method, antialias, specs,
                       premultiplies(alpha, method, channels))
    out = _result(src, out, [(h, w, c) for (h, w), (_, _, c) in zip(sizes, shapes)])
    # Same size in place: the GPU reads a workspace copy (the CPU path computes, then writes).
    base = readable_source(src, out, stream).base if out is src and src.device == "cuda" else None
    return resample(src, out, plan, _fill(background, "background"), channels, stream, base)


@register_op
def resize(
    src: Source,
    size: int | tuple[int, int] | Sequence[tuple[int, int]],
    method: str = "bilinear",
    antialias: bool = True,
    *, alpha: str = "premultiply",
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Resize to ``size`` = (height, width) (or one size per image of a batch); an int
    is the shorter side, the aspect ratio kept, as torchvision's ``Resize(int)`` (see
    :func:`resize_shorter`).

    ``method``: "nearest", "bilinear", "bicubic", "area", "lanczos"; pixel centres at
    half-pixel. Each method follows one reference; the tolerance is the largest absolute
    difference in uint8 levels on photos, shrinking and enlarging (held by
    tests/test_resize_parity.py):

    - "nearest" (either ``antialias``): OpenCV 5.x ``INTER_NEAREST_EXACT`` (tested with
      5.1), which equals Pillow's ``NEAREST`` (tested with 13): exact (0), half-pixel ties
      included. (OpenCV 4.x's 16-bit fixed-point index differs from both at some ties.)
    - "area" (either ``antialias``): OpenCV 4.x/5.x ``INTER_AREA``: within 1.
    - "bilinear"/"bicubic", ``antialias=False``: OpenCV 4.x/5.x ``INTER_LINEAR`` /
      ``INTER_CUBIC``: within 1 (same 11-bit weights; OpenCV sums in fixed point).
    - "bilinear"/"bicubic"/"lanczos", ``antialias=True`` (the filter widens when
      shrinking): Pillow 13 ``Image.resize`` BILINEAR / BICUBIC / LANCZOS with
      ``reducing_gap=None``: within 1, within 2 where one side grows and the other
      shrinks (Pillow rounds its weights to 22-bit fixed point; older Pillow runs the two
      passes the other way round in that case, so differs more there).
    - "lanczos", ``antialias=False``: enlarging, the same as ``antialias=True`` (Pillow
      LANCZOS, within 1); shrinking, Pillow's formula with an unwidened (aliasing) filter.

    uint16 and float32 use the same formulas (OpenCV's 8-bit weights for its methods).
    ``alpha`` (4-channel images): "premultiply" (default; Pillow's rule for every filter
    but NEAREST) multiplies colour by alpha before resampling and divides by the resampled
    alpha after, so the colour under transparent pixels does not bleed into visible ones;
    uint8 with Pillow's integer steps (RGBA -> RGBa -> RGBA: c * a / 255 rounded, then
    ``255 * c // a``), uint16 and float32 by the same rule in float (alpha's maximum
    65535 / 1.0). Against Pillow's RGBA resize: alpha within the method's tolerance, colour
    within 3 where alpha >= 128 (below, one level of alpha is magnified by 255 / alpha).
    "straight" resamples every channel on its own, as ``cv2.resize`` does; "nearest"
    copies pixels either way. One launch for a whole batch; no intermediate image.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((480, 640, 3), np.uint8), device="cpu")
        >>> resize(img, (240, 320), method="area").shape
        (240, 320, 3)
        >>> resize(img, 100).shape  # the shorter side
        (100, 133, 3)
    """
    check_method(method)
    check_alpha(alpha)
    channels = _check(src)
    shapes = _shapes(src)
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        if size < 1:
            raise ArgumentError(f"size must be a positive int (the shorter side) or (height, width), got {size!r}")
        sizes = [_shorter_size(h, w, int(size), None) for h, w, _ in shapes]
    else:
        sizes = _sizes(size, len(shapes))

    def geometry_fn() -> tuple[list, list]:
        return [(0, 0, h, w) for h, w, _ in shapes], [(0, 0, h, w) for h, w in sizes]

    return _run_resample(src, out, "resize", geometry_fn, shapes, sizes, channels, method, antialias, 0, stream,
                         alpha)


def _shorter_size(h: int, w: int, size: int, max_size: int | None) -> tuple[int, int]:
    """torchvision's rule: the shorter side becomes ``size``, the longer int(size * long / short)."""
    short, long = (h, w) if h <= w else (w, h)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if h <= w else (new_long, new_short)


@register_op
def resize_shorter(
    src: Source,
    size: int | Sequence[int],
    method: str = "bilinear",
    antialias: bool = True,
    max_size: int | None = None,
    *, alpha: str = "premultiply",
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Resize keeping the aspect ratio so the shorter side is ``size`` (torchvision's rule).

    The longer side is ``int(size * long / short)``, as ``torchvision.transforms.v2.Resize(size)``.
    ``method``, ``antialias`` and ``alpha``: as :func:`resize` (the same references and
    tolerances).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((400, 600, 3), np.uint8), device="cpu")
        >>> resize_shorter(img, 256).shape
        (256, 384, 3)
    """
    shapes = _shapes(src) if isinstance(src, Image | ImageBatch) else []
    targets = per_sample(size, len(shapes) or 1, "size", np.int64)
    if np.any(targets < 1):
        raise ArgumentError(f"size must be a positive int (or one per image), got {size!r}")
    if max_size is not None:
        max_size = number(max_size, "max_size", integer=True, low=1)
        if np.any(targets >= max_size):  # torchvision's rule too
            raise ArgumentError(f"max_size={max_size} must be greater than size={size!r}")
    sizes = [_shorter_size(h, w, int(t), max_size) for (h, w, _), t in zip(shapes, targets)]
    return resize(src, sizes if isinstance(src, ImageBatch) else sizes[0], method, antialias, alpha=alpha, out=out,
                  stream=stream)


FIT_MODES = ("contain", "cover")


def _fit_geometry(h: int, w: int, th: int, tw: int, mode: str) -> tuple[tuple, tuple]:
    """(source box, destination rect) that fit (h, w) into (th, tw) without a 1-pixel gap.

    contain: the scaled image's size is rounded, and the side that limits the scale is
    set to the container's exactly (a truncated product would leave a gap). cover: the
    source box of the container's aspect ratio is cut from the centre, so the output is
    filled edge to edge by construction.
    """
    if mode == "contain":
        if th * w <= tw * h:  # height limits: full height
            rh, rw = th, min(tw, max(1, round(w * th / h)))
        else:
            rh, rw = min(th, max(1, round(h * tw / w))), tw
        return (0, 0, h, w), ((th - rh) // 2, (tw - rw) // 2, rh, rw)
    scale = max(th / h, tw / w)
    bh, bw = min(h, th / scale), min(w, tw / scale)
    return ((h - bh) / 2, (w - bw) / 2, bh, bw), (0, 0, th, tw)


@register_op
def fit(
    src: Source,
    size: tuple[int, int] | Sequence[tuple[int, int]],
    mode: str = "contain",
    background: Any = 0,
    method: str = "bilinear",
    antialias: bool = True,
    *, alpha: str = "premultiply",
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Scale into a (height, width) container and centre it: "contain" (letterbox) or "cover".

    "contain" shows the whole image with ``background`` around it; "cover" fills the
    container and crops the overflow. Either way there is no one-pixel gap from
    truncation (see :func:`_fit_geometry`). ``method``, ``antialias`` and ``alpha`` as
    :func:`resize` (the same references and tolerances; "cover" resamples a centred box
    of the source, as Pillow's ``resize(..., box=)``). Resampling and background fill:
    one launch.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((300, 451, 3), 200, np.uint8), device="cpu")
        >>> r = fit(img, (224, 224), "contain", background=0)
        >>> r.shape, int(r.array[0, 112, 0]), int(r.array[112, 0, 0])
        ((224, 224, 3), 0, 200)
    """
    check_choice(mode, "mode", FIT_MODES, "a fit mode")
    check_method(method)
    check_alpha(alpha)
    channels = _check(src)
    shapes = _shapes(src)
    sizes = _sizes(size, len(shapes))
    def geometry_fn() -> tuple[list, list]:
        geo = [_fit_geometry(h, w, th, tw, mode) for (h, w, _), (th, tw) in zip(shapes, sizes)]
        return [g[0] for g in geo], [g[1] for g in geo]

    return _run_resample(src, out, ("fit", mode), geometry_fn, shapes, sizes, channels, method, antialias,
                         background, stream, alpha)
