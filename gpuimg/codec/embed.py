"""Metadata into encoded files: container surgery on the bytes nvImageCodec wrote.

nvImageCodec encodes pixels but writes no EXIF, XMP or ICC profile; :func:`embed` puts a
:class:`~gpuimg.codec.metadata.Metadata` into the encoded JPEG (APP1 Exif, APP1 XMP,
APP2 ICC_PROFILE split into numbered segments), PNG (iCCP, eXIf, iTXt before IDAT), WebP
(VP8X with its flags, ICCP before and EXIF/XMP after the image) or TIFF (tags 34665,
700, 34675 in a rewritten first directory) on the host. :func:`for_output` is what an
output carries of an input's metadata under ``keep=``.

Example:
    >>> import numpy as np
    >>> from gpuimg import Encoder, Image
    >>> from gpuimg.codec.metadata import Metadata, read
    >>> png = Encoder("cpu").encode(Image.from_array(np.zeros((4, 4, 3), np.uint8)), "png")
    >>> read(embed(png, "png", Metadata(xmp="<x:xmpmeta/>"))).xmp
    '<x:xmpmeta/>'
"""

from __future__ import annotations

import re
import struct
import warnings
import zlib
from dataclasses import replace
from typing import Any

from ..errors import EncodeError, check_choice
from . import exif as exif_mod
from . import tiff_ifd
from .metadata import JPEG_EXIF, JPEG_ICC, JPEG_XMP, KEEP, PNG_XMP_KEYWORD, Metadata

__all__ = ["embed", "stores_metadata", "for_output", "ICC_SEGMENT_BYTES"]

ICC_SEGMENT_BYTES = 65519  # 65535 - 2 (length) - 12 ("ICC_PROFILE\0") - 2 (sequence, count)
_SEGMENT_MAX = 65533  # a JPEG segment's payload after its 2-byte length


def for_output(meta: Metadata | None, keep: str = "all", size: tuple[int, int] | None = None) -> Metadata:
    """What an output keeps of ``meta`` under ``keep`` ("all", "icc", "no-gps", "none"):
    the EXIF without its thumbnail, its Orientation 1 when the pixels were turned
    upright (and the XMP's ``tiff:Orientation`` with it), its pixel dimensions the
    output's ``size`` = (height, width) when given. An EXIF block that cannot be edited
    is left out (with a warning).

    Example:
        >>> for_output(Metadata(icc=b"p", xmp="<x/>"), "icc").xmp is None
        True
    """
    check_choice(keep, "keep", KEEP, "a metadata choice")
    if meta is None:
        return Metadata()
    if meta.orientation_applied and meta.xmp is not None:
        meta = replace(meta, xmp=_XMP_ORIENTATION.sub(_upright, meta.xmp))
    if meta.exif is None:
        return meta.kept(keep)
    try:
        out = meta.kept(keep)
        block = exif_mod.edited(out.exif, reset_orientation=out.orientation_applied, size=size) if out.exif is not None else None
    except (tiff_ifd.IfdError, struct.error, ValueError) as exc:
        warnings.warn(f"the EXIF block is left out of the output: it cannot be edited ({exc})", stacklevel=2)
        out, block = replace(meta, exif=None).kept(keep), None
    return replace(out, exif=block)


# tiff:Orientation in an XMP packet, as an attribute or an element (what exiftool and
# Pillow's exif_transpose also rewrite once the pixels are upright).
_XMP_ORIENTATION = re.compile(r'(tiff:Orientation\s*=\s*["\'])[1-8](["\'])|(<tiff:Orientation>)\s*[1-8]\s*(</tiff:Orientation>)')


def _upright(m: re.Match) -> str:
    return f"{m.group(1)}1{m.group(2)}" if m.group(1) else f"{m.group(3)}1{m.group(4)}"


def stores_metadata(codec: str) -> bool:
    """Whether :func:`embed` can put metadata into ``codec``'s files.

    Example:
        >>> stores_metadata("jpeg"), stores_metadata("bmp")
        (True, False)
    """
    return codec in _WRITERS


def embed(data: Any, codec: str, meta: Metadata | None, *, has_alpha: bool = False) -> bytes:
    """``data`` (an encoded file) with ``meta`` in it, replacing any EXIF/XMP/ICC it had.

    ``codec``: "jpeg", "png", "webp" or "tiff"; other formats store none of it and come
    back unchanged, as does everything for an empty ``meta``. ``has_alpha``: the image has
    an alpha channel (the WebP VP8X flag). Raises EncodeError for an encoded file that is
    not the format named, and for metadata the format cannot hold (an XMP packet over
    64 KB in a JPEG: extended XMP is not written).
    """
    if meta is None or meta.empty:
        return bytes(data)
    writer = _WRITERS.get(codec)
    if writer is None:
        return bytes(data)
    try:
        return writer(bytes(data), meta, has_alpha)
    except (struct.error, IndexError, ValueError) as exc:
        if isinstance(exc, EncodeError):
            raise
        raise EncodeError(f"cannot add metadata to the encoded {codec}: its structure is not as expected ({exc})") from None


def _jpeg(data: bytes, meta: Metadata, has_alpha: bool) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise EncodeError("cannot add metadata: the encoded data is not a JPEG")
    # Keep the encoder's JFIF APP0 first (readers expect it there); drop any metadata it wrote.
    pos, kept = 2, []
    while data[pos] == 0xFF and (0xE0 <= data[pos + 1] <= 0xEF):
        length = struct.unpack_from(">H", data, pos + 2)[0]
        seg = data[pos : pos + 2 + length]
        body = seg[4:]
        if not (body.startswith((JPEG_EXIF, JPEG_XMP)) or body.startswith(JPEG_ICC)):
            kept.append(seg)
        pos += 2 + length
    app0 = [s for s in kept if s[1] == 0xE0]
    others = [s for s in kept if s[1] != 0xE0]
    ours = []
    if meta.exif is not None:
        ours.append(_segment(0xE1, JPEG_EXIF + meta.exif, "the EXIF block"))
    if meta.xmp is not None:
        ours.append(_segment(0xE1, JPEG_XMP + meta.xmp.encode("utf-8"), "the XMP packet (extended XMP is not written)"))
    if meta.icc is not None:
        chunks = [meta.icc[i : i + ICC_SEGMENT_BYTES] for i in range(0, len(meta.icc), ICC_SEGMENT_BYTES)]
        if len(chunks) > 255:
            raise EncodeError(f"the ICC profile ({len(meta.icc)} bytes) needs more than 255 JPEG segments")
        ours += [_segment(0xE2, JPEG_ICC + bytes((k + 1, len(chunks))) + c, "") for k, c in enumerate(chunks)]
    return b"".join([b"\xff\xd8", *app0, *ours, *others, data[pos:]])


def _segment(marker: int, payload: bytes, what: str) -> bytes:
    if len(payload) > _SEGMENT_MAX:
        raise EncodeError(f"{what} ({len(payload)} bytes) does not fit a JPEG segment (at most {_SEGMENT_MAX})")
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(data: bytes, meta: Metadata, has_alpha: bool) -> bytes:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise EncodeError("cannot add metadata: the encoded data is not a PNG")
    ours = []
    if meta.icc is not None:
        ours.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(meta.icc, 9)))
    if meta.exif is not None:
        ours.append(_png_chunk(b"eXIf", meta.exif))
    if meta.xmp is not None:  # uncompressed, no language: what XMP readers scan for
        ours.append(_png_chunk(b"iTXt", PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + meta.xmp.encode("utf-8")))
    out, pos, placed = [data[:8]], 8, False
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunk = data[pos : pos + 12 + length]
        pos += 12 + length
        if kind == b"eXIf" or (kind in (b"iCCP", b"sRGB") and meta.icc is not None):
            continue  # replaced (a PNG with iCCP must not also say sRGB)
        if kind == b"iTXt" and chunk[8:26] == PNG_XMP_KEYWORD + b"\x00":
            continue
        if kind in (b"PLTE", b"IDAT") and not placed:  # iCCP must precede PLTE and IDAT
            out += ours
            placed = True
        out.append(chunk)
    return b"".join(out)


def _webp(data: bytes, meta: Metadata, has_alpha: bool) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise EncodeError("cannot add metadata: the encoded data is not a WebP")
    chunks: list[tuple[bytes, bytes]] = []
    pos, end = 12, min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])
    while pos + 8 <= end:
        kind, length = struct.unpack_from("<4sI", data, pos)
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 8 + length + (length & 1)
    image = [(k, b) for k, b in chunks if k in (b"ALPH", b"VP8 ", b"VP8L", b"ANIM", b"ANMF")]
    vp8x = next((b for k, b in chunks if k == b"VP8X"), None)
    if vp8x is not None:
        flags = vp8x[0] & 0x12  # animation and alpha as the encoder set them
        canvas = vp8x[4:10]
    else:
        w, h, alpha = _webp_size(image)
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


def _webp_size(image: list[tuple[bytes, bytes]]) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple (VP8/VP8L) WebP from its bitstream header."""
    for kind, body in image:
        if kind == b"VP8 ":  # frame tag (3), start code (3), 14-bit width and height
            w, h = struct.unpack_from("<HH", body, 6)
            return w & 0x3FFF, h & 0x3FFF, False
        if kind == b"VP8L":  # signature 0x2f, then 14 bits w-1, 14 bits h-1, 1 bit alpha
            bits = struct.unpack_from("<I", body, 1)[0]
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
    raise ValueError("no VP8/VP8L image chunk")


_TIFF_TAGS_REPLACED = frozenset({700, 34675, 0x8769, 0x8825})


def _tiff(data: bytes, meta: Metadata, has_alpha: bool) -> bytes:
    """A new first directory appended to the file: its image entries (strip offsets stay
    valid: they are absolute) plus the metadata tags; the header points at it."""
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
        entries += [en for en in exif_first if en.tag not in present and (en.tag in exif_mod.TAG_NAMES or en.children)]
    if meta.xmp is not None:
        raw = meta.xmp.encode("utf-8")
        entries.append(tiff_ifd.Entry(700, 1, len(raw), raw))
    if meta.icc is not None:
        entries.append(tiff_ifd.Entry(34675, 7, len(meta.icc), meta.icc))
    start = len(data) + (len(data) & 1)
    block = tiff_ifd.write_ifds(e, entries, base=start, header=False)
    return data[:4] + struct.pack(e + "I", start) + data[8:] + b"\x00" * (start - len(data)) + block


_WRITERS = {"jpeg": _jpeg, "png": _png, "webp": _webp, "tiff": _tiff}
