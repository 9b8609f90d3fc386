"""One module per container format, each holding everything gpuimg does with that format's
bytes (its one walker, its structure check, its metadata read and embed), as Pillow
keeps one plugin per format; this package maps nvImageCodec's codec names to them.

- :mod:`~gpuimg.codec.containers.jpeg`: segments, the scan check, APP1/APP2 metadata;
- :mod:`~gpuimg.codec.containers.png`: chunks, eXIf/iCCP/text chunks (XMP, ImageMagick's
  raw EXIF profile), an APNG's default image;
- :mod:`~gpuimg.codec.containers.webp`: RIFF chunks, EXIF/XMP/ICCP, VP8X;
- :mod:`~gpuimg.codec.containers.tiff`: IFD0, tags 700/34675 and the EXIF tags,
  associated alpha;
- :mod:`~gpuimg.codec.containers.jp2`, :mod:`~gpuimg.codec.containers.bmp`,
  :mod:`~gpuimg.codec.containers.pnm`: the structure checks (and the BMPs gpuimg
  decodes itself);
- :mod:`~gpuimg.codec.containers.gif`, :mod:`~gpuimg.codec.containers.ico`,
  :mod:`~gpuimg.codec.containers.tga`, :mod:`~gpuimg.codec.containers.psd`: the header
  walks of the formats Pillow decodes (:func:`pillow_header`), GIF's and PSD's metadata.

The functions below ask the module of the format at hand. Every walker reads with
``struct.unpack_from`` on the caller's buffer (no slice copies) and checks each offset
against the buffer's length before reading, so junk gives a reason or None and never a
read past the end.

Example:
    >>> structure_problem(b"\\x89PNG\\r\\n\\x1a\\n", "png", 1, 1)
    'the PNG data is truncated (it ends at byte 8, before the IHDR chunk)'
    >>> structure_problem(b"\\xff\\xd8\\xff", "jpeg", 1, 1) is None
    True
"""

from __future__ import annotations

import struct
import zlib
from types import ModuleType
from typing import Any

from ...errors import EncodeError
from ...meta import exif, xmp
from ...meta.metadata import Metadata, assemble
from .._bytes import byte_view
from . import bmp, gif, ico, jp2, jpeg, png, pnm, psd, tga, tiff, webp
from ._common import Header

__all__ = ["CONTAINERS", "Header", "pillow_header", "structure_problem", "read_metadata", "exif_orientation", "embed", "stores_metadata"]

# nvImageCodec's codec name -> the module of that container.
CONTAINERS: dict[str, ModuleType] = {"jpeg": jpeg, "png": png, "webp": webp, "tiff": tiff, "jpeg2k": jp2, "bmp": bmp,
                                     "pnm": pnm}  # fmt: skip
# The containers whose structure is checked before decoding: JPEG's check is its scans'
# (:func:`gpuimg.codec.containers.jpeg.scan_problem`), done apart.
_CHECKED = ("png", "tiff", "webp", "jpeg2k", "bmp", "pnm")
# The containers that hold EXIF, XMP and an ICC profile.
_WITH_METADATA = ("jpeg", "png", "webp", "tiff")


def _sniffed(head: bytes) -> ModuleType | None:
    """The container holding metadata whose magic number ``head`` starts with."""
    if head[:2] == jpeg.SIGNATURE:
        return jpeg
    if head[:8] == png.SIGNATURE:
        return png
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return webp
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return tiff
    if head[:6] in gif.SIGNATURES:
        return gif
    if head[:4] == psd.SIGNATURE:
        return psd
    return None


# gpuimg's name of a format Pillow decodes -> the module that walks its header.
# A TIFF only where it is bilevel (gpuimg.codec.sources routes it).
_PILLOW_HEADERS: dict[str, ModuleType] = {"gif": gif, "ico": ico, "tga": tga, "psd": psd, "tiff": tiff}


def pillow_header(data: Any, name: str) -> Header | str:
    """The :class:`Header` (size, channels, dtype) of a file of format ``name`` that
    Pillow decodes ("gif", "ico", "tga", "psd", a bilevel "tiff"), read by gpuimg's own walk of its
    structure (no Pillow code sees the bytes in this process), or the reason it must not
    be decoded (a string that reads after "cannot decode <source>: "). Never raises for junk.

    Example:
        >>> pillow_header(b"GIF89a\\x02\\x00\\x01\\x00", "gif")
        'the GIF data is truncated (it ends at byte 10, inside the screen descriptor)'
    """
    module = _PILLOW_HEADERS[name]
    try:
        return module.header(byte_view(data))
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        return str(exc) if isinstance(exc, ValueError) and not isinstance(exc, struct.error) else (
            f"its {module.TITLE} structure is truncated or corrupt ({exc})")


def structure_problem(data: bytes | memoryview | Any, codec: str, width: int = -1, height: int = -1) -> str | None:
    """Why ``data`` must not be decoded, or None when its structure looks sound.

    ``codec`` is nvImageCodec's codec name ("png", "tiff", "webp", "bmp", "pnm",
    "jpeg2k", "jpeg"); ``width`` / ``height`` the STORED size its header reported
    (before any EXIF rotation; -1: not known yet, so not compared: the decoder checks
    the structure before nvImageCodec's own header parser sees the data, whose divisions
    and allocations hostile files target, and the size once that parser has read it).
    The checks are structural and cheap (no decompression, no CRCs): every length and
    offset must lie inside the data, the size the container states must be the one
    nvImageCodec reported, and the tags or chunks that decide the size must not appear
    twice. JPEG and unknown codecs return None (the JPEG path has its own end-of-image
    check). The reason reads after "cannot decode <source>: ".

    ``data``: bytes or any buffer of bytes (a 1-D uint8 NumPy array); an object that is
    not a buffer is a TypeError. Junk data never raises: it gives a reason (or None where
    nothing checkable is wrong).

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (40, 30)).save(buf, "PNG")
        >>> structure_problem(buf.getvalue(), "png", 40, 30) is None
        True
        >>> structure_problem(buf.getvalue(), "png", 40, 31)
        'the PNG IHDR chunk says 40x30, the header was read as 40x31'
    """
    if codec not in _CHECKED:
        return None
    module = CONTAINERS[codec]
    buf = byte_view(data)
    try:
        return module.problem(buf, int(width), int(height))
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        # The walkers check bounds before reading; landing here still means a structure
        # that ends or points outside the data, which is what a truncated file does.
        return f"its {module.TITLE} structure is truncated or corrupt ({exc})"


def read_metadata(data: Any) -> Metadata:
    """The EXIF, XMP and ICC profile of an encoded JPEG, PNG, WebP or TIFF file (any
    buffer), read from its structure only (no pixel is decoded); other formats, and
    junk, give an empty Metadata. Never raises: a part that is there but malformed is
    left out and named in :attr:`~gpuimg.meta.Metadata.problems`.

    Example:
        >>> read_metadata(b"not an image").empty
        True
    """
    buf = byte_view(data)
    found: dict[str, Any] = {}
    problems: list[str] = []
    module = _sniffed(bytes(buf[:12]))
    try:
        if module is not None:
            module.read_metadata(buf, found, problems)
    except (struct.error, IndexError, ValueError, zlib.error) as exc:
        problems.append(f"the file's structure is malformed ({exc})")
    return assemble(found, problems)


def exif_orientation(data: bytes | memoryview | Any) -> int:
    """The orientation (1-8) the encoded file ``data`` (any buffer) says to show it in;
    1 when absent, unknown or malformed. What the decoder applies (nvImageCodec is always
    asked for the stored pixels: gpuimg turns them, once, for ``gpuimg.read`` and the
    pipeline alike) and what :attr:`gpuimg.meta.Metadata.orientation` reports.

    The places, per container: a JPEG's APP1 Exif and APP1 XMP; a PNG's eXIf chunk,
    else ImageMagick's "Raw profile type exif"/"APP1" text chunk, and the
    ``XML:com.adobe.xmp`` text chunk; a WebP's EXIF and XMP chunks; a TIFF's own IFD0.
    Where both EXIF and XMP say something, :func:`gpuimg.meta.exif.decide_orientation`
    (Pillow's rule: an EXIF Orientation tag wins) decides. A few microseconds for a
    JPEG or WebP; a PNG's chunks are walked to IEND, as Pillow reads them (about 0.2 ms
    for a 36 MB PNG of 550 chunks, as long as its structure check takes).

    Example:
        >>> exif_orientation(b"\\xff\\xd8\\xff\\xd9"), exif_orientation(b"not an image")
        (1, 1)
        >>> packet = jpeg.XMP_ID + b'<d tiff:Orientation="6"/>'
        >>> exif_orientation(b"\\xff\\xd8\\xff\\xe1" + struct.pack(">H", len(packet) + 2) + packet + b"\\xff\\xd9")
        6
    """
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    module = _sniffed(bytes(buf[:12]))
    if module is None:
        return 1
    try:
        if module is tiff:  # the TIFF's own directory: its reader's business
            value = exif.block_orientation(buf, 0, len(buf))
            return value if 1 <= value <= 8 else 1
        block, packet = _orientation_parts(module, buf)
    except (struct.error, IndexError, ValueError, zlib.error):
        return 1  # a structure cut short or junk: nothing to turn by
    # The XMP as Metadata keeps it (text): one reading for the pixels and the metadata.
    return exif.orientation_of(block, xmp.text(packet))


def _orientation_parts(module: ModuleType, buf: Any) -> tuple[bytes | None, bytes | None]:
    """(EXIF block, XMP packet) of ``buf``, each None where absent: the ones the container's
    ``read_metadata`` reads (the first of each), or its own ``orientation_parts`` where it
    has one that reads less (PNG's skips the ICC profile)."""
    own = getattr(module, "orientation_parts", None)
    if own is not None:
        return own(buf)
    found: dict[str, Any] = {}
    module.read_metadata(buf, found, [])
    return found.get("exif"), found.get("xmp")


def stores_metadata(codec: str) -> bool:
    """Whether :func:`embed` can put metadata into ``codec``'s files.

    Example:
        >>> stores_metadata("jpeg"), stores_metadata("bmp")
        (True, False)
    """
    return codec in _WITH_METADATA


def embed(data: Any, codec: str, meta: Metadata | None, *, has_alpha: bool = False) -> bytes:
    """``data`` (an encoded file) with ``meta`` in it, replacing any EXIF/XMP/ICC it had.

    nvImageCodec encodes pixels but writes no EXIF, XMP or ICC profile: this is the
    container surgery on the bytes it wrote, on the host. ``codec``: "jpeg", "png",
    "webp" or "tiff"; other formats store none of it and come back unchanged, as does
    everything for an empty ``meta``. ``has_alpha``: the image has an alpha channel (the
    WebP VP8X flag). Raises EncodeError for an encoded file that is not the format
    named, and for metadata the format cannot hold (an XMP packet over 64 KB in a JPEG:
    extended XMP is not written).

    Example:
        >>> import numpy as np
        >>> from gpuimg import Encoder, Image
        >>> png_file = Encoder("cpu").encode(Image.from_array(np.zeros((4, 4, 3), np.uint8)), "png")
        >>> read_metadata(embed(png_file, "png", Metadata(xmp="<x:xmpmeta/>"))).xmp
        '<x:xmpmeta/>'
    """
    if meta is None or meta.empty or codec not in _WITH_METADATA:
        return bytes(data)
    try:
        return CONTAINERS[codec].embed(bytes(data), meta, has_alpha)
    except (struct.error, IndexError, ValueError) as exc:
        if isinstance(exc, EncodeError):
            raise
        raise EncodeError(f"cannot add metadata to the encoded {codec}: its structure is not as expected ({exc})") from None
