"""The EXIF orientation of an encoded image, read from its first bytes (no decoding).

nvImageCodec applies the EXIF orientation while decoding but its header (``CodeStream``)
reports the stored, unrotated width and height, and its metadata query fails on the CPU
backends. The codec must know the decoded shape BEFORE decoding (it sizes the target
buffer from it), so this module reads the one tag it needs: 0x0112 in IFD0 of the EXIF
block of a JPEG (APP1), PNG (eXIf chunk), WebP (EXIF chunk) or TIFF file.

Example:
    >>> orientation(b"not an image")
    1
    >>> swaps_axes(6), swaps_axes(3)
    (True, False)
"""

from __future__ import annotations

import struct

__all__ = ["orientation", "swaps_axes"]

_TAG_ORIENTATION = 0x0112
_SCAN_LIMIT = 1 << 20  # EXIF sits in the first segments; never walk a whole huge file


def swaps_axes(value: int) -> bool:
    """True for the orientations (5-8) that transpose the image: width and height swap."""
    return value in (5, 6, 7, 8)


def orientation(data: bytes | memoryview) -> int:
    """The EXIF orientation (1-8) of ``data``; 1 when absent, unknown or malformed.

    Example:
        >>> orientation(b"\\xff\\xd8\\xff\\xd9")
        1
    """
    mv = memoryview(data)
    try:
        if mv[:2] == b"\xff\xd8":
            block = _jpeg_exif(mv)
        elif mv[:8] == b"\x89PNG\r\n\x1a\n":
            block = _png_exif(mv)
        elif mv[:4] == b"RIFF" and mv[8:12] == b"WEBP":
            block = _webp_exif(mv)
        elif mv[:4] in (b"II*\x00", b"MM\x00*"):
            block = mv
        else:
            return 1
        value = _tiff_orientation(block) if block is not None else 1
    except (struct.error, IndexError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _jpeg_exif(mv: memoryview) -> memoryview | None:
    pos = 2
    end = min(len(mv), _SCAN_LIMIT)
    while pos + 4 <= end:
        if mv[pos] != 0xFF:
            return None
        marker = mv[pos + 1]
        if marker in (0xDA, 0xD9):  # start of scan / end of image: no EXIF before pixels
            return None
        length = struct.unpack(">H", mv[pos + 2 : pos + 4])[0]
        if marker == 0xE1 and mv[pos + 4 : pos + 10] == b"Exif\x00\x00":
            return mv[pos + 10 : pos + 2 + length]
        pos += 2 + length
    return None


def _png_exif(mv: memoryview) -> memoryview | None:
    pos = 8
    end = min(len(mv), _SCAN_LIMIT)
    while pos + 8 <= end:
        length = struct.unpack(">I", mv[pos : pos + 4])[0]
        kind = bytes(mv[pos + 4 : pos + 8])
        if kind == b"eXIf":
            return mv[pos + 8 : pos + 8 + length]
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def _webp_exif(mv: memoryview) -> memoryview | None:
    pos = 12
    end = min(len(mv), _SCAN_LIMIT)
    while pos + 8 <= end:
        kind = bytes(mv[pos : pos + 4])
        length = struct.unpack("<I", mv[pos + 4 : pos + 8])[0]
        if kind == b"EXIF":
            block = mv[pos + 8 : pos + 8 + length]
            # Some writers keep the JPEG-style "Exif\0\0" prefix inside the chunk.
            return block[6:] if block[:6] == b"Exif\x00\x00" else block
        pos += 8 + length + (length & 1)
    return None


def _tiff_orientation(block: memoryview) -> int:
    order = bytes(block[:2])
    if order not in (b"II", b"MM"):
        return 1
    e = "<" if order == b"II" else ">"
    ifd = struct.unpack(e + "I", block[4:8])[0]
    count = struct.unpack(e + "H", block[ifd : ifd + 2])[0]
    for i in range(count):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack(e + "HH", block[entry : entry + 4])
        if tag == _TAG_ORIENTATION:
            if kind == 3:  # SHORT
                return struct.unpack(e + "H", block[entry + 8 : entry + 10])[0]
            if kind == 4:  # LONG (rare writers)
                return struct.unpack(e + "I", block[entry + 8 : entry + 12])[0]
            return 1
    return 1
