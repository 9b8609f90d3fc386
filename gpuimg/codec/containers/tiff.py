"""TIFF: its first directory read for the structure check, the metadata and the embed.

Every read of a directory goes through :mod:`gpuimg.meta.tiff_ifd`, the one IFD reader
EXIF blocks share (classic and BigTIFF, at most
:data:`gpuimg.meta.tiff_ifd.MAX_ENTRIES` entries): :func:`problem` takes where each
value of IFD0 lies (the first copy of each tag, the size tags once), :func:`read_metadata`
and :func:`embed` take its entries' bytes.

Example:
    >>> associated_alpha(b"II*\\x00")
    False
"""

from __future__ import annotations

import io  # noqa: F401 - the doctests' buffers
import struct
from typing import Any

import numpy as np

from ...meta import exif, tiff_ifd
from ...meta.metadata import Metadata
from .._bytes import byte_view
from ._common import Header, Malformed, size_mismatch

__all__ = ["TITLE", "problem", "associated_alpha", "bilevel", "lab_kind", "unoriented", "header", "read_metadata", "embed"]

TITLE = "TIFF"

# Tags whose second copy makes the header parser and the decoder disagree (one reads the
# first, the other the last): the size, the sample layout and where the data lies.
_TIFF_SINGLE = {
    256: "ImageWidth", 257: "ImageLength", 258: "BitsPerSample", 259: "Compression",
    273: "StripOffsets", 277: "SamplesPerPixel", 279: "StripByteCounts", 284: "PlanarConfiguration",
    322: "TileWidth", 323: "TileLength", 324: "TileOffsets", 325: "TileByteCounts",
}  # fmt: skip
_TIFF_INTS = {1: "u1", 3: "u2", 4: "u4", 13: "u4", 16: "u8", 6: "i1", 8: "i2", 9: "i4", 17: "i8"}


class _Ifd:
    """IFD0 of a TIFF: where each tag's values lie (the first copy of each tag)."""

    __slots__ = ("buf", "order", "big", "first")

    def __init__(self, buf: Any, order: str, big: bool, first: dict[int, tiff_ifd.Slot]):
        self.buf = buf
        self.order = order  # "<" or ">"
        self.big = big  # BigTIFF: 8-byte offsets and inline values
        self.first = first

    def values(self, tag: int) -> np.ndarray | str | None:
        """The integer values of ``tag`` (a view, no copy), None for a non-integer type,
        or a reason when they lie outside the file."""
        slot = self.first[tag]
        code = _TIFF_INTS.get(slot.type)
        if code is None:
            return None
        pos, size = tiff_ifd.value_span(self.buf, self.order, slot, big=self.big)
        if pos + size > len(self.buf):
            name = _TIFF_SINGLE.get(tag, f"tag {tag}")
            return (
                f"the TIFF is truncated: the {slot.count} values of {name} lie at bytes {pos}-{pos + size} "
                f"of a {len(self.buf)}-byte file"
            )
        return np.frombuffer(self.buf, np.dtype(code).newbyteorder(self.order), slot.count, pos)


def _tiff_ifd0(buf: Any) -> _Ifd | str:
    """IFD0 of a classic or BigTIFF file, or the reason it cannot be read."""
    try:
        order, big, offset = tiff_ifd.read_header(buf)
        slots, _ = tiff_ifd.directory(buf, order, offset, big=big, what="TIFF's first IFD")
    except tiff_ifd.IfdError as exc:
        return str(exc)
    if not slots:
        return "the TIFF's first IFD claims 0 entries (corrupt)"
    first, again = tiff_ifd.first_copies(slots)
    for tag in again:
        if tag in _TIFF_SINGLE:
            return (
                f"the TIFF tag {_TIFF_SINGLE[tag]} ({tag}) appears twice in IFD0 "
                "(the header reader and the decoder would disagree on it)"
            )
    return _Ifd(buf, order, big, first)


def problem(buf: Any, width: int, height: int) -> str | None:
    """Why the TIFF ``buf`` (classic or BigTIFF) must not be decoded, or None: IFD0
    inside the data with one copy of each size tag, a size of ``width`` x ``height``
    (-1: not compared), its strips or tiles inside the data.

    Example:
        >>> problem(b"II*\\x00", 1, 1)
        'the TIFF data is truncated (it ends at byte 4, inside its 8-byte header)'
    """
    ifd = _tiff_ifd0(buf)
    if isinstance(ifd, str):
        return ifd
    size = []
    for tag in (256, 257):
        values = ifd.values(tag) if tag in ifd.first else None
        if isinstance(values, str):
            return values
        if values is None or len(values) < 1:
            return f"the TIFF has no readable {_TIFF_SINGLE[tag]} tag"
        size.append(int(values[0]))
    mismatch = size_mismatch("TIFF IFD0", size[0], size[1], width, height)
    if mismatch:
        return mismatch
    tiled = 322 in ifd.first or 324 in ifd.first
    where, lengths, block = (324, 325, "tile") if tiled else (273, 279, "strip")
    if where not in ifd.first:
        if 513 in ifd.first:  # old-style JPEG: the data is found through JPEGInterchangeFormat
            return None
        return f"the TIFF has no {_TIFF_SINGLE[where]} tag (no image data)"
    offsets = ifd.values(where)
    counts = ifd.values(lengths) if lengths in ifd.first else np.zeros(0, np.uint64)
    for values in (offsets, counts):
        if isinstance(values, str):
            return values
        if values is None:
            return "the TIFF's data offsets or byte counts are not integers (corrupt)"
    if len(offsets) == 0:
        return f"the TIFF's {_TIFF_SINGLE[where]} tag is empty (no image data)"
    n = len(buf)
    offsets = offsets.astype(np.uint64)
    counts = counts.astype(np.uint64)
    if len(counts) == 0:  # no byte counts (libtiff estimates them): the starts at least
        outside = offsets > n
    else:
        k = min(len(offsets), len(counts))
        offsets, counts = offsets[:k], counts[:k]
        # off + count could wrap in uint64; compare count with what is left after off.
        outside = (offsets > n) | (counts > n - np.minimum(offsets, n))
    if outside.any():
        i = int(np.argmax(outside))
        start = int(offsets[i])
        stop = f"-{start + int(counts[i])}" if len(counts) else ""
        return (
            f"the TIFF data is truncated: {block} {i} of {len(offsets)} lies at bytes {start}{stop}, "
            f"beyond the end of the {n}-byte file"
        )
    return None


def associated_alpha(data: bytes | memoryview | Any) -> bool:
    """True when ``data`` is a TIFF whose IFD0 ExtraSamples (338) first value is 1:
    associated (premultiplied) alpha. False for anything else, junk included.

    Example:
        >>> import io, numpy as np, tifffile
        >>> buf = io.BytesIO()
        >>> tifffile.imwrite(buf, np.zeros((2, 2, 4), np.uint8), photometric="rgb", extrasamples=[1])
        >>> associated_alpha(buf.getvalue()), associated_alpha(b"II*\\x00")
        (True, False)
    """
    try:
        buf = byte_view(data)
        ifd = _tiff_ifd0(buf)
        if isinstance(ifd, str) or 338 not in ifd.first:
            return False
        values = ifd.values(338)
        return values is not None and len(values) > 0 and int(values[0]) == 1
    except (struct.error, IndexError, ValueError, OverflowError, TypeError):
        return False


def _first_value(data: Any, tag: int, absent: int | None = None) -> int | None:
    """The first integer value of ``tag`` in IFD0 of the TIFF ``data``; None where the
    tag is not an integer or the data is no readable TIFF; ``absent`` where the tag is absent."""
    try:
        ifd = _tiff_ifd0(byte_view(data))
        if isinstance(ifd, str):
            return None
        if tag not in ifd.first:
            return absent
        values = ifd.values(tag)
        return int(values[0]) if isinstance(values, np.ndarray) and len(values) else None
    except (struct.error, IndexError, ValueError, OverflowError, TypeError):
        return None


def bilevel(data: bytes | memoryview | Any) -> bool:
    """True when IFD0 of the TIFF ``data`` has 1 bit per sample (a bilevel image, CCITT
    G3/G4, PackBits or uncompressed): these are decoded with Pillow, because
    nvImageCodec's libtiff path returns wrong pixels for them (and leaves some unwritten).

    Example:
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("1", (9, 4), 1).save(buf, "TIFF", compression="group4")
        >>> bilevel(buf.getvalue()), bilevel(b"junk")
        (True, False)
    """
    # An absent BitsPerSample is 1 by the TIFF specification (Pillow leaves it out then).
    return _first_value(data, 258) == 1 or (_first_value(data, 256) is not None and _first_value(data, 258, -1) == -1)


# PhotometricInterpretation values of the L*a*b* encodings: CIELab, ICCLab, ITULab.
_LAB = {8: "CIELab", 9: "ICCLab", 10: "ITULab"}


def lab_kind(data: bytes | memoryview | Any) -> str | None:
    """The name (CIELab, ICCLab, ITULab) of the L*a*b* encoding IFD0 of the TIFF ``data`` says its pixels are in
    (PhotometricInterpretation 8, 9 or 10), or None for anything else. nvImageCodec
    returns such samples raw, labelled RGB: the decoder refuses them instead.

    Example:
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("LAB", (3, 2)).save(buf, "TIFF")
        >>> lab_kind(buf.getvalue()), lab_kind(b"junk")
        ('CIELab', None)
    """
    value = _first_value(data, 262)
    return _LAB.get(value) if value is not None else None


def unoriented(data: bytes) -> bytes:
    """``data`` with IFD0's Orientation (274) set to 1 where it is one inline SHORT.
    Pillow's libtiff path turns a TIFF by that tag itself; gpuimg turns every format's
    stored pixels once, so Pillow is shown a TIFF that says they are as stored.

    Example:
        >>> from PIL import Image
        >>> b = io.BytesIO(); Image.new("1", (3, 2)).save(b, "TIFF", tiffinfo={274: 6})
        >>> Image.open(io.BytesIO(unoriented(b.getvalue()))).tag_v2[274]
        1
    """
    ifd = _tiff_ifd0(byte_view(data))
    if isinstance(ifd, str) or 274 not in ifd.first:
        return data
    slot = ifd.first[274]
    if slot.type != 3 or slot.count != 1:
        return data
    out = bytearray(data)
    struct.pack_into(ifd.order + "H", out, slot.field, 1)
    return bytes(out)


def header(buf: Any) -> Header:
    """The size of a bilevel TIFF (:func:`bilevel`) as Pillow decodes it: gray, uint8.
    Raises Malformed naming what is wrong (the structure check's reason).

    Example:
        >>> from PIL import Image
        >>> b = io.BytesIO(); Image.new("1", (9, 4)).save(b, "TIFF", compression="group3")
        >>> header(b.getvalue())
        Header(width=9, height=4, channels=1, dtype='uint8')
    """
    why = problem(buf, -1, -1)
    if why:
        raise Malformed(why)
    ifd = _tiff_ifd0(buf)
    assert not isinstance(ifd, str)  # problem() above read it
    width, height = (int(ifd.values(tag)[0]) for tag in (256, 257))
    return Header(width, height, 1)


# IFD0 tags of a TIFF file that are EXIF-style descriptions (the rest describe the pixels).
_TIFF_DESCRIPTIVE = frozenset({0x010E, 0x010F, 0x0110, 0x0112, 0x011A, 0x011B, 0x0128, 0x0131, 0x0132, 0x013B, 0x8298,
                               0x8769, 0x8825})
_TIFF_XMP, _TIFF_ICC = 700, 34675


def read_metadata(buf: Any, found: dict[str, Any], problems: list[str]) -> None:
    """Put the XMP (tag 700), ICC profile (34675) and an EXIF block of IFD0's descriptive
    tags (Make, Model, ... with the Exif and GPS IFDs) of the TIFF ``buf`` into ``found``;
    a malformed directory goes into ``problems``.

    Example:
        >>> found = {}
        >>> read_metadata(tiff_ifd.write_ifds("<", [tiff_ifd.Entry(700, 1, 4, b"<x/>")]), found, [])
        >>> found
        {'xmp': b'<x/>'}
    """
    e = tiff_ifd.byte_order(buf)
    try:
        entries, _ = tiff_ifd.read_ifd(buf, e, struct.unpack_from(e + "I", buf, 4)[0])
    except tiff_ifd.IfdError as exc:
        problems.append(f"the TIFF directory is malformed ({exc})")
        return
    by_tag = {en.tag: en for en in entries}
    if _TIFF_XMP in by_tag:
        found["xmp"] = by_tag[_TIFF_XMP].raw
    if _TIFF_ICC in by_tag:
        found["icc"] = by_tag[_TIFF_ICC].raw
    described = [en for en in entries if en.tag in _TIFF_DESCRIPTIVE]
    # An EXIF block of its own: what an output of another format carries.
    # Resolution alone (every TIFF writer sets it) is no EXIF worth carrying.
    if any(en.tag not in (0x011A, 0x011B, 0x0128, 0x0112) or (en.tag == 0x0112 and en.value(e) != 1) for en in described):
        found["exif"] = tiff_ifd.write_ifds(e, described)


_TIFF_TAGS_REPLACED = frozenset({700, 34675, 0x8769, 0x8825})


def embed(data: bytes, meta: Metadata, has_alpha: bool = False) -> bytes:
    """The encoded TIFF ``data`` with ``meta``: a new first directory appended to the
    file, its image entries (strip offsets stay valid: they are absolute) plus the
    metadata tags (EXIF's descriptive tags and sub-IFDs, XMP 700, ICC 34675); the header
    points at it."""
    e = tiff_ifd.byte_order(data)
    first, _ = tiff_ifd.read_ifd(data, e, struct.unpack_from(e + "I", data, 4)[0], follow=False)
    entries = [en for en in first if en.tag not in _TIFF_TAGS_REPLACED]
    if meta.exif is not None:
        ee = tiff_ifd.byte_order(meta.exif)
        exif_first, _ = tiff_ifd.read_ifd(meta.exif, ee, struct.unpack_from(ee + "I", meta.exif, 4)[0])
        exif_first = [en.in_order(ee, e) for en in exif_first]
        present = {en.tag for en in entries}
        # descriptive IFD0 tags (Make, Model, ...) join the image's directory; the Exif
        # and GPS IFDs come as sub-directories. Structure tags stay the encoder's own.
        entries += [en for en in exif_first if en.tag not in present and (en.tag in exif.TAG_NAMES or en.children)]
    if meta.xmp is not None:
        raw = meta.xmp.encode("utf-8")
        entries.append(tiff_ifd.Entry(700, 1, len(raw), raw))
    if meta.icc is not None:
        entries.append(tiff_ifd.Entry(34675, 7, len(meta.icc), meta.icc))
    start = len(data) + (len(data) & 1)
    block = tiff_ifd.write_ifds(e, entries, base=start, header=False)
    return data[:4] + struct.pack(e + "I", start) + data[8:] + b"\x00" * (start - len(data)) + block
