"""The EXIF orientation of an encoded image: read from its first bytes, applied as a view.

gpuimg reads the orientation itself and applies it itself, for every container, so the
size it plans and the pixels it returns follow ONE reading of the tag. nvImageCodec's own
reading differs from its decoders' on malformed EXIF (a JPEG whose IFD entry count is
wrong made its CPU decoder write past the target buffer; a WebP EXIF chunk with the
``Exif\0\0`` prefix was sized rotated but decoded unrotated), so the decoder always asks
nvImageCodec for the stored orientation and copies through :func:`oriented`. This module
reads the one tag it needs: 0x0112 in IFD0 of the EXIF block of a JPEG (APP1), PNG (eXIf
chunk), WebP (EXIF chunk, with or without the prefix) or TIFF file.

Example:
    >>> orientation(b"not an image")
    1
    >>> swaps_axes(6), swaps_axes(3)
    (True, False)
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["orientation", "swaps_axes", "oriented"]

_TAG_ORIENTATION = 0x0112
_SCAN_LIMIT = 1 << 20  # EXIF sits in the first segments; never walk a whole huge file


def swaps_axes(value: int) -> bool:
    """True for the orientations (5-8) that transpose the image: width and height swap.

    Example:
        >>> [v for v in range(1, 9) if swaps_axes(v)]
        [5, 6, 7, 8]
    """
    return value in (5, 6, 7, 8)


def oriented(array: Any, value: int) -> Any:
    """A view of ``array`` (H, W, C; NumPy or CuPy) as the EXIF ``value`` says to show it.

    No pixels move: flips and transposes are strided views, so copying the view into a
    target applies the orientation in that one copy. The views match Pillow's
    ``ImageOps.exif_transpose`` (2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate
    90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise).

    Example:
        >>> import numpy as np
        >>> a = np.arange(6).reshape(2, 3, 1)
        >>> oriented(a, 6)[..., 0].tolist()
        [[3, 0], [4, 1], [5, 2]]
    """
    if value == 2:
        return array[:, ::-1]
    if value == 3:
        return array[::-1, ::-1]
    if value == 4:
        return array[::-1]
    if value == 5:
        return array.transpose(1, 0, 2)
    if value == 6:
        return array.transpose(1, 0, 2)[:, ::-1]
    if value == 7:
        return array.transpose(1, 0, 2)[::-1, ::-1]
    if value == 8:
        return array.transpose(1, 0, 2)[::-1]
    return array


def orientation(data: bytes | memoryview | Any) -> int:
    """The EXIF orientation (1-8) of ``data`` (any buffer); 1 when absent, unknown or malformed.

    Example:
        >>> orientation(b"\\xff\\xd8\\xff\\xd9")
        1
    """
    buf = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    head = bytes(buf[:12])
    try:
        if head[:2] == b"\xff\xd8":
            block = _jpeg_exif(buf)
        elif head[:8] == b"\x89PNG\r\n\x1a\n":
            block = _png_exif(buf)
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            block = _webp_exif(buf)
        elif head[:4] in (b"II*\x00", b"MM\x00*"):
            block = (0, len(buf))
        else:
            return 1
        value = _tiff_orientation(buf, *block) if block is not None else 1
    except (struct.error, IndexError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


# The walkers return (start, end) of the TIFF-structured EXIF block inside ``buf``; they
# read with struct.unpack_from so that no slice is copied (a few us per JPEG).


def _jpeg_exif(buf: Any) -> tuple[int, int] | None:
    pos, end = 2, min(len(buf), _SCAN_LIMIT)
    while pos + 10 <= end:
        ff, marker, length = struct.unpack_from(">BBH", buf, pos)
        # EXIF is an APP1 among the application segments right after SOI; the first other
        # segment (tables, frame, scan) ends the search without walking the whole header.
        if ff != 0xFF or not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            return None
        if marker == 0xE1 and bytes(buf[pos + 4 : pos + 10]) == b"Exif\x00\x00":
            return pos + 10, pos + 2 + length
        pos += 2 + length
    return None


def _png_exif(buf: Any) -> tuple[int, int] | None:
    pos, end = 8, min(len(buf), _SCAN_LIMIT)
    while pos + 8 <= end:
        length, kind = struct.unpack_from(">I4s", buf, pos)
        if kind == b"eXIf":
            return pos + 8, pos + 8 + length
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def _webp_exif(buf: Any) -> tuple[int, int] | None:
    pos, end = 12, min(len(buf), _SCAN_LIMIT)
    while pos + 8 <= end:
        kind, length = struct.unpack_from("<4sI", buf, pos)
        if kind == b"EXIF":
            start = pos + 8
            # Some writers keep the JPEG-style "Exif\0\0" prefix inside the chunk.
            if bytes(buf[start : start + 6]) == b"Exif\x00\x00":
                start += 6
            return start, pos + 8 + length
        pos += 8 + length + (length & 1)
    return None


def _tiff_orientation(buf: Any, start: int, end: int) -> int:
    order = bytes(buf[start : start + 2])
    if order not in (b"II", b"MM"):
        return 1
    e = "<" if order == b"II" else ">"
    ifd = start + struct.unpack_from(e + "I", buf, start + 4)[0]
    count = struct.unpack_from(e + "H", buf, ifd)[0]
    for i in range(min(count, 512)):
        entry = ifd + 2 + 12 * i
        if entry + 12 > end:
            return 1
        tag, kind = struct.unpack_from(e + "HH", buf, entry)
        if tag == _TAG_ORIENTATION:
            if kind == 3:  # SHORT
                return struct.unpack_from(e + "H", buf, entry + 8)[0]
            if kind == 4:  # LONG (rare writers)
                return struct.unpack_from(e + "I", buf, entry + 8)[0]
            return 1
    return 1
