"""TGA (Truevision Targa): the 18-byte header, which is all a TGA has for a signature.

A TGA has no magic number: gpuimg takes a file for one by its name (``.tga``) or by the
TGA 2.0 footer (``TRUEVISION-XFILE.``), and then by a header Pillow would accept. Pillow
decodes it, in the isolated child.

Example:
    >>> header(bytes([0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 3, 0, 24, 0x20]) + bytes(36))
    Header(width=4, height=3, channels=3, dtype='uint8')
"""

from __future__ import annotations

import struct
from typing import Any

from ._common import Header, Malformed

__all__ = ["TITLE", "FOOTER", "has_footer", "header"]

TITLE = "TGA"
FOOTER = b"TRUEVISION-XFILE.\x00"


def has_footer(buf: Any) -> bool:
    """True when ``buf`` ends with the TGA 2.0 footer.

    Example:
        >>> has_footer(bytes(26) + FOOTER), has_footer(b"not a tga")
        (True, False)
    """
    return len(buf) >= 26 + 18 and bytes(buf[-len(FOOTER) :]) == FOOTER


def header(buf: Any) -> Header:
    """The size and layout of the TGA ``buf``: gray (1), gray + alpha (2), colour (3) or
    colour + alpha (4), as Pillow reads its image type, depth and colour map; Malformed
    for a header Pillow would refuse or pixels that cannot fit the data (an uncompressed
    raster is checked for length; a run-length one needs at least one byte per run of up
    to 128 pixels).

    Example:
        >>> header(bytes([0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 3, 0, 24, 0x20]))
        Traceback (most recent call last):
        ...
        gpuimg.codec.containers._common.Malformed: the TGA raster is truncated: 4x3 at 24 bits needs 36 bytes after byte 18, the file has 0
    """
    if len(buf) < 18:
        raise Malformed(f"the TGA header is truncated (the data has {len(buf)} bytes)")
    id_len, maptype, kind = buf[0], buf[1], buf[2]
    _, map_len, map_depth = struct.unpack_from("<HHB", buf, 3)
    w, h, depth, flags = struct.unpack_from("<HHBB", buf, 12)
    if maptype not in (0, 1) or w == 0 or h == 0 or depth not in (1, 8, 16, 24, 32):
        raise Malformed("the TGA header is not valid (colour map type, size or depth)")
    if flags & 0x30 not in (0, 0x10, 0x20, 0x30) or kind not in (1, 2, 3, 9, 10, 11):
        raise Malformed(f"the TGA image type {kind} is not one Pillow reads")
    if kind in (3, 11):
        channels = 2 if depth == 16 else 1
    elif kind in (1, 9):
        channels = (4 if map_depth in (16, 32) else 3) if maptype else 1
    else:
        channels = 3 if depth == 24 else 4
    raster = 18 + id_len + (map_len * ((map_depth + 7) // 8) if maptype else 0)
    need = (w * h * depth + 7) // 8
    if kind & 8:
        need = (w * h + 127) // 128  # every packet is at least one byte for up to 128 pixels
    have = max(0, len(buf) - raster)
    if need > have:
        raise Malformed(
            f"the TGA raster is truncated: {w}x{h} at {depth} bits needs {need} bytes after byte {raster}, the file has {have}"
        )
    return Header(w, h, channels)
