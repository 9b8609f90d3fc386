"""Thumbnails of decoded images: shrink to fit within a box (Pillow's ``thumbnail`` size
rule, never enlarging), then colours to sRGB; one resize launch and one colour launch
per Image or ImageBatch. The file-to-thumbnail function is :func:`gpuimg.thumbnail`.

Example:
    >>> import numpy as np, gpuimg
    >>> img = gpuimg.Image.from_array(np.zeros((300, 451, 3), np.uint8), device="cpu")
    >>> fit_thumbnail(img, 128).shape
    (85, 128, 3)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ...errors import ArgumentError
from ...image import ImageBatch
from .._engine.args import Source, check_src, number
from ..color.icc import convert_colorspace
from ..registry import register_op
from ._common import _shapes
from .resize import resize

__all__ = ["fit_thumbnail", "thumbnail_size"]


def thumbnail_size(height: int, width: int, box: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the thumbnail of a ``height`` x ``width`` image that fits in
    ``box`` = (height, width): Pillow's ``Image.thumbnail`` rule (the aspect ratio kept
    as closely as whole pixels allow, never larger than the image).

    Example:
        >>> thumbnail_size(300, 451, (128, 128)), thumbnail_size(10, 20, (128, 128))
        ((85, 128), (10, 20))
    """
    box_h, box_w = min(box[0], height), min(box[1], width)
    aspect = width / height
    if box_w / box_h >= aspect:
        box_w = _round_aspect(box_h * aspect, lambda n: abs(aspect - n / box_h))
    else:
        box_h = _round_aspect(box_w / aspect, lambda n: 0 if n == 0 else abs(aspect - box_w / n))
    return box_h, box_w


def _round_aspect(value: float, key: Any) -> int:
    return max(min(math.floor(value), math.ceil(value), key=key), 1)


def _thumbnail_intent(kwargs: Mapping[str, Any]) -> str | None:
    return "relative" if kwargs.get("to_srgb", True) else None


# The colour step says which profile the results carry; with to_srgb the pipeline
# decodes CMYK JPEGs to their inks and converts them as convert_colorspace's default.
@register_op(sets_metadata=True, colour_intent=_thumbnail_intent)
def fit_thumbnail(
    src: Source,
    size: int | tuple[int, int],
    method: str = "bicubic",
    to_srgb: bool = True,
    *,
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Each image shrunk to fit within ``size`` (N: an N x N box, or (height, width)),
    antialiased (``method`` as :func:`resize`; Pillow's thumbnail uses bicubic), then,
    with ``to_srgb``, converted from its embedded profile (``img.metadata``) to sRGB by
    :func:`~gpuimg.ops.color.convert_colorspace` (images without an RGB profile are taken
    to be sRGB). The pipeline step "fit_thumbnail" and ``gpuimg process --thumbnail N``.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.zeros((40, 30, 3), np.uint8), device="cpu")
        >>> fit_thumbnail(img, (16, 16), to_srgb=False).shape
        (16, 12, 3)
    """
    check_src(src)
    box = (size, size) if isinstance(size, int) else tuple(size)
    if len(box) != 2:
        raise ArgumentError(f"size must be N or (height, width), got {size!r}")
    box = tuple(number(v, "size", integer=True, low=1) for v in box)
    targets = [thumbnail_size(h, w, box) for h, w, _ in _shapes(src)]
    shrunk = resize(src, targets if isinstance(src, ImageBatch) else targets[0], method, True,
                    out=None if to_srgb else out, stream=stream)
    if shrunk is not src:
        _pass_metadata(src, shrunk)
    if not to_srgb or _channels(shrunk) not in (3, 4) or shrunk.dtype.name not in ("uint8", "uint16"):
        return shrunk
    return convert_colorspace(shrunk, out=out, stream=stream)  # each image's own RGB profile




def _images(src: Source) -> list[Any]:
    return list(src) if isinstance(src, ImageBatch) else [src]


def _channels(src: Source) -> int:
    return src.channels if not isinstance(src, ImageBatch) else (src.uniform_channels or 0)


def _pass_metadata(src: Source, out: Source) -> None:
    for a, b in zip(_images(src), _images(out)):
        b.metadata = a.metadata
