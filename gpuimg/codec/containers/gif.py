"""GIF: the block walk to the first frame (its size, its transparency), XMP and ICC.

gpuimg decodes a GIF with Pillow, in the isolated child; this walk runs in the caller
first, on bytes from anywhere, so it reads with ``struct.unpack_from`` and checks each
length against the data. An animated GIF decodes as its first frame, as Pillow opens it.

Example:
    >>> header(b"GIF89a\\x02\\x00\\x01\\x00\\x00\\x00\\x00,\\x00\\x00\\x00\\x00\\x02\\x00\\x01\\x00\\x00\\x02\\x02L\\x01\\x00;")
    Header(width=2, height=1, channels=3, dtype='uint8')
"""

from __future__ import annotations

import struct
from typing import Any

from ._common import Header, Malformed

__all__ = ["TITLE", "SIGNATURES", "header", "read_metadata"]

TITLE = "GIF"
SIGNATURES = (b"GIF87a", b"GIF89a")
_XMP_APP = b"XMP DataXMP"
_ICC_APP = b"ICCRGBG1012"


def _sub_blocks(buf: Any, pos: int) -> tuple[bytes, int]:
    """The data of the sub-blocks starting at ``pos`` and the position after their end."""
    n = len(buf)
    parts = []
    while True:
        if pos >= n:
            raise Malformed(f"a block runs past the end of the data (at byte {pos})")
        size = buf[pos]
        if size == 0:
            return b"".join(parts), pos + 1
        if pos + 1 + size > n:
            raise Malformed(f"a sub-block of {size} bytes at byte {pos} runs past the end of the data")
        parts.append(bytes(buf[pos + 1 : pos + 1 + size]))
        pos += 1 + size


def _walk(buf: Any, found: dict[str, Any] | None = None) -> Header:
    """The first frame's Header; ``found`` collects the XMP and ICC application blocks
    met before it. Raises Malformed (or struct.error) for a structure cut short."""
    if bytes(buf[:6]) not in SIGNATURES:
        raise Malformed("the GIF signature is damaged")
    if len(buf) < 13:
        raise Malformed(f"the GIF data is truncated (it ends at byte {len(buf)}, inside the screen descriptor)")
    w, h, flags = struct.unpack_from("<HHB", buf, 6)
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    transparent = False
    while True:
        if pos >= len(buf):
            raise Malformed(f"the GIF data ends at byte {len(buf)}, before its first image")
        kind = buf[pos]
        if kind == 0x21:  # an extension: label, then sub-blocks
            if pos + 1 >= len(buf):
                raise Malformed("the GIF data ends inside an extension")
            label = buf[pos + 1]
            data, end = _sub_blocks(buf, pos + 2)
            if label == 0xF9 and len(data) >= 4:
                transparent = bool(data[0] & 1)  # the graphic control block's transparent-index flag
            elif label == 0xFF and found is not None:
                # Application blocks keep their payload's bytes raw: the sub-block
                # lengths are part of the XMP packet (its "magic trailer") and the ICC.
                ident = data[:11]
                if ident == _XMP_APP and "xmp" not in found:
                    raw = bytes(buf[pos + 14 : end - 1])
                    found["xmp"] = raw[: raw.rfind(b"\x01\xff") if b"\x01\xff" in raw else len(raw)]
                elif ident == _ICC_APP and "icc" not in found:
                    found["icc"] = data[11:]
            pos = end
        elif kind == 0x2C:  # the first image descriptor
            if pos + 10 > len(buf):
                raise Malformed("the GIF data ends inside its first image descriptor")
            x0, y0, fw, fh = struct.unpack_from("<HHHH", buf, pos + 1)
            # Pillow widens the canvas to a first frame that reaches past the screen.
            return Header(max(w, x0 + fw), max(h, y0 + fh), 4 if transparent else 3)
        elif kind == 0x3B:
            raise Malformed("the GIF holds no image (its trailer comes first)")
        else:
            raise Malformed(f"the GIF has an unknown block 0x{kind:02x} at byte {pos}")


def header(buf: Any) -> Header:
    """The size and layout of the GIF ``buf``'s first frame: RGB, RGBA where it has a
    transparent palette index. Raises Malformed naming what is wrong.

    Example:
        >>> header(b"GIF89a\\x01\\x00")
        Traceback (most recent call last):
        ...
        gpuimg.codec.containers._common.Malformed: the GIF data is truncated (it ends at byte 8, inside the screen descriptor)
    """
    return _walk(buf)


def read_metadata(buf: Any, found: dict[str, Any], problems: list[str]) -> None:
    """The XMP and ICC application blocks before the first frame, into ``found``.

    Example:
        >>> found = {}; read_metadata(b"GIF89a", found, []); found
        {}
    """
    try:
        _walk(buf, found)
    except (ValueError, struct.error):
        pass  # what was read before the damage is kept
