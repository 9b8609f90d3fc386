"""``gpuimg.thumbnail``: an image file to a thumbnail, as users of libvips' ``thumbnail``
expect: fit within N x N keeping the aspect ratio, EXIF orientation applied, colours to
sRGB (CMYK JPEGs through their CMYK profile), metadata kept or stripped (for
:func:`gpuimg.write`). The whole image is decoded (see :func:`thumbnail`).

Example:
    >>> from pathlib import Path
    >>> import gpuimg
    >>> thumbnail(Path(gpuimg.__file__).parent.parent / "assets" / "chelsea.png", 128, device="cpu").shape
    (85, 128, 3)
"""

from __future__ import annotations

from typing import Any

from .codec.api import read
from .codec.cmyk import is_cmyk
from .meta import KEEP
from .codec.sources import parse
from .errors import check_choice
from .image import Image
from .ops.color.profiles import convert_colorspace
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

    A CMYK JPEG with ``to_srgb`` is decoded to its ink channels and converted from its
    CMYK profile (or, without one, as Pillow's ``convert("RGB")``) to sRGB before it is
    shrunk (:func:`gpuimg.codec.cmyk.read_cmyk`, :func:`~gpuimg.ops.color.convert_colorspace`);
    without ``to_srgb`` it is the decoder's plain RGB.

    What is decoded: the whole image at full resolution, for every format, then shrunk on
    the device. nvImageCodec 0.9 has no reduced-resolution decode to ask for: its
    ``DecodeParams`` hold only the EXIF, colour-spec, depth and sample-format choices (no
    JPEG DCT scaling, no JPEG 2000 resolution level), and a region
    (``CodeStreamView(region=...)``) would not help a thumbnail of the whole picture (and
    its GPU JPEG region decode crashes on H100 in 0.9.0, nvImageCodec #55). The one
    reduced read it allows, a chosen IFD of a TIFF (``bitstream_offset``: a pyramid's
    smaller level), is not used yet.

    Example:
        >>> import numpy as np, io
        >>> from PIL import Image as PILImage
        >>> buf = io.BytesIO(); PILImage.new("RGB", (400, 100)).save(buf, "JPEG")
        >>> thumbnail(buf.getvalue(), 64, device="cpu", keep="none").shape
        (16, 64, 3)
    """
    check_choice(keep, "keep", KEEP, "a metadata choice")
    parsed = parse(src)
    if to_srgb and is_cmyk(parsed.info):  # the inks through the CMYK profile, then shrunk as RGB
        img = convert_colorspace(read(parsed, device=device, mode="cmyk"))
        result = fit_thumbnail(img, size, method, False)
    else:
        # Alpha is kept (a JPEG's 4 channels are CMYK, decoded to RGB).
        alpha = parsed.info.channels in (2, 4) and parsed.info.codec != "jpeg"
        img = read(parsed, device=device, mode="rgba" if alpha else "rgb")
        result = fit_thumbnail(img, size, method, to_srgb)
    meta = result.metadata if result.metadata is not None else img.metadata
    result.metadata = meta.kept(keep) if meta is not None else None
    return result
