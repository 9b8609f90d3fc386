"""PSD (Photoshop): the file header and the image resources (ICC, EXIF, XMP).

gpuimg decodes a PSD's composite image (the flattened picture Photoshop saves beside the
layers) with Pillow, in the isolated child. Pillow reads 8-bit (and 1-bit) files: gray,
palette, RGB(A), CMYK (converted to RGB, as Pillow's ``convert`` does) and Lab; a 16- or
32-bit PSD is refused here.

Example:
    >>> header(b"8BPS\\x00\\x01" + bytes(6) + b"\\x00\\x03" + struct.pack(">II", 2, 5) + b"\\x00\\x08\\x00\\x03")
    Header(width=5, height=2, channels=3, dtype='uint8')
"""

from __future__ import annotations

import struct
from typing import Any

from ...meta import exif
from ._common import Header, Malformed

__all__ = ["TITLE", "SIGNATURE", "header", "read_metadata"]

TITLE = "PSD"
SIGNATURE = b"8BPS"
# (colour mode, bits) -> the channels Pillow's mode decodes to; None: its mode needs
# that many channels in the file.
_MODES = {(0, 1): 1, (0, 8): 1, (1, 8): 1, (2, 8): 3, (3, 8): 3, (4, 8): 3, (7, 8): 1, (8, 8): 1, (9, 8): 3}
_NEEDS = {(3, 8): 3, (4, 8): 4, (9, 8): 3}
_RESOURCES = {1039: "icc", 1058: "exif", 1060: "xmp"}


def header(buf: Any) -> Header:
    """The size and layout of the PSD ``buf``'s composite; Malformed naming what is
    wrong (a version, mode or depth Pillow does not read, a header cut short).

    Example:
        >>> header(b"8BPS\\x00\\x01" + bytes(6) + b"\\x00\\x03" + struct.pack(">II", 2, 5) + b"\\x00\\x10\\x00\\x03")
        Traceback (most recent call last):
        ...
        gpuimg.codec.containers._common.Malformed: the PSD is 16-bit colour mode 3, which Pillow does not decode
    """
    if len(buf) < 26:
        raise Malformed(f"the PSD header is truncated (the data has {len(buf)} bytes)")
    if bytes(buf[:4]) != SIGNATURE or struct.unpack_from(">H", buf, 4)[0] != 1:
        raise Malformed("the PSD signature or version is not Photoshop's (PSB files are not read)")
    channels, h, w, bits, mode = struct.unpack_from(">HIIHH", buf, 12)
    if (mode, bits) not in _MODES:
        raise Malformed(f"the PSD is {bits}-bit colour mode {mode}, which Pillow does not decode")
    if channels < _NEEDS.get((mode, bits), 1):
        raise Malformed(f"the PSD has {channels} channels, too few for its colour mode {mode}")
    if w == 0 or h == 0:
        raise Malformed(f"the PSD header gives an empty size {w}x{h}")
    out = 4 if (mode, bits) == (3, 8) and channels >= 4 else _MODES[(mode, bits)]
    return Header(w, h, out)


def read_metadata(buf: Any, found: dict[str, Any], problems: list[str]) -> None:
    """The ICC profile, EXIF block and XMP packet of the PSD ``buf``'s image resources
    (IDs 1039, 1058, 1060), into ``found``.

    Example:
        >>> found = {}; read_metadata(b"8BPS", found, []); found
        {}
    """
    n = len(buf)
    if n < 30:
        return
    pos = 26 + 4 + struct.unpack_from(">I", buf, 26)[0]  # after the colour mode data
    if pos + 4 > n:
        return
    end = min(n, pos + 4 + struct.unpack_from(">I", buf, pos)[0])
    pos += 4
    while pos + 8 <= end and bytes(buf[pos : pos + 4]) == b"8BIM":
        rid = struct.unpack_from(">H", buf, pos + 4)[0]
        name_len = buf[pos + 6]
        pos += 6 + ((name_len + 2) & ~1)  # the Pascal name, padded to even
        if pos + 4 > end:
            return
        size = struct.unpack_from(">I", buf, pos)[0]
        body = pos + 4
        if body + size > end:
            problems.append(f"the PSD image resource {rid} runs past the end of its section")
            return
        key = _RESOURCES.get(rid)
        if key is not None and key not in found:
            raw = bytes(buf[body : body + size])
            found[key] = exif.unprefixed(raw) if key == "exif" else raw
        pos = body + size + (size & 1)
