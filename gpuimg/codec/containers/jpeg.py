"""JPEG: its one segment walker, and everything gpuimg does with the segments; the scan check.

:func:`segments` walks the marker segments before the entropy-coded data; the rest asks
it: :func:`first_scan`, :func:`read_metadata` (APP1
Exif and XMP, the APP2 ICC profile's numbered parts) and :func:`embed` (the same
segments into an encoded JPEG). :func:`scan_problem` is the check of the scans
themselves: the decoders fill what they cannot decode and report success.

Example:
    >>> [hex(m) for _, m, _ in segments(b"\\xff\\xd8\\xff\\xe0\\x00\\x02\\xff\\xda\\x00\\x02")]
    ['0xe0', '0xda']
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from ...errors import EncodeError
from ...meta import exif
from ...meta.metadata import Metadata
from .._bytes import byte_view

__all__ = ["SIGNATURE", "TITLE", "SegmentOverrun", "segments", "first_scan", "scan_problem", "markers", "scan_walk",
           "read_metadata", "embed", "XMP_ID", "ICC_ID", "ICC_SEGMENT_BYTES"]  # fmt: skip

SIGNATURE = b"\xff\xd8"
TITLE = "JPEG"
XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
ICC_ID = b"ICC_PROFILE\x00"
ICC_SEGMENT_BYTES = 65519  # 65535 - 2 (length) - 12 ("ICC_PROFILE\0") - 2 (sequence, count)
_SEGMENT_MAX = 65533  # a segment's payload after its 2-byte length
# Markers that stand alone, without a length: TEM, RST0-7 and SOI.
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})


class SegmentOverrun(ValueError):
    """A segment's length is impossible (below 2) or runs past the data."""

    def __init__(self, pos: int):
        super().__init__(f"a JPEG segment at byte {pos} runs past the data")
        self.pos = pos


def segments(buf: Any, pos: int = 2) -> Iterator[tuple[int, int, int]]:
    """(position, marker, length) of each marker from ``pos`` on (after SOI), up to and
    including the first start-of-scan (0xDA) or end-of-image (0xD9) marker.

    ``length`` is the segment's length field (it counts itself: the body is
    ``buf[pos + 4 : pos + 2 + length]``); 0 for SOS, EOI and the markers that stand
    alone (TEM, RSTn, SOI), which the walk steps over by their two bytes. Fill bytes
    (0xFF before a marker) are skipped. The walk ends quietly at a byte that begins no
    marker or where fewer than 4 bytes are left, and raises :class:`SegmentOverrun` at a
    length that runs past the data: it never reads past it.

    Example:
        >>> list(segments(b"\\xff\\xd8\\xff\\xff\\xfe\\x00\\x03x\\xff\\xd9\\x00\\x00"))
        [(3, 254, 3), (8, 217, 0)]
    """
    end = len(buf)
    while pos + 4 <= end:
        if buf[pos] != 0xFF:
            return
        marker = buf[pos + 1]
        if marker == 0xFF:  # a fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            yield pos, marker, 0
            pos += 2
            continue
        if marker in (0xDA, 0xD9):
            yield pos, marker, 0
            return
        length = struct.unpack_from(">H", buf, pos + 2)[0]
        if length < 2 or pos + 2 + length > end:
            raise SegmentOverrun(pos)
        yield pos, marker, length
        pos += 2 + length


def scan_problem(data: bytes | memoryview | Any) -> str | None:
    """Why a JPEG's scan data must not be decoded, or None.

    Refused: no start-of-scan marker; no end-of-image marker after the last scan (a
    truncated file); a reserved marker (0xFF01-0xFFBF, never valid in a JPEG) inside the
    scans. On each of these the decoders report success and fill what they could not
    decode: libjpeg in grey, nvJPEG's hardware decoder from earlier images. A pass over
    the file (NumPy; about 0.1 ms for a 270 KB 1080p photo, BENCHMARKS.md), on every device.

    Example:
        >>> from pathlib import Path
        >>> import gpuimg
        >>> good = (Path(gpuimg.__file__).parent.parent / "assets" / "chelsea.jpg").read_bytes()
        >>> scan_problem(good) is None
        True
        >>> scan_problem(good[:-200])
        'the JPEG data is truncated (no end-of-image marker after the last scan)'
        >>> bad = bytearray(good); bad[-300:-298] = b"\\xff\\x02"
        >>> scan_problem(bytes(bad))[:50]
        'the JPEG scan data is corrupt (reserved marker 0xF'
    """
    buf = byte_view(data)
    raw = buf if isinstance(buf, bytes) else bytes(buf)
    return scan_walk(raw, markers(raw))


def markers(raw: bytes, start: int = 0) -> np.ndarray:
    """Ascending positions (from ``start`` on) of every 0xFF that begins a marker as the
    entropy-coded data reads it: not a stuffed 0xFF00, a fill byte (0xFFFF) or a restart
    marker (0xFFD0-D7). The GPU check (:mod:`~gpuimg.codec._scan_gpu`) finds the same set."""
    arr = np.frombuffer(raw, np.uint8)
    ff = _positions_of_ff(arr[start:-1]) + start
    follow = arr[ff + 1]
    return ff[(follow != 0) & (follow != 0xFF) & ((follow < 0xD0) | (follow > 0xD7))]


def first_scan(raw: bytes) -> int:
    """Where the first start-of-scan marker begins, found by walking the segments by
    their lengths (:func:`segments`: bytes inside them, such as an EXIF thumbnail, are
    skipped); -1 when the walk finds no scan (the full check then says why).

    Example:
        >>> first_scan(b"\\xff\\xd8\\xff\\xdb\\x00\\x02\\xff\\xda\\x00\\x02")
        6
    """
    try:
        for pos, marker, _ in segments(raw):
            if marker == 0xDA:
                return pos
            if marker in _STANDALONE or marker == 0xD9:
                return -1
    except SegmentOverrun:
        return -1
    return -1


def scan_walk(raw: bytes, markers: np.ndarray) -> str | None:
    """:func:`scan_problem`'s walk, given ``markers`` (:func:`markers`
    of ``raw``; those before the first scan may be left out): segments are walked by their
    lengths, scans skipped to the next marker after them."""
    n = len(raw)
    pos, scans = 2, 0
    while True:
        while pos < n and raw[pos] == 0xFF and pos + 1 < n and raw[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 1 >= n or raw[pos] != 0xFF:
            break
        marker = raw[pos + 1]
        if marker == 0xD9:
            return None if scans else "the JPEG has no scan (start-of-scan marker missing)"
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if pos + 3 >= n:
            break
        end = pos + 2 + ((raw[pos + 2] << 8) | raw[pos + 3])
        if marker != 0xDA:
            pos = end
            continue
        scans += 1
        k = int(np.searchsorted(markers, end))
        if k == len(markers):
            break  # the data ends inside the scan
        pos = int(markers[k])
        code = raw[pos + 1]
        if code < 0xC0:
            return f"the JPEG scan data is corrupt (reserved marker 0xFF{code:02X} at byte {pos:,})"
    if not scans:
        return "the JPEG has no scan (start-of-scan marker missing)"
    return "the JPEG data is truncated (no end-of-image marker after the last scan)"


_LANES = np.arange(8)


def _positions_of_ff(arr: np.ndarray) -> np.ndarray:
    """Indices of the 0xFF bytes of ``arr`` (ascending). Entropy-coded data holds about
    one in 256: the mask is searched 8 bytes at a time, then only the words that hold
    one are looked into (several times faster than ``np.flatnonzero`` on the mask)."""
    eq = arr == 0xFF
    body = len(eq) // 8 * 8
    words = np.flatnonzero(eq[:body].view(np.uint64) != 0)
    idx = (words[:, None] * 8 + _LANES).ravel()
    idx = idx[eq[idx]]
    if body < len(eq):
        idx = np.concatenate([idx, np.flatnonzero(eq[body:]) + body])
    return idx


def read_metadata(buf: Any, found: dict[str, Any], problems: list[str]) -> None:
    """Put the raw EXIF (APP1 Exif), XMP packet (APP1 XMP) and ICC profile (the APP2
    ICC_PROFILE parts, joined in their order) of the JPEG ``buf`` into ``found``, the
    first of each; what is malformed (a segment past the data, missing profile parts)
    goes into ``problems``. Only the segments before the first scan are read.

    Example:
        >>> found = {}
        >>> read_metadata(b"\\xff\\xd8\\xff\\xe1\\x00\\x0cExif\\x00\\x00MM\\x00*\\xff\\xd9", found, [])
        >>> found
        {'exif': b'MM\\x00*'}
    """
    icc_parts: dict[int, bytes] = {}
    icc_total = set()
    try:
        for pos, marker, length in segments(buf):
            if marker not in (0xE1, 0xE2):
                continue
            body = bytes(buf[pos + 4 : pos + 2 + length])
            if marker == 0xE1 and body.startswith(exif.PREFIX) and "exif" not in found:
                found["exif"] = body[len(exif.PREFIX) :]
            elif marker == 0xE1 and body.startswith(XMP_ID) and "xmp" not in found:
                found["xmp"] = body[len(XMP_ID) :]
            elif marker == 0xE2 and body.startswith(ICC_ID) and len(body) >= 14:
                seq, total = body[12], body[13]
                icc_parts.setdefault(seq, body[14:])
                icc_total.add(total)
    except SegmentOverrun as exc:
        problems.append(str(exc))
    if icc_parts:
        total = next(iter(icc_total)) if len(icc_total) == 1 else 0
        if total and sorted(icc_parts) == list(range(1, total + 1)):
            found["icc"] = b"".join(icc_parts[k] for k in range(1, total + 1))
        else:
            counts = "/".join(str(t) for t in sorted(icc_total))
            problems.append(f"the ICC profile's APP2 segments are incomplete (parts {sorted(icc_parts)} of {counts})")


def embed(data: bytes, meta: Metadata, has_alpha: bool = False) -> bytes:
    """The encoded JPEG ``data`` with ``meta`` in APP1 Exif, APP1 XMP and APP2
    ICC_PROFILE segments (the profile split into numbered parts) after the encoder's
    JFIF APP0, replacing any it had. EncodeError for data that is not a JPEG and for
    metadata a JPEG cannot hold (an XMP packet over 64 KB: extended XMP is not written).

    Example:
        >>> from gpuimg.codec.metadata import read
        >>> jpeg = b"\\xff\\xd8\\xff\\xdb\\x00\\x02\\xff\\xd9"
        >>> read(embed(jpeg, Metadata(xmp="<x/>"))).xmp
        '<x/>'
    """
    if data[:2] != SIGNATURE:
        raise EncodeError("cannot add metadata: the encoded data is not a JPEG")
    # Keep the encoder's JFIF APP0 first (readers expect it there); drop any metadata it wrote.
    kept, rest = [], len(data)
    for pos, marker, length in segments(data):
        if not 0xE0 <= marker <= 0xEF:
            rest = pos
            break
        seg = data[pos : pos + 2 + length]
        if not seg[4:].startswith((exif.PREFIX, XMP_ID, ICC_ID)):
            kept.append(seg)
    app0 = [s for s in kept if s[1] == 0xE0]
    others = [s for s in kept if s[1] != 0xE0]
    ours = []
    if meta.exif is not None:
        ours.append(_segment(0xE1, exif.PREFIX + meta.exif, "the EXIF block"))
    if meta.xmp is not None:
        ours.append(_segment(0xE1, XMP_ID + meta.xmp.encode("utf-8"), "the XMP packet (extended XMP is not written)"))
    if meta.icc is not None:
        parts = [meta.icc[i : i + ICC_SEGMENT_BYTES] for i in range(0, len(meta.icc), ICC_SEGMENT_BYTES)]
        if len(parts) > 255:
            raise EncodeError(f"the ICC profile ({len(meta.icc)} bytes) needs more than 255 JPEG segments")
        ours += [_segment(0xE2, ICC_ID + bytes((k + 1, len(parts))) + c, "") for k, c in enumerate(parts)]
    return b"".join([SIGNATURE, *app0, *ours, *others, data[rest:]])


def _segment(marker: int, payload: bytes, what: str) -> bytes:
    if len(payload) > _SEGMENT_MAX:
        raise EncodeError(f"{what} ({len(payload)} bytes) does not fit a JPEG segment (at most {_SEGMENT_MAX})")
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload
