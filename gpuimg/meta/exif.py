"""EXIF blocks (TIFF-structured, without the ``Exif\\0\\0`` prefix): the orientation tag
and the view that applies it, the rule that picks it or an XMP orientation
(:func:`decide_orientation`, :func:`orientation_of`), ImageMagick's hex raw profiles
(:func:`raw_profile`), the tags by name (:func:`tags`) and the edits a re-encode needs
(:func:`edited`).

gpuimg reads the orientation itself and applies it itself, for every container, so the
size it plans and the pixels it returns follow ONE reading of the tag. nvImageCodec's own
reading differs from its decoders' on malformed EXIF (a JPEG whose IFD entry count is
wrong made its CPU decoder write past the target buffer; a WebP EXIF chunk with the
``Exif\\0\\0`` prefix was sized rotated but decoded unrotated), so the decoder always asks
nvImageCodec for the stored orientation and copies through :func:`oriented`. Finding the
block inside a file is each container's job (:mod:`gpuimg.codec.containers`).

Example:
    >>> swaps_axes(6), swaps_axes(3)
    (True, False)
"""


from __future__ import annotations

import struct
from typing import Any

from . import tiff_ifd
from . import xmp as xmp_mod

__all__ = ["PREFIX", "unprefixed", "swaps_axes", "oriented", "block_orientation", "stored_orientation", "decide_orientation",
           "orientation_of", "block_problem", "raw_profile", "RAW_PROFILE_KEYWORDS", "tags", "edited", "TAG_NAMES", "GPS_TAG_NAMES"]  # fmt: skip

# What a JPEG APP1 segment puts before its EXIF block; some PNG and WebP writers keep it too.
PREFIX = b"Exif\x00\x00"
_TAG_ORIENTATION = 0x0112


def unprefixed(block: bytes) -> bytes:
    """``block`` without the ``Exif\\0\\0`` prefix that JPEG's APP1 puts before the TIFF
    structure (and that some PNG and WebP writers keep).

    Example:
        >>> unprefixed(b"Exif\\x00\\x00II*\\x00"), unprefixed(b"II*\\x00")
        (b'II*\\x00', b'II*\\x00')
    """
    return block[len(PREFIX) :] if block.startswith(PREFIX) else block


def swaps_axes(value: int) -> bool:
    """True for the orientations (5-8) that transpose the image: width and height swap.

    Example:
        >>> [v for v in range(1, 9) if swaps_axes(v)]
        [5, 6, 7, 8]
    """
    return value in (5, 6, 7, 8)


def oriented(array: Any, value: int) -> Any:
    """A view of ``array`` (H, W, C; NumPy or CuPy) as the EXIF ``value`` says to show it.

    No pixels move: flips and transposes are strided views, so copying the view into a
    target applies the orientation in that one copy. The views match Pillow's
    ``ImageOps.exif_transpose`` (2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate
    90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise).

    Example:
        >>> import numpy as np
        >>> a = np.arange(6).reshape(2, 3, 1)
        >>> oriented(a, 6)[..., 0].tolist()
        [[3, 0], [4, 1], [5, 2]]
    """
    if value == 2:
        return array[:, ::-1]
    if value == 3:
        return array[::-1, ::-1]
    if value == 4:
        return array[::-1]
    if value == 5:
        return array.transpose(1, 0, 2)
    if value == 6:
        return array.transpose(1, 0, 2)[:, ::-1]
    if value == 7:
        return array.transpose(1, 0, 2)[::-1, ::-1]
    if value == 8:
        return array.transpose(1, 0, 2)[::-1]
    return array


def block_orientation(buf: Any, start: int = 0, end: int | None = None) -> int:
    """The Orientation tag (0x0112) of IFD0 of the TIFF-structured EXIF block at
    ``buf[start:end]`` (read in place: no slice is copied), as stored; 1 when the block
    has none (0 when it holds another type). Bounds: raises struct.error or IndexError
    for a block cut short (the container readers turn that into 1).

    Example:
        >>> from gpuimg.meta.tiff_ifd import Entry, write_ifds
        >>> block_orientation(write_ifds("<", [Entry(0x0112, 3, 1, b"\\x06\\x00")]))
        6
    """
    value = stored_orientation(buf, start, end)
    return 1 if value is None else value


def stored_orientation(buf: Any, start: int = 0, end: int | None = None) -> int | None:
    """:func:`block_orientation`, but None when the block has no Orientation tag (or is
    not TIFF-structured): whether the tag is THERE decides whether an XMP orientation
    may count (:func:`decide_orientation`). A tag of another type than SHORT or LONG is
    there but means nothing: 0 (as does a count other than 1).

    Example:
        >>> from gpuimg.meta.tiff_ifd import Entry, write_ifds
        >>> stored_orientation(write_ifds("<", [Entry(0x010F, 2, 4, b"ACME")])) is None
        True
    """
    end = len(buf) if end is None else min(end, len(buf))
    order = bytes(buf[start : start + 2])
    if order not in (b"II", b"MM"):
        return None
    e = "<" if order == b"II" else ">"
    ifd = start + struct.unpack_from(e + "I", buf, start + 4)[0]
    if ifd + 2 > end:
        return None
    count = struct.unpack_from(e + "H", buf, ifd)[0]
    for i in range(min(count, 512)):
        entry = ifd + 2 + 12 * i
        if entry + 12 > end:
            return None
        tag, kind, n = struct.unpack_from(e + "HHI", buf, entry)
        if tag == _TAG_ORIENTATION:
            if kind == 3 and n == 1:  # SHORT
                return struct.unpack_from(e + "H", buf, entry + 8)[0]
            if kind == 4 and n == 1:  # LONG (rare writers)
                return struct.unpack_from(e + "I", buf, entry + 8)[0]
            return 0
    return None


def decide_orientation(exif_value: int | None, xmp_value: int | None) -> int:
    """The orientation to apply (1-8), given the EXIF Orientation tag (None: no EXIF
    block, or one without the tag) and the XMP ``tiff:Orientation`` (None: none).

    The rule is Pillow 13's (``Image.getexif`` feeding ``ImageOps.exif_transpose``):

    1. The EXIF block decides whenever it HAS an Orientation tag, whatever its value:
       ``if ExifTags.Base.Orientation not in self._exif:`` guards the XMP reading, so
       an EXIF Orientation of 1 (or an invalid 0 or 9) wins over an XMP 6.
       Where the EXIF block comes from is the container's business: a JPEG's APP1, a
       WebP's EXIF chunk, a PNG's eXIf chunk, else (Pillow: ``exif_info is None: if
       "Raw profile type exif" in self.info``) an ImageMagick raw-profile text chunk.
    2. Otherwise the XMP packet's ``tiff:Orientation`` (:func:`gpuimg.meta.xmp.orientation`;
       Pillow: ``self._exif[Orientation] = int(match[2])``).
    3. A value outside 1-8 turns nothing (Pillow's ``method = {2: ..., 8: ...}.get(orientation)``
       is None): 1.

    Example:
        >>> decide_orientation(None, 6), decide_orientation(1, 6), decide_orientation(3, 6)
        (6, 1, 3)
        >>> decide_orientation(9, 6), decide_orientation(None, 0), decide_orientation(None, None)
        (1, 1, 1)
    """
    value = exif_value if exif_value is not None else xmp_value
    return value if value is not None and 1 <= value <= 8 else 1


def orientation_of(block: bytes | None, packet: str | None) -> int:
    """The orientation (1-8) to apply for an image whose EXIF ``block`` (TIFF-structured,
    or None) and XMP ``packet`` (text, or None) are these: the block's Orientation tag
    where the block holds up (:func:`block_problem`) and has one, else the packet's
    ``tiff:Orientation`` (:func:`decide_orientation`). The ONE reading both the decoder
    (:func:`gpuimg.codec.containers.exif_orientation`) and
    :attr:`gpuimg.meta.Metadata.orientation` use, so the pixels turned and the metadata
    marked upright never disagree. Never raises.

    Example:
        >>> from gpuimg.meta.tiff_ifd import Entry, write_ifds
        >>> orientation_of(write_ifds("<", [Entry(0x0112, 3, 1, b"\\x01\\x00")]), '<d tiff:Orientation="6"/>')
        1
        >>> orientation_of(b"junk", '<d tiff:Orientation="6"/>')
        6
    """
    stored = None
    if block is not None and block_problem(block) is None:
        try:
            stored = stored_orientation(block)
        except (struct.error, IndexError):  # checked above: kept for a caller's odd buffer
            stored = None
    return decide_orientation(stored, xmp_mod.orientation(packet) if stored is None else None)


def block_problem(block: Any) -> str | None:
    """Why the EXIF ``block`` (TIFF-structured) is malformed, or None: its byte order
    mark, and IFD0 with the directories it points to, must lie inside it
    (:func:`gpuimg.meta.tiff_ifd.read_ifd`, bounded in entries and depth).

    Example:
        >>> block_problem(b"II*\\x00\\x08\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"), block_problem(b"xx") is None
        (None, False)
    """
    try:
        e = tiff_ifd.byte_order(block)
        tiff_ifd.read_ifd(block, e, struct.unpack_from(e + "I", block, 4)[0])
    except (tiff_ifd.IfdError, struct.error, ValueError) as exc:
        return str(exc)
    return None


# ImageMagick stores a profile it cannot put in a PNG chunk of its own as hex text in a
# tEXt/zTXt/iTXt chunk of this keyword; "exif" is what Pillow reads, "APP1" (the JPEG
# segment's payload: Exif\0\0 and the block) what older ImageMagick wrote.
RAW_PROFILE_KEYWORDS = (b"Raw profile type exif", b"Raw profile type APP1")
_MAX_RAW_PROFILE_LINE = 64  # the header lines ("exif", the length) are a few characters


def raw_profile(text: bytes) -> bytes | None:
    """The EXIF block (TIFF-structured, the ``Exif\\0\\0`` prefix removed) of an
    ImageMagick raw-profile text: ``"\\n<name>\\n<length>\\n"`` and then ``length``
    bytes as hex digits over lines of 72; None when it is not that (a header missing or
    too long, a length that is not a number or claims more bytes than the hex holds,
    a character that is not a hex digit or white space). Only what is there is decoded
    (never an allocation by the declared length); bytes past the length are ignored, as
    ImageMagick ignores them.

    Example:
        >>> raw_profile(b"\\nexif\\n       4\\n49492a00\\n")
        b'II*\\x00'
        >>> raw_profile(b"\\nexif\\n 999999999\\n49492a00\\n") is None
        True
    """
    parts = text.split(b"\n", 3)
    if len(parts) < 4 or len(parts[1]) > _MAX_RAW_PROFILE_LINE or len(parts[2]) > _MAX_RAW_PROFILE_LINE:
        return None
    declared = parts[2].strip()
    if not declared.isdigit():
        return None
    try:
        block = bytes.fromhex(parts[3].decode("ascii"))  # skips white space, newlines included
    except (UnicodeDecodeError, ValueError):
        return None
    length = int(declared)
    if length > len(block):
        return None
    return unprefixed(block[:length])


# --- the whole EXIF block: its tags by name, and the edits a re-encode needs -------------

# Tag names of the usual IFD0, Exif IFD and GPS IFD tags (EXIF 2.32); others are named by
# their number ("0x9286"). The GPS IFD's tags are named as in the GPS IFD only.
TAG_NAMES = {
    0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model", 0x0112: "Orientation",
    0x011A: "XResolution", 0x011B: "YResolution", 0x0128: "ResolutionUnit", 0x0131: "Software",
    0x0132: "DateTime", 0x013B: "Artist", 0x8298: "Copyright", 0x8769: "ExifIFD", 0x8825: "GPSInfo",
    0x829A: "ExposureTime", 0x829D: "FNumber", 0x8822: "ExposureProgram", 0x8827: "ISOSpeedRatings",
    0x9000: "ExifVersion", 0x9003: "DateTimeOriginal", 0x9004: "DateTimeDigitized", 0x9010: "OffsetTime",
    0x9011: "OffsetTimeOriginal", 0x9012: "OffsetTimeDigitized", 0x9201: "ShutterSpeedValue",
    0x9202: "ApertureValue", 0x9204: "ExposureBiasValue", 0x9207: "MeteringMode", 0x9209: "Flash",
    0x920A: "FocalLength", 0x927C: "MakerNote", 0x9286: "UserComment", 0xA001: "ColorSpace",
    0xA002: "PixelXDimension", 0xA003: "PixelYDimension", 0xA005: "InteropIFD", 0xA405: "FocalLengthIn35mmFilm",
    0xA420: "ImageUniqueID", 0xA433: "LensMake", 0xA434: "LensModel",
}  # fmt: skip
GPS_TAG_NAMES = {
    0x00: "GPSVersionID", 0x01: "GPSLatitudeRef", 0x02: "GPSLatitude", 0x03: "GPSLongitudeRef",
    0x04: "GPSLongitude", 0x05: "GPSAltitudeRef", 0x06: "GPSAltitude", 0x07: "GPSTimeStamp",
    0x10: "GPSImgDirectionRef", 0x11: "GPSImgDirection", 0x1D: "GPSDateStamp",
}  # fmt: skip
_GPS_POINTER, _EXIF_POINTER = 0x8825, 0x8769


def tags(block: bytes) -> dict[str, Any]:
    """The tags of an EXIF block (TIFF-structured, without the ``Exif\\0\\0`` prefix) by
    name: IFD0's and the Exif IFD's flat, the GPS IFD's under "GPSInfo" (a dict). The
    thumbnail IFD is left out. Raises :class:`~gpuimg.meta.tiff_ifd.IfdError` for a
    malformed block.

    Example:
        >>> from gpuimg.meta.tiff_ifd import Entry, write_ifds
        >>> tags(write_ifds("<", [Entry(0x010F, 2, 4, b"ACME")]))
        {'Make': 'ACME'}
    """
    e = tiff_ifd.byte_order(block)
    first, _ = tiff_ifd.read_ifd(block, e, struct.unpack_from(e + "I", block, 4)[0])
    out: dict[str, Any] = {}
    _named(first, e, TAG_NAMES, out)
    return out


def _named(entries: list[tiff_ifd.Entry], e: str, names: dict[int, str], out: dict[str, Any]) -> None:
    for entry in entries:
        name = names.get(entry.tag, f"0x{entry.tag:04X}")
        if entry.children is None:
            out[name] = entry.value(e)
        elif entry.tag == _GPS_POINTER:
            gps: dict[str, Any] = {}
            _named(entry.children, e, GPS_TAG_NAMES, gps)
            out[name] = gps
        elif entry.tag == _EXIF_POINTER:
            _named(entry.children, e, TAG_NAMES, out)
        # the Interoperability IFD holds only the interop index: not a user-facing tag


def edited(block: bytes, *, reset_orientation: bool = False, drop_gps: bool = False,
           size: tuple[int, int] | None = None) -> bytes:
    """``block`` as an output should carry it: the thumbnail IFD (IFD1) dropped, the
    Orientation set to 1 when ``reset_orientation`` (the pixels were turned upright), the
    GPS IFD removed when ``drop_gps``, PixelXDimension/PixelYDimension (where present)
    set to ``size`` = (height, width) of the output. The block is rewritten from its parsed
    tags (a MakerNote that points into the block by absolute offset may not survive, as
    with every rewriter but exiftool's), except when nothing changes: then it is returned
    as it is. Raises IfdError for a malformed block.

    Example:
        >>> from gpuimg.meta.tiff_ifd import Entry, write_ifds
        >>> rotated = write_ifds(">", [Entry(0x0112, 3, 1, b"\\x00\\x06")])
        >>> block_orientation(edited(rotated, reset_orientation=True))
        1
    """
    e = tiff_ifd.byte_order(block)
    first, nxt = tiff_ifd.read_ifd(block, e, struct.unpack_from(e + "I", block, 4)[0])
    keep = [en for en in first if not (drop_gps and en.tag == _GPS_POINTER)]
    changed = nxt != 0 or len(keep) != len(first)
    wanted = {}
    if reset_orientation:
        wanted[_TAG_ORIENTATION] = 1
    if size is not None:
        wanted[_TAG_PIXEL_Y], wanted[_TAG_PIXEL_X] = size
    for entry in _all_entries(keep):
        value = wanted.get(entry.tag)
        if value is not None and entry.children is None and entry.value(e) != value:
            if entry.tag == _TAG_ORIENTATION or value < 65536 and entry.type == 3:
                entry.type, entry.count, entry.raw = 3, 1, struct.pack(e + "H", value)
            else:
                entry.type, entry.count, entry.raw = 4, 1, struct.pack(e + "I", value)
            changed = True
    return tiff_ifd.write_ifds(e, keep) if changed else bytes(block)


_TAG_PIXEL_X, _TAG_PIXEL_Y = 0xA002, 0xA003


def _all_entries(entries: list[tiff_ifd.Entry]) -> list[tiff_ifd.Entry]:
    """The entries of a directory and of its sub-directories (the Exif IFD holds the sizes)."""
    out = []
    for entry in entries:
        out.append(entry)
        if entry.children is not None:
            out += _all_entries(entry.children)
    return out
