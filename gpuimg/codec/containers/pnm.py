"""PNM (PBM, PGM, PPM): the header walk checked before any decoder sees the raster.

Example:
    >>> problem(b"P7", 1, 1)
    'the PNM magic number is damaged'
"""

from __future__ import annotations

from typing import Any

from ._common import size_mismatch

__all__ = ["TITLE", "problem"]

TITLE = "PNM"
_HEADER_LIMIT = 1 << 16  # comments make a header long; beyond this, do not look
_SPACE = b" \t\n\r\x0b\x0c"


def problem(buf: Any, width: int, height: int) -> str | None:
    """Why the PNM ``buf`` must not be decoded, or None: a header of numbers giving
    ``width`` x ``height`` (-1: not compared) and a valid maximum, a binary raster as
    long as they need.

    Example:
        >>> problem(b"P5 2 2 255\\n" + bytes(3), 2, 2)
        'the PNM raster is truncated: 2x2 needs 4 bytes after byte 11, the file has 3'
    """
    n = len(buf)
    head = bytes(buf[: min(n, _HEADER_LIMIT)])
    if len(head) < 2 or head[0] != 0x50 or head[1] not in b"123456":
        return "the PNM magic number is damaged"
    kind = head[1] - 0x30
    wanted = 2 if kind in (1, 4) else 3
    tokens: list[int] = []
    pos = 2
    while len(tokens) < wanted:
        while pos < len(head) and (head[pos] in _SPACE or head[pos] == 0x23):
            if head[pos] == 0x23:  # a comment runs to the end of the line
                stop = head.find(b"\n", pos)
                pos = len(head) if stop < 0 else stop
            pos += 1
        start = pos
        while pos < len(head) and 0x30 <= head[pos] <= 0x39:
            pos += 1
        if pos == len(head):
            if n > len(head):
                return None  # a header longer than the limit: nothing checked
            return "the PNM header is truncated"
        if pos == start or head[pos] not in _SPACE and head[pos] != 0x23:
            return f"the PNM header has a non-number at byte {pos}"
        tokens.append(int(head[start:pos]))
    w, h = tokens[0], tokens[1]
    maxval = tokens[2] if wanted == 3 else 1
    if not 1 <= maxval <= 65535:
        return f"the PNM header gives an invalid maximum value {maxval}"
    mismatch = size_mismatch("PNM header", w, h, width, height)
    if mismatch:
        return mismatch
    if kind <= 3:
        return None  # ASCII rasters: no fixed size to check
    sample = 1 if maxval < 256 else 2
    need = (w + 7) // 8 * h if kind == 4 else w * h * sample * (3 if kind == 6 else 1)
    raster = pos + 1  # exactly one whitespace byte ends the header
    if raster + need > n:
        return f"the PNM raster is truncated: {w}x{h} needs {need} bytes after byte {raster}, the file has {n - raster}"
    return None
