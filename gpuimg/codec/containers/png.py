"""PNG: its one chunk walker, and everything gpuimg does with the chunks.

:func:`chunks` walks the chunk headers; the rest asks it: :func:`problem` (the structure
check before any decoder sees the file), :func:`read_metadata` (eXIf, iCCP, the XMP text chunk, ImageMagick's raw EXIF profile),
:func:`orientation_parts` (where the orientation may be: the same chunks),
:func:`embed` (the same chunks into an encoded PNG) and :func:`default_image` (an
animated PNG's still image).

Example:
    >>> [kind for _, _, kind in chunks(SIGNATURE + chunk(b"IHDR", bytes(13)) + chunk(b"IEND"))]
    [b'IHDR', b'IEND']
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any

from ...errors import EncodeError
from ...meta import exif
from ...meta.metadata import Metadata
from .._bytes import byte_view
from ._common import chunk_name, size_mismatch

__all__ = ["SIGNATURE", "TITLE", "ChunkOverrun", "chunks", "chunk", "problem", "read_metadata",
           "orientation_parts", "text_of", "embed", "default_image", "XMP_KEYWORD"]  # fmt: skip

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TITLE = "PNG"
XMP_KEYWORD = b"XML:com.adobe.xmp"
MAX_LENGTH = 2**31 - 1  # the PNG specification's limit on a chunk's length
_CHUNK = struct.Struct(">I4s")
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_ANIMATION = frozenset({b"acTL", b"fcTL", b"fdAT"})
_MAX_INFLATED = 64 << 20  # a compressed profile or XMP inflating past this is a bomb
_MAX_METADATA_CHUNKS = 100_000  # metadata may follow IDAT: a bound on that walk's time
_TEXT = (b"tEXt", b"zTXt", b"iTXt")
_KEYWORD_MAX = 80  # a PNG keyword is 1-79 bytes, then its NUL
_REPLACED_TEXT = frozenset({XMP_KEYWORD, *exif.RAW_PROFILE_KEYWORDS})  # what embed() replaces


class ChunkOverrun(ValueError):
    """A chunk claims more bytes than the data holds (or more than PNG allows)."""

    def __init__(self, pos: int, length: int, kind: bytes, n: int):
        super().__init__(f"the PNG chunk {chunk_name(kind)} at byte {pos} claims {length} bytes")
        self.pos, self.length, self.kind, self.n = pos, length, kind, n


def chunks(buf: Any, pos: int = 8) -> Iterator[tuple[int, int, bytes]]:
    """(position, body length, type) of each chunk from ``pos`` on, in file order.

    Every chunk yielded lies whole inside ``buf`` (its 12 bytes of length, type and CRC
    included), so its body is ``buf[pos + 8 : pos + 8 + length]``. The walk ends quietly
    where no whole chunk header is left (a file cut between chunks: the caller, which
    saw no IEND, knows) and raises :class:`ChunkOverrun` at a chunk that claims more than
    follows. It never reads past the data, and each step moves at least 12 bytes on, so
    junk costs at most a pass. One ``struct`` read per chunk on the caller's buffer, no
    copies: a PNG of thousands of IDAT chunks costs a few hundred microseconds.

    Example:
        >>> list(chunks(SIGNATURE + chunk(b"IEND")))
        [(8, 0, b'IEND')]
        >>> list(chunks(SIGNATURE + chunk(b"IDAT", b"wxyz")[:-3]))
        Traceback (most recent call last):
        ...
        gpuimg.codec.containers.png.ChunkOverrun: the PNG chunk 'IDAT' at byte 8 claims 4 bytes
    """
    n = len(buf)
    unpack = _CHUNK.unpack_from
    while pos + 12 <= n:
        length, kind = unpack(buf, pos)
        end = pos + 12 + length
        if end > n or length > MAX_LENGTH:
            raise ChunkOverrun(pos, length, kind, n)
        yield pos, length, kind
        pos = end


def chunk(kind: bytes, body: bytes = b"") -> bytes:
    """One chunk's bytes: length, ``kind``, ``body`` and its CRC.

    Example:
        >>> chunk(b"IEND").hex()
        '0000000049454e44ae426082'
    """
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def problem(buf: Any, width: int, height: int) -> str | None:
    """Why the PNG ``buf`` must not be decoded, or None: the signature, an IHDR first
    that gives ``width`` x ``height`` (-1: not compared) and a valid depth, every chunk
    inside the data, PLTE before the image data of a palette image, IDAT, one IHDR, IEND.

    Example:
        >>> problem(SIGNATURE, 1, 1)
        'the PNG data is truncated (it ends at byte 8, before the IHDR chunk)'
    """
    n = len(buf)
    if buf[:8] != SIGNATURE:
        return "the PNG signature is damaged"
    if n < 33:
        return f"the PNG data is truncated (it ends at byte {n}, before the IHDR chunk)"
    length, kind = _CHUNK.unpack_from(buf, 8)
    if kind != b"IHDR" or length != 13:
        return f"the first PNG chunk is {chunk_name(kind)} of {length} bytes, not the 13-byte IHDR"
    w, h, depth, colour = struct.unpack_from(">IIBB", buf, 16)
    mismatch = size_mismatch("PNG IHDR chunk", w, h, width, height)
    if mismatch:
        return mismatch
    if depth not in _DEPTHS.get(colour, ()):
        return f"the PNG IHDR chunk gives an invalid bit depth {depth} for colour type {colour}"
    idat, plte = False, False
    try:
        # The hot loop of big files (thousands of IDATs): a compare or two per chunk.
        for pos, _, kind in chunks(buf, 33):
            if kind == b"IDAT":
                if not idat and colour == 3 and not plte:
                    return "the palette PNG has no PLTE chunk before its image data"
                idat = True
            elif kind == b"IEND":
                return None if idat else "the PNG has no IDAT chunk (no image data)"
            elif kind == b"PLTE":
                plte = True
            elif kind == b"IHDR":
                return f"the PNG has a second IHDR chunk at byte {pos}"
            elif not kind.isalpha():
                return f"the PNG chunk at byte {pos} has an invalid type {kind!r} (corrupt data)"
    except ChunkOverrun as cut:
        return (
            f"the PNG chunk {chunk_name(cut.kind)} at byte {cut.pos} claims {cut.length} bytes but only "
            f"{cut.n - cut.pos - 12} follow (a corrupt length or a truncated file)"
        )
    return f"the PNG data is truncated (it ends at byte {n}, before the IEND chunk)"


def read_metadata(buf: Any, found: dict[str, Any], problems: list[str]) -> None:
    """Put the raw EXIF, ICC profile (iCCP, inflated) and XMP packet of the PNG ``buf``
    into ``found``, the first of each, from every chunk up to IEND (Pillow reads those
    after the image data too); what is malformed goes into ``problems``.

    The EXIF is the eXIf chunk's; without one, ImageMagick's hex "Raw profile type
    exif" (else "... APP1") text chunk's (:func:`gpuimg.meta.exif.raw_profile`). The
    XMP is the text of the tEXt, zTXt or iTXt chunk of keyword ``XML:com.adobe.xmp``.
    Inflating is bounded (64 MB a chunk); a broken text chunk is named and skipped.

    Example:
        >>> found = {}
        >>> read_metadata(SIGNATURE + chunk(b"eXIf", b"MM\\x00*") + chunk(b"IEND"), found, [])
        >>> found
        {'exif': b'MM\\x00*'}
    """
    _walk(buf, found, problems, icc=True)


def _walk(buf: Any, found: dict[str, Any], problems: list[str], icc: bool) -> None:
    """:func:`read_metadata`'s walk; ``icc=False`` leaves the profile uninflated."""
    raw: dict[bytes, bytes] = {}
    try:
        for count, (pos, length, kind) in enumerate(chunks(buf)):
            if kind == b"IEND" or count == _MAX_METADATA_CHUNKS:
                break
            body_at = pos + 8
            if kind == b"eXIf" and "exif" not in found:
                found["exif"] = exif.unprefixed(bytes(buf[body_at : body_at + length]))
            elif kind == b"iCCP" and icc and "icc" not in found:
                body = bytes(buf[body_at : body_at + length])
                name_end = body.find(b"\x00", 0, 80)
                if name_end < 0 or len(body) < name_end + 2 or body[name_end + 1] != 0:
                    problems.append("the PNG iCCP chunk is malformed")
                else:
                    found["icc"] = _inflate(body[name_end + 2 :])
            elif kind in _TEXT:
                _text_metadata(buf, body_at, length, kind, found, raw, problems)
    except ChunkOverrun as cut:  # what came before it counts
        problems.append(f"the PNG {cut.kind!r} chunk runs past the data")
    if "exif" not in found:
        for keyword in exif.RAW_PROFILE_KEYWORDS:
            if keyword in raw:
                found["exif"] = raw[keyword]
                break


def _text_metadata(buf: Any, body_at: int, length: int, kind: bytes, found: dict[str, Any], raw: dict[bytes, bytes],
                   problems: list[str]) -> None:
    """The XMP packet or raw EXIF profile a text chunk holds, into ``found`` / ``raw``
    (by keyword), the first of each; only those two keywords' chunks are copied."""
    keyword = _keyword(bytes(buf[body_at : body_at + min(length, _KEYWORD_MAX)]))
    wanted_xmp = keyword == XMP_KEYWORD and "xmp" not in found
    wanted_raw = keyword in exif.RAW_PROFILE_KEYWORDS and keyword not in raw
    if not (wanted_xmp or wanted_raw):
        return
    label = keyword.decode("latin-1")
    try:
        text = text_of(kind, bytes(buf[body_at : body_at + length]))
    except (ValueError, IndexError, zlib.error) as exc:
        problems.append(f"the PNG {kind.decode()} chunk {label!r} is malformed ({exc})")
        return
    if wanted_xmp:
        found["xmp"] = text
        return
    block = exif.raw_profile(text)
    if block is None:
        problems.append(f"the PNG {kind.decode()} chunk {label!r} is not a hex profile of the length it states")
    else:
        raw[keyword] = block


def _keyword(head: bytes) -> bytes:
    """The keyword a text chunk's body starts with (up to its NUL); b"" without one."""
    end = head.find(b"\x00")
    return head[:end] if end > 0 else b""


def text_of(kind: bytes, body: bytes) -> bytes:
    """The text of a tEXt, zTXt or iTXt chunk's ``body`` (inflated, at most 64 MB), as
    bytes. Raises ValueError, IndexError or zlib.error for a broken chunk.

    Example:
        >>> text_of(b"zTXt", b"Comment\\x00\\x00" + zlib.compress(b"hello"))
        b'hello'
    """
    at = body.index(b"\x00") + 1
    if kind == b"tEXt":
        return body[at:]
    if kind == b"zTXt":
        if body[at] != 0:
            raise ValueError(f"unknown zTXt compression method {body[at]}")  # builtin: a malformed chunk, caught by the reader
        return _inflate(body[at + 1 :])
    return _itxt_text(body)


def orientation_parts(buf: Any) -> tuple[bytes | None, bytes | None]:
    """(EXIF block, XMP packet) of the PNG ``buf`` where the orientation may be stored,
    each None where absent: the parts :func:`read_metadata` reads (the EXIF: eXIf, else
    the raw profile), the ICC profile skipped. Which one counts is
    :func:`gpuimg.meta.exif.decide_orientation`'s rule. Never raises for junk.

    Example:
        >>> packet = b'XML:com.adobe.xmp\\x00<d tiff:Orientation="8"/>'
        >>> orientation_parts(SIGNATURE + chunk(b"tEXt", packet) + chunk(b"IEND"))
        (None, b'<d tiff:Orientation="8"/>')
    """
    found: dict[str, Any] = {}
    _walk(buf, found, [], icc=False)
    return found.get("exif"), found.get("xmp")


def _itxt_text(body: bytes) -> bytes:
    """The text of an iTXt chunk: keyword\\0 flag method lang\\0 translated\\0 text."""
    at = body.index(b"\x00") + 1
    compressed = body[at]
    at += 2
    at = body.index(b"\x00", at) + 1
    at = body.index(b"\x00", at) + 1
    return _inflate(body[at:]) if compressed else body[at:]


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, _MAX_INFLATED)
    if d.unconsumed_tail:
        raise ValueError(f"a compressed chunk inflates past {_MAX_INFLATED >> 20} MB")  # builtin: a malformed file, reported for that file by the caller
    return out


def embed(data: bytes, meta: Metadata, has_alpha: bool = False) -> bytes:
    """The encoded PNG ``data`` with ``meta``'s iCCP, eXIf and XMP iTXt before PLTE and
    IDAT (iCCP must precede them), replacing any it had (and sRGB, when a profile comes;
    an XMP in any text chunk and ImageMagick's raw EXIF profiles, which readers would
    otherwise still find).
    EncodeError for data that is not a PNG.

    Example:
        >>> from gpuimg.codec.metadata import read
        >>> png = SIGNATURE + chunk(b"IHDR", bytes(13)) + chunk(b"IDAT") + chunk(b"IEND")
        >>> read(embed(png, Metadata(xmp="<x/>"))).xmp
        '<x/>'
    """
    if data[:8] != SIGNATURE:
        raise EncodeError("cannot add metadata: the encoded data is not a PNG")
    ours = []
    if meta.icc is not None:
        ours.append(chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(meta.icc, 9)))
    if meta.exif is not None:
        ours.append(chunk(b"eXIf", meta.exif))
    if meta.xmp is not None:  # uncompressed, no language: what XMP readers scan for
        ours.append(chunk(b"iTXt", XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + meta.xmp.encode("utf-8")))
    out, placed = [data[:8]], False
    for pos, length, kind in chunks(data):
        whole = data[pos : pos + 12 + length]
        if kind == b"eXIf" or (kind in (b"iCCP", b"sRGB") and meta.icc is not None):
            continue  # replaced (a PNG with iCCP must not also say sRGB)
        if kind in _TEXT and _keyword(whole[8 : 8 + min(length, _KEYWORD_MAX)]) in _REPLACED_TEXT:
            continue  # an older XMP or raw EXIF profile would be read before (or beside) ours
        if kind in (b"PLTE", b"IDAT") and not placed:
            out += ours
            placed = True
        out.append(whole)
    return b"".join(out)


def default_image(data: Any) -> bytes | None:
    """The default image of the animated PNG (APNG) ``data`` as the bytes of a plain PNG;
    None when ``data`` is not an APNG (a still PNG, another format) or its chunks are
    malformed.

    An APNG is a PNG with an ``acTL`` chunk before its image data: the ``IDAT`` chunks
    hold the default image (what a reader without animation support shows, and what
    Pillow returns for frame 0), ``fcTL``/``fdAT`` the animation frames. nvImageCodec
    0.9 decodes an APNG to one of its animation frames instead, silently; a still image
    is what gpuimg decodes, so the animation chunks are removed. Every other chunk is
    copied whole, in order (so their CRCs hold), up to and including ``IEND``; bytes
    after ``IEND`` are dropped (a file cut right after a chunk comes back without
    ``IEND``, as cut as it came). A chunk that runs past the end of ``data``, or an APNG
    without ``IDAT``, gives None: the decoder then reports the file as it would.
    ``data``: bytes or any byte buffer.

    Example:
        >>> ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
        >>> idat, end = chunk(b"IDAT", zlib.compress(b"\\x00\\x80")), chunk(b"IEND")
        >>> animated = SIGNATURE + ihdr + chunk(b"acTL", bytes(8)) + idat + end
        >>> default_image(animated) == SIGNATURE + ihdr + idat + end
        True
        >>> default_image(SIGNATURE + ihdr + idat + end) is None
        True
    """
    try:
        buf = byte_view(data)
    except TypeError:  # not a byte buffer
        return None
    if bytes(buf[:8]) != SIGNATURE or not _animated(buf):
        return None
    # Kept spans of the file, neighbouring chunks merged: one copy each at the join.
    spans: list[list[int]] = [[0, 8]]
    image_data, pos = False, 8
    try:
        for pos, length, kind in chunks(buf):
            stop = pos + 12 + length
            if kind not in _ANIMATION:
                if spans[-1][1] == pos:
                    spans[-1][1] = stop
                else:
                    spans.append([pos, stop])
            image_data |= kind == b"IDAT"
            pos = stop
            if kind == b"IEND":
                break
        else:
            if pos < len(buf):
                return None  # a cut chunk header
    except ChunkOverrun:
        return None
    if not image_data:
        return None
    return b"".join(buf[a:b] for a, b in spans)


def _animated(buf: Any) -> bool:
    """True when an ``acTL`` chunk comes before the first ``IDAT``: only the chunk
    headers up to there are read (a still PNG costs a handful of reads)."""
    try:
        for _, _, kind in chunks(buf):
            if kind == b"acTL":
                return True
            if kind in (b"IDAT", b"IEND"):
                return False
    except ChunkOverrun:
        return False
    return False
