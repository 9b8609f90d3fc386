"""ICO and CUR: the directory walk to the entry Pillow decodes (the largest).

gpuimg decodes icons and cursors with Pillow, in the isolated child; this walk runs in
the caller first and checks each directory entry's offset and length against the data.
Pillow's choice: an ICO's largest entry (by area; of equal areas, the lowest colour
depth), a CUR's first entry that is wider and taller than every one before it.

Example:
    >>> header(b"\\x00\\x00\\x01\\x00\\x00\\x00")
    Traceback (most recent call last):
    ...
    gpuimg.codec.containers._common.Malformed: the ICO directory lists no images
"""

from __future__ import annotations

import math
import struct
from typing import Any

from ._common import Header, Malformed

__all__ = ["TITLE", "SIGNATURES", "header"]

TITLE = "ICO"
SIGNATURES = (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")  # icon, cursor
_PNG = b"\x89PNG\r\n\x1a\n"
# A PNG entry's colour type -> the channels it decodes to (palette: colour, or colour +
# alpha where a tRNS chunk comes before the pixels).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def _entry_channels(buf: Any, offset: int, size: int) -> int:
    """The channels Pillow decodes an entry to: a BMP entry always gets an alpha (its
    fourth byte or its AND mask); a PNG entry is what its IHDR says."""
    if bytes(buf[offset : offset + 8]) != _PNG:
        return 4
    if offset + 26 > len(buf):
        raise Malformed(f"the PNG image at byte {offset} is truncated before its IHDR")
    colour = buf[offset + 25]
    if colour not in _PNG_CHANNELS:
        raise Malformed(f"the PNG image at byte {offset} has an invalid colour type {colour}")
    channels = _PNG_CHANNELS[colour]
    if colour == 3:
        body = bytes(buf[offset : offset + size])
        trns, idat = body.find(b"tRNS"), body.find(b"IDAT")
        if 0 <= trns < (idat if idat >= 0 else len(body)):
            channels = 4
    return channels


def header(buf: Any) -> Header:
    """The size and layout of the entry Pillow decodes from the ICO or CUR ``buf``;
    Malformed naming what is wrong (an entry outside the data, an empty directory).

    Example:
        >>> entry = bytes([16, 16, 0, 0, 1, 0, 32, 0]) + struct.pack("<II", 8, 22)
        >>> header(b"\\x00\\x00\\x01\\x00\\x01\\x00" + entry + b"\\x89PNG\\r\\n\\x1a\\n" + bytes(8))
        Traceback (most recent call last):
        ...
        gpuimg.codec.containers._common.Malformed: the PNG image at byte 22 is truncated before its IHDR
    """
    if len(buf) < 6:
        raise Malformed(f"the ICO header is truncated (the data has {len(buf)} bytes)")
    _, kind, count = struct.unpack_from("<HHH", buf, 0)
    if count == 0:
        raise Malformed("the ICO directory lists no images")
    if 6 + 16 * count > len(buf):
        raise Malformed(f"the ICO directory of {count} entries runs past the end of the data")
    entries = []
    for k in range(count):
        w, h, colours, _, _, bpp, size, offset = struct.unpack_from("<BBBBHHII", buf, 6 + 16 * k)
        entries.append((w or 256, h or 256, bpp or (colours and math.ceil(math.log2(colours))) or 256, size, offset))
    if kind == 2:
        chosen = entries[0]
        for e in entries[1:]:
            if e[0] > chosen[0] and e[1] > chosen[1]:
                chosen = e
    else:
        # Pillow sorts by colour depth, then (stably) by area, largest first.
        chosen = sorted(sorted(entries, key=lambda e: e[2]), key=lambda e: e[0] * e[1], reverse=True)[0]
    w, h, _, size, offset = chosen
    if offset >= len(buf) or size == 0:
        raise Malformed(f"the {w}x{h} ICO entry points outside the data (byte {offset}, {size} bytes)")
    if kind == 2:
        if offset + 12 > len(buf):
            raise Malformed(f"the cursor bitmap at byte {offset} is truncated")
        # Pillow reads a cursor's size from its bitmap header (the height counts the mask).
        hsize, bw, bh = struct.unpack_from("<Iii", buf, offset)
        if hsize < 40 or bw <= 0 or bh < 2:
            raise Malformed(f"the cursor bitmap at byte {offset} has an invalid header")
        return Header(bw, bh // 2, 4)
    return Header(w, h, _entry_channels(buf, offset, size))
