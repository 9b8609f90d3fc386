"""An image's metadata (EXIF, XMP, ICC profile), read from its container on the host.

:func:`read` walks the file's structure only (JPEG segments up to the first scan, PNG
chunks, WebP RIFF chunks, the first TIFF directory); no pixel is decoded. It never
raises: a part that is there but malformed is left out and named in
:attr:`Metadata.problems`. What the output side does with it (the ``keep=`` choices and
the container surgery) is :mod:`gpuimg.codec.embed`.

Example:
    >>> from pathlib import Path
    >>> import gpuimg
    >>> meta = read((Path(gpuimg.__file__).parent.parent / "assets" / "coffee.jpg").read_bytes())
    >>> meta.exif is None, meta.problems
    (True, ())
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from . import exif as exif_mod
from . import icc as icc_mod
from . import tiff_ifd
from ._bytes import byte_view

__all__ = ["Metadata", "read", "KEEP", "EMPTY"]

# keep= choices: everything, the ICC profile only (privacy: no EXIF, GPS or XMP), all but
# the GPS IFD, nothing.
KEEP = ("all", "icc", "no-gps", "none")

JPEG_EXIF = b"Exif\x00\x00"
JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
JPEG_ICC = b"ICC_PROFILE\x00"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
_MAX_INFLATED = 64 << 20  # a compressed PNG profile or XMP inflating past this is a bomb
_MAX_CHUNKS = 100_000


@dataclass(frozen=True)
class Metadata:
    """The metadata of one image.

    ``exif``: the EXIF block, TIFF-structured (starts ``II*\\0`` / ``MM\\0*``, no
    ``Exif\\0\\0`` prefix), or None. ``xmp``: the XMP packet (text) or None. ``icc``: the
    ICC profile's bytes or None. ``problems``: what was found malformed and left out.
    ``orientation_applied``: the decoded pixels were turned upright by the EXIF
    orientation (an output then says Orientation 1). ``cmyk``: the pixels are a CMYK
    JPEG's four ink channels (``gpuimg.read(..., mode="cmyk")``), which
    :func:`~gpuimg.ops.color.convert_colorspace` turns into sRGB.

    Example:
        >>> Metadata().empty, Metadata(xmp="<x/>").kept("icc").empty
        (True, True)
    """

    exif: bytes | None = None
    xmp: str | None = None
    icc: bytes | None = None
    problems: tuple[str, ...] = ()
    orientation_applied: bool = False
    cmyk: bool = False

    @property
    def empty(self) -> bool:
        return self.exif is None and self.xmp is None and self.icc is None

    @cached_property
    def exif_tags(self) -> dict[str, Any]:
        """The EXIF tags by name (:func:`gpuimg.codec.exif.tags`); {} without EXIF.

        Example:
            >>> Metadata().exif_tags
            {}
        """
        if self.exif is None:
            return {}
        try:
            return exif_mod.tags(self.exif)
        except (tiff_ifd.IfdError, struct.error, ValueError):
            return {}  # read() checked the block; a failure here is a value gpuimg cannot name

    @property
    def gps(self) -> bool:
        """The EXIF holds a GPS IFD (a location)."""
        return "GPSInfo" in self.exif_tags

    @property
    def orientation(self) -> int:
        """The EXIF orientation as stored (1 when absent)."""
        value = self.exif_tags.get("Orientation", 1)
        return value if isinstance(value, int) and 1 <= value <= 8 else 1

    @cached_property
    def icc_description(self) -> str | None:
        """The ICC profile's description tag ("sRGB IEC61966-2.1"), or None."""
        return icc_mod.description(self.icc) if self.icc is not None else None

    def kept(self, keep: str) -> Metadata:
        """What ``keep`` (one of :data:`KEEP`) leaves of this metadata: "all"; "icc" (the
        profile only); "no-gps" (the EXIF without its GPS IFD, and no XMP packet that
        mentions GPS); "none".

        Example:
            >>> Metadata(icc=b"x", xmp="<x/>").kept("icc").xmp is None
            True
        """
        if keep == "all":
            return self
        if keep == "none":
            return Metadata(orientation_applied=self.orientation_applied, cmyk=self.cmyk)
        if keep == "icc":
            return Metadata(icc=self.icc, orientation_applied=self.orientation_applied, cmyk=self.cmyk)
        if keep == "no-gps":
            block = self.exif
            if block is not None and self.gps:
                block = exif_mod.edited(block, drop_gps=True)
            # An XMP packet can hold the location too (exif:GPSLatitude, ...): one that
            # mentions GPS goes with it rather than be edited as text.
            xmp = None if self.xmp is not None and "GPS" in self.xmp else self.xmp
            return replace(self, exif=block, xmp=xmp)
        raise ValueError(f"keep={keep!r} is not a metadata choice; use one of {KEEP}")

    def __repr__(self) -> str:
        parts = []
        if self.exif is not None:
            parts.append(f"exif={len(self.exif)} bytes")
        if self.xmp is not None:
            parts.append(f"xmp={len(self.xmp)} chars")
        if self.icc is not None:
            parts.append(f"icc={self.icc_description or len(self.icc)!r}")
        if self.problems:
            parts.append(f"problems={list(self.problems)}")
        if self.cmyk:
            parts.append("cmyk")
        return f"Metadata({', '.join(parts)})"


EMPTY = Metadata()


def read(data: Any) -> Metadata:
    """The EXIF, XMP and ICC profile of an encoded JPEG, PNG, WebP or TIFF file (any
    buffer); other formats, and junk, give an empty Metadata. Never raises.

    Example:
        >>> read(b"not an image").empty
        True
    """
    buf = byte_view(data)
    head = bytes(buf[:12])
    found: dict[str, Any] = {}
    problems: list[str] = []
    try:
        if head[:2] == b"\xff\xd8":
            _jpeg(buf, found, problems)
        elif head[:8] == b"\x89PNG\r\n\x1a\n":
            _png(buf, found, problems)
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            _webp(buf, found, problems)
        elif head[:4] in (b"II*\x00", b"MM\x00*"):
            _tiff(buf, found, problems)
    except (struct.error, IndexError, ValueError, zlib.error) as exc:
        problems.append(f"the file's structure is malformed ({exc})")
    return _checked(found, problems)


def _checked(found: dict[str, Any], problems: list[str]) -> Metadata:
    """The found parts that hold up; the others named in problems."""
    block = found.get("exif")
    if block is not None:
        try:  # its directories must hold (the tags' values are decoded on first use)
            e = tiff_ifd.byte_order(block)
            tiff_ifd.read_ifd(block, e, struct.unpack_from(e + "I", block, 4)[0])
        except (tiff_ifd.IfdError, struct.error, ValueError) as exc:
            problems.append(f"the EXIF block is malformed ({exc})")
            block = None
    xmp = None
    raw_xmp = found.get("xmp")
    if raw_xmp is not None:
        try:
            xmp = bytes(raw_xmp).decode("utf-8").rstrip("\x00")
        except UnicodeDecodeError:
            problems.append("the XMP packet is not UTF-8 text")
    profile = found.get("icc")
    if profile is not None:
        why = icc_mod.problem(profile)
        if why:
            problems.append(why)
            profile = None
    return Metadata(block, xmp, profile, tuple(problems))


def _jpeg(buf: Any, found: dict[str, Any], problems: list[str]) -> None:
    pos, end = 2, len(buf)
    icc_parts: dict[int, bytes] = {}
    icc_total = set()
    while pos + 4 <= end:
        ff, marker = buf[pos], buf[pos + 1]
        if ff != 0xFF:
            return
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end: metadata is before the scans
            break
        length = struct.unpack_from(">H", buf, pos + 2)[0]
        if length < 2 or pos + 2 + length > end:
            problems.append(f"a JPEG segment at byte {pos} runs past the data")
            break
        body = bytes(buf[pos + 4 : pos + 2 + length]) if marker in (0xE1, 0xE2) else b""
        if marker == 0xE1 and body.startswith(JPEG_EXIF) and "exif" not in found:
            found["exif"] = body[len(JPEG_EXIF) :]
        elif marker == 0xE1 and body.startswith(JPEG_XMP) and "xmp" not in found:
            found["xmp"] = body[len(JPEG_XMP) :]
        elif marker == 0xE2 and body.startswith(JPEG_ICC) and len(body) >= 14:
            seq, total = body[12], body[13]
            icc_parts.setdefault(seq, body[14:])
            icc_total.add(total)
        pos += 2 + length
    if icc_parts:
        total = next(iter(icc_total)) if len(icc_total) == 1 else 0
        if total and sorted(icc_parts) == list(range(1, total + 1)):
            found["icc"] = b"".join(icc_parts[k] for k in range(1, total + 1))
        else:
            counts = "/".join(str(t) for t in sorted(icc_total))
            problems.append(f"the ICC profile's APP2 segments are incomplete (parts {sorted(icc_parts)} of {counts})")


def _png(buf: Any, found: dict[str, Any], problems: list[str]) -> None:
    pos, end = 8, len(buf)
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > end:
            return
        length, kind = struct.unpack_from(">I4s", buf, pos)
        body_at = pos + 8
        if body_at + length > end:
            problems.append(f"the PNG {kind!r} chunk runs past the data")
            return
        if kind == b"IEND":
            return
        if kind == b"eXIf" and "exif" not in found:
            body = bytes(buf[body_at : body_at + length])
            found["exif"] = body[6:] if body.startswith(JPEG_EXIF) else body
        elif kind == b"iCCP" and "icc" not in found:
            body = bytes(buf[body_at : body_at + length])
            name_end = body.find(b"\x00", 0, 80)
            if name_end < 0 or len(body) < name_end + 2 or body[name_end + 1] != 0:
                problems.append("the PNG iCCP chunk is malformed")
            else:
                found["icc"] = _inflate(body[name_end + 2 :])
        elif kind == b"iTXt" and "xmp" not in found and bytes(buf[body_at : body_at + 18]) == PNG_XMP_KEYWORD + b"\x00":
            found["xmp"] = _itxt_text(bytes(buf[body_at : body_at + length]))
        pos = body_at + length + 4


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
        raise ValueError(f"a compressed chunk inflates past {_MAX_INFLATED >> 20} MB")
    return out


def _webp(buf: Any, found: dict[str, Any], problems: list[str]) -> None:
    pos, end = 12, min(len(buf), 8 + struct.unpack_from("<I", buf, 4)[0])
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > end:
            return
        kind, length = struct.unpack_from("<4sI", buf, pos)
        if pos + 8 + length > end:
            problems.append(f"the WebP {kind!r} chunk runs past the data")
            return
        body = lambda: bytes(buf[pos + 8 : pos + 8 + length])  # noqa: E731 (copy only the chunks kept)
        if kind == b"EXIF" and "exif" not in found:
            block = body()
            found["exif"] = block[6:] if block.startswith(JPEG_EXIF) else block
        elif kind == b"XMP " and "xmp" not in found:
            found["xmp"] = body()
        elif kind == b"ICCP" and "icc" not in found:
            found["icc"] = body()
        pos += 8 + length + (length & 1)


# IFD0 tags of a TIFF file that are EXIF-style descriptions (the rest describe the pixels).
_TIFF_DESCRIPTIVE = frozenset({0x010E, 0x010F, 0x0110, 0x0112, 0x011A, 0x011B, 0x0128, 0x0131, 0x0132, 0x013B, 0x8298,
                               0x8769, 0x8825})
_TIFF_XMP, _TIFF_ICC = 700, 34675


def _tiff(buf: Any, found: dict[str, Any], problems: list[str]) -> None:
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
