"""Pillow as the decoder of the formats nvImageCodec lacks: GIF, ICO/CUR, TGA, PSD, AVIF, HEIF,
and of the TIFF variant it gets wrong: bilevel (1 bit per sample, CCITT G3/G4 and others).

These parsers have long CVE histories, so they run where nvImageCodec's CPU codecs run:
in the isolated child (:mod:`gpuimg.codec.isolation`), under its memory and time limits,
after the caller's own header walk (:mod:`gpuimg.codec.containers`) has checked the
structure and the pixel limit. :func:`decode` is the one function that turns such a
file into the pixels of a decode target; the child calls it (and the caller's process
only where isolation is off). Pillow opens the file with the one plugin its header
named, Pillow's own decompression-bomb limit is gpuimg's (:data:`~gpuimg.codec.plan.MAX_PIXELS`,
or the header's size where a Decoder allows more) and its warning is an error, and the
size Pillow reads must be the one the header walk read.

Animated files (GIF, AVIF and HEIF sequences) give their first frame, as Pillow opens
them. Pillow is an optional dependency: ``pip install "gpuimg[formats]"``; HEIC/HEIF also
needs pillow-heif (``gpuimg[heif]``), whose opener is registered in the child only.

Example:
    >>> missing("gif") is None  # Pillow is installed here
    True
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from functools import lru_cache

import numpy as np

__all__ = ["PLUGINS", "missing", "decode", "PillowFailed"]

# gpuimg's format name -> the Pillow plugins that may open it (nothing else is tried).
PLUGINS = {"gif": ("GIF",), "ico": ("ICO", "CUR"), "tga": ("TGA",), "psd": ("PSD",), "avif": ("AVIF",), "heif": ("HEIF",),
           # bilevel TIFFs only (CCITT G3/G4 and the like): nvImageCodec decodes them wrong.
           "tiff": ("TIFF",)}
# Pillow's MAX_IMAGE_PIXELS default, which is also gpuimg's MAX_PIXELS.
_MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3


class PillowFailed(Exception):
    """Pillow could not decode the file; the message says why (it reads after "cannot decode <file>: ")."""


@lru_cache(maxsize=None)
def missing(name: str) -> str | None:
    """Why gpuimg cannot decode format ``name`` here (what to install), or None when it can.

    Example:
        >>> missing("png") is None
        True
    """
    if name not in PLUGINS:
        return None
    if importlib.util.find_spec("PIL") is None:
        return 'it is decoded with Pillow, which is not installed: pip install "gpuimg[formats]"'
    if name == "avif":
        from PIL import features

        if not features.check("avif"):
            return "this Pillow was built without AVIF support (libavif): install a Pillow wheel (11.3 or later) that has it"
    if name == "heif" and importlib.util.find_spec("pillow_heif") is None:
        return 'it is decoded with pillow-heif, which is not installed: pip install "gpuimg[heif]"'
    return None


_opened_heif = False


def _open(data: bytes, name: str, pixels: int):  # noqa: ANN202 - a PIL.Image.Image
    global _opened_heif
    from PIL import Image

    if name == "heif" and not _opened_heif:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _opened_heif = True
    # A header within the Decoder's limit is allowed its size; anything Pillow finds
    # inside beyond the limit (an ICO's bitmap, a GIF's disposal extent) fails.
    Image.MAX_IMAGE_PIXELS = max(_MAX_PIXELS, 2 * pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        im = Image.open(io.BytesIO(data), formats=list(PLUGINS[name]))
        im.load()  # the first frame of an animation
    return im


def decode(data: bytes, name: str, height: int, width: int, channels: int, bgr: bool = False) -> np.ndarray:
    """The ``name``-format file ``data`` decoded with Pillow to a (height, width, channels)
    uint8 array: ``channels`` 1 is Pillow's "L" (ITU-R 601 luma), 3 "RGB" (``bgr``:
    reversed), 4 "RGBA" (a palette's transparent index becomes alpha 0). Raises
    PillowFailed naming the reason for anything Pillow refuses or a size other than
    ``width`` x ``height``, and MemoryError where the memory limit stops it.

    Example:
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (3, 2), (9, 8, 7)).save(buf, "TGA")
        >>> decode(buf.getvalue(), "tga", 2, 3, 3)[1, 2].tolist()
        [9, 8, 7]
    """
    if name == "tiff":  # the stored pixels: gpuimg orients them (Pillow's libtiff would too)
        from .containers.tiff import unoriented

        data = unoriented(data)
    try:
        im = _open(data, name, height * width)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad data
        raise PillowFailed(f"Pillow could not decode it ({type(exc).__name__}: {exc})") from None
    if im.size != (width, height):
        raise PillowFailed(f"Pillow read it as {im.size[0]}x{im.size[1]}, its header was read as {width}x{height}")
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    try:
        px = np.asarray(im if im.mode == mode else im.convert(mode), dtype=np.uint8)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a mode Pillow cannot convert (e.g. Lab)
        raise PillowFailed(f"Pillow could not convert its {im.mode} pixels to {mode} ({type(exc).__name__}: {exc})") from None
    px = px.reshape(height, width, channels)
    return px[..., ::-1] if bgr else px
