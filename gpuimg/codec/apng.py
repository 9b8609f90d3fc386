"""The default image of an animated PNG (APNG), as a plain PNG that any PNG decoder reads.

An APNG is a PNG with an ``acTL`` chunk before its image data: the ``IDAT`` chunks hold
the default image (what a reader without animation support shows, and what Pillow
returns for frame 0), and ``fcTL``/``fdAT`` chunks hold the animation frames; the default
image is the first frame or, without an ``fcTL`` before ``IDAT``, no frame at all.
nvImageCodec 0.9 decodes an APNG to one of its animation frames instead, silently. A
still image is what gpuimg decodes, so :func:`default_image` removes the animation
chunks and the decoder gets the default image.

Example:
    >>> default_image(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(16)) is None  # not animated
    True
"""

from __future__ import annotations

import struct
from typing import Any

from ._bytes import byte_view

__all__ = ["default_image"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ANIMATION = frozenset({b"acTL", b"fcTL", b"fdAT"})
_MAX_LENGTH = 2**31 - 1  # the PNG specification's limit on a chunk's length


def _animated(buf: Any) -> bool:
    """True when an ``acTL`` chunk comes before the first ``IDAT``: only the chunk
    headers up to there are read (a still PNG costs a handful of reads)."""
    pos, end = 8, len(buf)
    while pos + 8 <= end:
        length, kind = struct.unpack_from(">I4s", buf, pos)
        if kind == b"acTL":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        pos += 12 + length
    return False


def default_image(data: Any) -> bytes | None:
    """The default image of the APNG ``data`` as the bytes of a plain PNG; None when
    ``data`` is not an APNG (a still PNG, another format) or its chunks are malformed.

    Every chunk but ``acTL``, ``fcTL`` and ``fdAT`` is copied whole, in order (so their
    CRCs hold), up to and including ``IEND``; bytes after ``IEND`` are dropped (a file cut
    right after a chunk comes back without ``IEND``, as cut as it came). A chunk
    length that runs past the end of ``data``, or an APNG without ``IDAT``, gives None:
    the decoder then reports the file as it would. ``data``: bytes or any byte buffer.

    Example:
        >>> import struct, zlib
        >>> def chunk(kind, body=b""):
        ...     return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        >>> ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
        >>> idat, end = chunk(b"IDAT", zlib.compress(b"\\x00\\x80")), chunk(b"IEND")
        >>> animated = b"\\x89PNG\\r\\n\\x1a\\n" + ihdr + chunk(b"acTL", bytes(8)) + idat + end
        >>> default_image(animated) == b"\\x89PNG\\r\\n\\x1a\\n" + ihdr + idat + end
        True
        >>> default_image(b"\\x89PNG\\r\\n\\x1a\\n" + ihdr + idat + end) is None
        True
    """
    try:
        buf = byte_view(data)
    except TypeError:  # not a byte buffer
        return None
    if bytes(buf[:8]) != _SIGNATURE or not _animated(buf):
        return None
    # Kept spans of the file, neighbouring chunks merged: one copy each at the join.
    spans: list[list[int]] = [[0, 8]]
    pos, end, image_data = 8, len(buf), False
    while pos < end:
        if pos + 12 > end:
            return None  # a cut chunk header
        length, kind = struct.unpack_from(">I4s", buf, pos)
        stop = pos + 12 + length
        if length > _MAX_LENGTH or stop > end:
            return None
        if kind not in _ANIMATION:
            if spans[-1][1] == pos:
                spans[-1][1] = stop
            else:
                spans.append([pos, stop])
        image_data |= kind == b"IDAT"
        pos = stop
        if kind == b"IEND":
            break
    if not image_data:
        return None
    return b"".join(buf[a:b] for a, b in spans)
