"""JPEG 2000: the box walk of a JP2 file and the main header of its codestream, checked
before any decoder sees them (nvJPEG2000 and OpenJPEG divide by and index with these).

Example:
    >>> problem(b"junk", 1, 1)
    'the JPEG 2000 signature is damaged'
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from ._common import chunk_name, size_mismatch

__all__ = ["SIGNATURE", "TITLE", "problem"]

TITLE = "JPEG 2000"
SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def problem(buf: Any, width: int, height: int) -> str | None:
    """Why the JPEG 2000 ``buf`` (a JP2 file or a bare codestream) must not be decoded,
    or None: every box inside the data, the ihdr size and the codestream's SIZ equal to
    ``width`` x ``height`` (-1: not compared), SIZ and COD within T.800's limits, the
    tile-parts inside the data and an EOC marker after them.

    Example:
        >>> problem(b"\\xff\\x4f\\xff\\x51", 1, 1)
        'the JPEG 2000 codestream is truncated (it ends inside its SIZ marker)'
    """
    n = len(buf)
    if buf[:2] == b"\xff\x4f":
        return _codestream(buf, 0, n, width, height)
    if buf[:12] != SIGNATURE:
        return "the JPEG 2000 signature is damaged"
    size, codestream = None, None
    for box in _boxes(buf, 12, n):
        if isinstance(box, str):
            return box
        kind, body, end = box
        if kind == b"jp2h":
            size = _ihdr(buf, body, end)
            if isinstance(size, str):
                return size
        elif kind == b"jp2c" and codestream is None:
            codestream = (body, end)
    if size is None:
        return "the JP2 file has no jp2h/ihdr header box"
    mismatch = size_mismatch("JP2 ihdr box", size[0], size[1], width, height)
    if mismatch:
        return mismatch
    if codestream is None:
        return "the JP2 file has no jp2c codestream box (truncated or corrupt)"
    return _codestream(buf, codestream[0], codestream[1], width, height)


def _box(buf: Any, pos: int, end: int) -> tuple[bytes, int, int] | str:
    """(type, body start, end) of the box at ``pos``, or the reason it does not fit."""
    if pos + 8 > end:
        return f"the JPEG 2000 data is truncated (a box header at byte {pos} is cut off)"
    length, kind = struct.unpack_from(">I4s", buf, pos)
    body = pos + 8
    if length == 1:
        if pos + 16 > end:
            return f"the JPEG 2000 data is truncated (a box header at byte {pos} is cut off)"
        length = struct.unpack_from(">Q", buf, pos + 8)[0]
        body = pos + 16
    elif length == 0:  # the last box: it runs to the end of the data
        return kind, body, end
    if length < body - pos:
        return f"the JPEG 2000 box {chunk_name(kind)} at byte {pos} claims an impossible length {length}"
    if pos + length > end:
        return (
            f"the JPEG 2000 box {chunk_name(kind)} at byte {pos} claims {length} bytes but only "
            f"{end - pos} are there (a corrupt length or a truncated file)"
        )
    return kind, body, pos + length


def _ihdr(buf: Any, pos: int, end: int) -> tuple[int, int] | str:
    for box in _boxes(buf, pos, end):
        if isinstance(box, str):
            return box
        kind, body, stop = box
        if kind == b"ihdr":
            if stop - body < 14:
                return f"the JP2 ihdr box is {stop - body} bytes, less than 14"
            h, w = struct.unpack_from(">II", buf, body)
            return w, h
    return "the JP2 jp2h box holds no ihdr box"


def _boxes(buf: Any, pos: int, end: int) -> Iterator[tuple[bytes, int, int] | str]:
    """The boxes from ``pos`` to ``end``, each (type, body start, end); the walk's one loop,
    for the file and the boxes inside its header box. A box that does not fit is yielded
    as the reason, last."""
    while pos < end:
        box = _box(buf, pos, end)
        yield box
        if isinstance(box, str):
            return
        pos = box[2]


def _codestream(buf: Any, start: int, end: int, width: int, height: int) -> str | None:
    """The main header (SIZ), the tile-part lengths and the end marker of a codestream."""
    if start + 4 + 38 > end:
        return "the JPEG 2000 codestream is truncated (it ends inside its SIZ marker)"
    soc, siz, lsiz = struct.unpack_from(">HHH", buf, start)
    if soc != 0xFF4F or siz != 0xFF51:
        return "the JPEG 2000 codestream does not start with SOC and SIZ markers"
    xsiz, ysiz, xosiz, yosiz, xtsiz, ytsiz, xtosiz, ytosiz, csiz = struct.unpack_from(">8IH", buf, start + 8)
    if lsiz != 38 + 3 * csiz or csiz == 0 or start + 4 + lsiz > end:
        return f"the JPEG 2000 SIZ marker is corrupt or cut off (length {lsiz}, {csiz} components)"
    if xsiz <= xosiz or ysiz <= yosiz or xtsiz == 0 or ytsiz == 0:
        return f"the JPEG 2000 SIZ marker gives an empty image or tile ({xsiz}-{xosiz} x {ysiz}-{yosiz})"
    # The constraints of ITU-T T.800 A.5.1: decoders divide by these and index tiles with them.
    if xtosiz > xosiz or ytosiz > yosiz or xtsiz + xtosiz <= xosiz or ytsiz + ytosiz <= yosiz:
        return f"the JPEG 2000 SIZ marker places its tile grid outside the image (tile offset {xtosiz},{ytosiz})"
    tiles = -(-(xsiz - xtosiz) // xtsiz) * -(-(ysiz - ytosiz) // ytsiz)
    if tiles > 65535:
        return f"the JPEG 2000 SIZ marker asks for {tiles:,} tiles (at most 65,535)"
    for c in range(csiz):
        ssiz, xrsiz, yrsiz = struct.unpack_from(">BBB", buf, start + 42 + 3 * c)
        if (ssiz & 0x7F) > 37 or xrsiz == 0 or yrsiz == 0:
            return f"the JPEG 2000 SIZ marker gives component {c} an impossible depth or subsampling ({ssiz}, {xrsiz}x{yrsiz})"
    mismatch = size_mismatch("JPEG 2000 SIZ marker", xsiz - xosiz, ysiz - yosiz, width, height)
    if mismatch:
        return mismatch
    pos = start + 4 + lsiz
    while True:  # the rest of the main header, up to the first tile-part (SOT)
        if pos + 4 > end:
            return "the JPEG 2000 codestream is truncated (it ends in the main header, before any tile data)"
        marker, length = struct.unpack_from(">HH", buf, pos)
        if marker == 0xFF90:
            break
        if marker >> 8 != 0xFF or length < 2:
            return f"the JPEG 2000 main header is corrupt at byte {pos} (marker {marker:#06x})"
        if marker == 0xFF52:  # COD: the coding style every tile uses
            bad = _cod(buf, pos, length, end)
            if bad:
                return bad
        pos += 2 + length
    parts, to_end = 0, False
    while pos + 12 <= end and struct.unpack_from(">H", buf, pos)[0] == 0xFF90:
        tile, psot = struct.unpack_from(">HI", buf, pos + 4)
        if psot == 0:  # the last tile-part, running to the EOC marker
            to_end = True
            break
        if psot < 14:
            return f"the JPEG 2000 tile-part at byte {pos} claims an impossible length {psot}"
        if pos + psot > end:
            return (
                f"the JPEG 2000 data is truncated: tile-part {parts} (tile {tile}) at byte {pos} claims "
                f"{psot} bytes, only {end - pos} are there"
            )
        pos += psot
        parts += 1
    if not to_end and buf[pos : pos + 2] == b"\xff\xd9":
        return None
    if end - start >= 2 and buf[end - 2 : end] == b"\xff\xd9":
        return None
    return "the JPEG 2000 codestream is truncated (no EOC marker after its tile data)"


def _cod(buf: Any, pos: int, length: int, end: int) -> str | None:
    """The COD marker's limits (T.800 A.6.1): layers, decomposition levels, code-blocks."""
    if length < 12 or pos + 2 + length > end:
        return f"the JPEG 2000 COD marker at byte {pos} is corrupt or cut off"
    layers, _, levels, xcb, ycb, _, transform = struct.unpack_from(">HBBBBBB", buf, pos + 6)
    if layers == 0 or levels > 32 or xcb > 8 or ycb > 8 or xcb + ycb > 8 or transform > 1:
        return (
            f"the JPEG 2000 COD marker at byte {pos} is out of range ({layers} layers, {levels} levels, "
            f"code-block exponents {xcb}+{ycb}, transform {transform})"
        )
    return None
