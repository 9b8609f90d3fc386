"""WebP: its one RIFF chunk walker, and everything gpuimg does with the chunks.

:func:`chunks` walks the chunks inside the RIFF; the rest asks it: :func:`problem` (the
structure check), :func:`read_metadata` (EXIF, XMP, ICCP) and
:func:`embed` (VP8X with its flags, ICCP before and EXIF/XMP after the image).

Example:
    >>> data = b"RIFF\\x0c\\x00\\x00\\x00WEBPXMP \\x00\\x00\\x00\\x00"
    >>> list(chunks(data, riff_end(data)))
    [(12, b'XMP ', 0)]
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from ...errors import EncodeError
from ...meta import exif
from ...meta.metadata import Metadata
from ._common import chunk_name, size_mismatch

__all__ = ["TITLE", "ChunkOverrun", "chunks", "riff_end", "problem", "read_metadata", "embed"]

TITLE = "WebP"
_MAX_METADATA_CHUNKS = 100_000  # metadata follows the image: a bound on that walk's time
_IMAGE = (b"ALPH", b"VP8 ", b"VP8L", b"ANIM", b"ANMF")


class ChunkOverrun(ValueError):
    """A chunk claims more bytes than its RIFF holds."""

    def __init__(self, pos: int, kind: bytes, size: int):
        super().__init__(f"the WebP {kind!r} chunk runs past the data")
        self.pos, self.kind, self.size = pos, kind, size


def riff_end(buf: Any) -> int:
    """Where the RIFF ends: its size field's end, or the data's where that is shorter
    (trailing bytes after the RIFF are ignored, as libwebp does).

    Example:
        >>> riff_end(b"RIFF\\x04\\x00\\x00\\x00WEBP"), riff_end(b"RIFF\\xff\\x00\\x00\\x00WEBP")
        (12, 12)
    """
    return min(len(buf), 8 + struct.unpack_from("<I", buf, 4)[0])


def chunks(buf: Any, end: int) -> Iterator[tuple[int, bytes, int]]:
    """(position, type, size) of each chunk from byte 12 up to ``end`` (:func:`riff_end`,
    or less), in file order; the body is ``buf[pos + 8 : pos + 8 + size]``, padded to
    an even length. Every chunk yielded lies whole before ``end``: the walk ends where no
    8-byte chunk header is left and raises :class:`ChunkOverrun` at a chunk that claims
    more than follows. Each step moves at least 8 bytes on.

    Example:
        >>> list(chunks(b"RIFF\\x10\\x00\\x00\\x00WEBPEXIF\\x09\\x00\\x00\\x00", 24))
        Traceback (most recent call last):
        ...
        gpuimg.codec.containers.webp.ChunkOverrun: the WebP b'EXIF' chunk runs past the data
    """
    pos = 12
    while pos + 8 <= end:
        kind, size = struct.unpack_from("<4sI", buf, pos)
        if pos + 8 + size > end:
            raise ChunkOverrun(pos, kind, size)
        yield pos, kind, size
        pos += 8 + size + (size & 1)


def problem(buf: Any, width: int, height: int) -> str | None:
    """Why the WebP ``buf`` must not be decoded, or None: the RIFF header and its size,
    every chunk inside it, VP8X first, an image chunk whose size (and the canvas's) is
    ``width`` x ``height`` (-1: not compared).

    Example:
        >>> problem(b"RIFF\\x04\\x00\\x00\\x00WEBP", 1, 1)
        'the WebP has no VP8 or VP8L image chunk (no image data)'
    """
    n = len(buf)
    if n < 12 or buf[:4] != b"RIFF" or buf[8:12] != b"WEBP":
        return "the WebP RIFF header is damaged or truncated"
    riff = struct.unpack_from("<I", buf, 4)[0]
    if riff + 8 > n:
        return f"the WebP data is truncated (its RIFF header claims {riff + 8} bytes, the data has {n})"
    end = riff + 8  # trailing bytes after the RIFF are ignored, as libwebp does
    canvas, image = None, None
    try:
        for pos, kind, size in chunks(buf, end):
            body = pos + 8
            if pos == 12 and kind not in (b"VP8 ", b"VP8L", b"VP8X"):
                return f"the first WebP chunk is {chunk_name(kind)}, not VP8, VP8L or VP8X"
            if kind == b"VP8X":
                if pos != 12:
                    return "the WebP VP8X chunk is not the first chunk"
                if size < 10:
                    return f"the WebP VP8X chunk is {size} bytes, less than 10"
                flags = buf[body]
                cw = 1 + int.from_bytes(bytes(buf[body + 4 : body + 7]), "little")
                ch = 1 + int.from_bytes(bytes(buf[body + 7 : body + 10]), "little")
                canvas = (cw, ch, bool(flags & 0x02))
            elif kind in (b"VP8 ", b"VP8L") and image is None:
                image = _frame_size(buf, kind, body, size)
                if isinstance(image, str):
                    return image
    except ChunkOverrun as cut:
        return (
            f"the WebP chunk {chunk_name(cut.kind)} at byte {cut.pos} claims {cut.size} bytes but only "
            f"{end - cut.pos - 8} follow (a corrupt size or a truncated file)"
        )
    if canvas is not None:
        mismatch = size_mismatch("WebP VP8X canvas", canvas[0], canvas[1], width, height)
        if mismatch:
            return mismatch
        if canvas[2]:  # animation: frames are ANMF chunks; the canvas is what decodes
            return None
        if image is None:
            return "the WebP has no VP8 or VP8L image chunk (no image data)"
        return size_mismatch("WebP image chunk", image[0], image[1], canvas[0], canvas[1])
    if image is None:
        return "the WebP has no VP8 or VP8L image chunk (no image data)"
    return size_mismatch(f"WebP {'VP8L' if buf[15] == 0x4C else 'VP8'} chunk", image[0], image[1], width, height)


def _frame_size(buf: Any, kind: bytes, body: int, size: int) -> tuple[int, int] | str:
    """(width, height) of a VP8 (lossy) or VP8L (lossless) bitstream, or the reason not."""
    if kind == b"VP8 ":
        if size < 10:
            return f"the WebP VP8 chunk is {size} bytes, too short for its frame header"
        if buf[body] & 1 or buf[body + 3 : body + 6] != b"\x9d\x01\x2a":
            return "the WebP VP8 chunk does not start with a key frame (corrupt)"
        w, h = struct.unpack_from("<HH", buf, body + 6)
        return w & 0x3FFF, h & 0x3FFF
    if size < 5 or buf[body] != 0x2F:
        return "the WebP VP8L chunk has no lossless signature (corrupt)"
    bits = struct.unpack_from("<I", buf, body + 1)[0]
    if bits >> 29:
        return f"the WebP VP8L chunk has an unknown version {bits >> 29}"
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1


def read_metadata(buf: Any, found: dict[str, Any], problems: list[str]) -> None:
    """Put the raw EXIF, XMP and ICC profile of the WebP ``buf`` into ``found``, the
    first of each; a chunk past the data goes into ``problems``.

    Example:
        >>> found = {}
        >>> read_metadata(b"RIFF\\x10\\x00\\x00\\x00WEBPXMP \\x04\\x00\\x00\\x00<x/>", found, [])
        >>> found
        {'xmp': b'<x/>'}
    """
    try:
        for count, (pos, kind, size) in enumerate(chunks(buf, riff_end(buf))):
            if count == _MAX_METADATA_CHUNKS:
                return
            if kind == b"EXIF" and "exif" not in found:
                found["exif"] = exif.unprefixed(bytes(buf[pos + 8 : pos + 8 + size]))
            elif kind == b"XMP " and "xmp" not in found:
                found["xmp"] = bytes(buf[pos + 8 : pos + 8 + size])
            elif kind == b"ICCP" and "icc" not in found:
                found["icc"] = bytes(buf[pos + 8 : pos + 8 + size])
    except ChunkOverrun as exc:
        problems.append(str(exc))


def embed(data: bytes, meta: Metadata, has_alpha: bool = False) -> bytes:
    """The encoded WebP ``data`` rebuilt with ``meta``: a VP8X chunk with its flags (the
    encoder's animation and alpha kept, ``has_alpha`` for a simple file's alpha), ICCP
    before the image chunks and EXIF/XMP after them. EncodeError for data that is not
    a WebP.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise EncodeError("cannot add metadata: the encoded data is not a WebP")
    found = [(kind, data[pos + 8 : pos + 8 + size]) for pos, kind, size in chunks(data, riff_end(data))]
    image = [(k, b) for k, b in found if k in _IMAGE]
    vp8x = next((b for k, b in found if k == b"VP8X"), None)
    if vp8x is not None:
        flags = vp8x[0] & 0x12  # animation and alpha as the encoder set them
        canvas = vp8x[4:10]
    else:
        w, h, alpha = _simple_size(image)
        flags = 0x10 if (alpha or has_alpha) else 0
        canvas = struct.pack("<I", w - 1)[:3] + struct.pack("<I", h - 1)[:3]
    flags |= (0x20 if meta.icc is not None else 0) | (0x08 if meta.exif is not None else 0) | (0x04 if meta.xmp is not None else 0)
    body = [(b"VP8X", bytes((flags, 0, 0, 0)) + canvas)]
    if meta.icc is not None:
        body.append((b"ICCP", meta.icc))
    body += image
    if meta.exif is not None:
        body.append((b"EXIF", meta.exif))
    if meta.xmp is not None:
        body.append((b"XMP ", meta.xmp.encode("utf-8")))
    payload = b"".join(k + struct.pack("<I", len(b)) + b + (b"\x00" if len(b) & 1 else b"") for k, b in body)
    return b"RIFF" + struct.pack("<I", 4 + len(payload)) + b"WEBP" + payload


def _simple_size(image: list[tuple[bytes, bytes]]) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple (VP8/VP8L) WebP from its bitstream header."""
    for kind, body in image:
        if kind == b"VP8 ":  # frame tag (3), start code (3), 14-bit width and height
            w, h = struct.unpack_from("<HH", body, 6)
            return w & 0x3FFF, h & 0x3FFF, False
        if kind == b"VP8L":  # signature 0x2f, then 14 bits w-1, 14 bits h-1, 1 bit alpha
            bits = struct.unpack_from("<I", body, 1)[0]
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    raise ValueError("no VP8/VP8L image chunk")  # builtin: a malformed file, reported for that file by the caller
