"""CMYK JPEGs decoded to their four ink channels, for colour management.

A CMYK (or YCCK) JPEG's default decode is RGB made by nvImageCodec without its ICC
profile (R = C' K' / 255 on the stored, Adobe-inverted values: Pillow's ``convert("RGB")``).
Colour management needs the ink channels themselves, and nvImageCodec 0.9 does not give
them on the CPU: its CPU JPEG decoder returns nothing for ``color_spec=UNCHANGED`` or
``CMYK`` and ``sample_format=I_CMYK`` / ``I_UNCHANGED`` / ``P_UNCHANGED`` (checked on
0.9.0); what its GPU decoders make of a raw CMYK request is unverified, and a wrong guess
would be silent. So the inks come from libjpeg-turbo through Pillow, which the colour
engine's extra (``gpuimg[color]``) installs anyway: the values of Pillow's "CMYK" mode (0
no ink, 255 full ink), a file with Adobe's APP14 segment (Photoshop's inverted CMYK)
turned into ink amounts as Pillow does, one without it taken as stored. Decoding runs on
the host, in this process (not in the isolated child the CPU codecs use), after gpuimg's
own header and scan checks and the pixel limit.

Example:
    >>> import io, numpy as np
    >>> from PIL import Image as PILImage
    >>> buf = io.BytesIO()
    >>> PILImage.fromarray(np.full((4, 6, 4), (0, 255, 255, 0), np.uint8), "CMYK").save(buf, "JPEG", quality=100)
    >>> img = read_cmyk(buf.getvalue(), device="cpu")
    >>> img.shape, img.metadata.cmyk, img.numpy()[0, 0].tolist()
    ((4, 6, 4), True, [0, 255, 255, 0])
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import DecodeError, ImageTooLargeError
from ..image import Image
from ..meta.exif import oriented, swaps_axes
from . import sources
from .plan import MAX_PIXELS
from .sources import ImageInfo, ParsedSource
from .targets import put

__all__ = ["is_cmyk", "decode_ink", "read_cmyk"]


def is_cmyk(info: ImageInfo) -> bool:
    """True for a CMYK or YCCK JPEG (a JPEG's four channels are never colour + alpha).

    Example:
        >>> is_cmyk(ImageInfo(8, 8, 4, "jpeg", "uint8")), is_cmyk(ImageInfo(8, 8, 4, "png", "uint8"))
        (True, False)
    """
    return info.codec == "jpeg" and info.channels == 4


def decode_ink(src: ParsedSource, apply_exif: bool = True, max_pixels: int | None = None) -> np.ndarray:
    """(H, W, 4) uint8 ink amounts of the CMYK JPEG ``src`` (parsed and checked by
    :func:`gpuimg.codec.sources.parse`'s rules), upright by its EXIF orientation when
    ``apply_exif``. DecodeError for anything else or what libjpeg-turbo cannot decode;
    ImageTooLargeError past ``max_pixels`` (default: the Decoder's limit).

    Example:
        >>> import io, numpy as np
        >>> from PIL import Image as PILImage
        >>> buf = io.BytesIO()
        >>> PILImage.fromarray(np.zeros((3, 5, 4), np.uint8), "CMYK").save(buf, "JPEG")
        >>> decode_ink(sources.parse(buf.getvalue())).shape
        (3, 5, 4)
    """
    info = src._checked_info(True)  # structure and scans, as every decode (once per source)
    if not is_cmyk(info) or src.keep is None:
        raise DecodeError(src.label, f"it is not a CMYK JPEG ({info.codec}, {info.channels} channels)")
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if info.pixels > limit:
        raise ImageTooLargeError(f"cannot decode {src.label}: {info.width}x{info.height} is over the limit of {limit:,} pixels")
    try:
        from PIL import Image as PILImage
    except ImportError:
        raise DecodeError(src.label, "its CMYK inks are decoded by Pillow, which is not installed: pip install 'gpuimg[color]'") from None
    try:
        with PILImage.open(io.BytesIO(bytes(src.keep))) as im:
            stored = (info.height, info.width) if swaps_axes(src.orientation) else (info.width, info.height)
            if im.mode != "CMYK" or im.size != stored:
                raise DecodeError(src.label, f"Pillow reads it as {im.mode} {im.size}, not CMYK {stored[0]}x{stored[1]}")
            ink = np.asarray(im)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DecodeError(src.label, f"libjpeg-turbo could not decode its CMYK data ({exc})") from None
    orientation = src.orientation if apply_exif else 1
    return np.ascontiguousarray(oriented(ink, orientation)) if orientation != 1 else ink


def read_cmyk(src: Any, out: Image | None = None, *, device: str | None = None, apply_exif: bool = True) -> Image:
    """A CMYK JPEG as an Image of its four ink channels (uint8, 255 = full ink) on
    ``device``, with its file's metadata marked ``cmyk`` (``img.metadata.icc``: its CMYK
    profile, or None): what :func:`gpuimg.ops.color.convert_colorspace` turns into sRGB.
    ``gpuimg.read(src, mode="cmyk")`` is this.

    Example:
        >>> import io, numpy as np
        >>> from PIL import Image as PILImage
        >>> buf = io.BytesIO()
        >>> PILImage.fromarray(np.zeros((2, 2, 4), np.uint8), "CMYK").save(buf, "JPEG")
        >>> read_cmyk(buf.getvalue(), device="cpu").metadata.icc is None
        True
    """
    from ..device import resolve_device

    loaded = sources._load(src)
    ink = decode_ink(loaded, apply_exif)
    h, w, _ = ink.shape
    if out is None:
        out = Image.empty(h, w, 4, device=resolve_device(device))
    else:
        out.set_shape(h, w, 4, np.uint8)
    put(out, ink, None)
    meta = loaded.metadata
    out.metadata = replace(meta, cmyk=True, orientation_applied=apply_exif and loaded.orientation != 1)
    return out
