"""``gpuimg.thumbnail``: an image file to a thumbnail, as users of libvips' ``thumbnail``
expect: fit within N x N keeping the aspect ratio, EXIF orientation applied, colours to
sRGB, metadata kept or stripped (for :func:`gpuimg.write`).

Example:
    >>> from pathlib import Path
    >>> import gpuimg
    >>> thumbnail(Path(gpuimg.__file__).parent.parent / "assets" / "chelsea.png", 128, device="cpu").shape
    (85, 128, 3)
"""

from __future__ import annotations

from typing import Any

from .codec.api import read
from .codec.metadata import KEEP
from .codec.sources import parse
from .errors import check_choice
from .image import Image
from .ops.geometry.thumbnail import fit_thumbnail

__all__ = ["thumbnail"]


def thumbnail(
    src: Any,
    size: int | tuple[int, int],
    *,
    device: str | None = None,
    to_srgb: bool = True,
    keep: str = "all",
    method: str = "bicubic",
) -> Image:
    """Decode ``src`` (a path, bytes, ...; as :func:`gpuimg.read`) and make its thumbnail:
    within ``size`` (N: N x N; or (height, width)) by Pillow's ``Image.thumbnail`` size rule
    (never enlarged), upright by its EXIF orientation, alpha kept, antialiased ``method`` resampling,
    and with ``to_srgb`` its colours converted from the embedded ICC profile to sRGB
    (needs ``gpuimg[color]`` when the file has one). The result's ``metadata`` is what
    ``keep`` ("all", "icc", "no-gps", "none") leaves of the file's, with the sRGB profile;
    :func:`gpuimg.write` stores it (EXIF Orientation 1, no EXIF thumbnail).

    The whole image is decoded, then shrunk on the device (nvImageCodec 0.9 offers no
    reduced-resolution JPEG decode to gpuimg; see the issue-19 report).

    Example:
        >>> import numpy as np, io
        >>> from PIL import Image as PILImage
        >>> buf = io.BytesIO(); PILImage.new("RGB", (400, 100)).save(buf, "JPEG")
        >>> thumbnail(buf.getvalue(), 64, device="cpu", keep="none").shape
        (16, 64, 3)
    """
    check_choice(keep, "keep", KEEP, "a metadata choice")
    parsed = parse(src)
    # Alpha is kept (a JPEG's 4 channels are CMYK, decoded to RGB).
    alpha = parsed.info.channels in (2, 4) and parsed.info.codec != "jpeg"
    img = read(parsed, device=device, mode="rgba" if alpha else "rgb")
    result = fit_thumbnail(img, size, method, to_srgb)
    meta = result.metadata if result.metadata is not None else img.metadata
    result.metadata = meta.kept(keep) if meta is not None else None
    return result
