"""Cheap structural checks of an encoded image, done BEFORE it is decoded.

nvImageCodec parses the header (``CodeStream``: width, height, channels, codec) and then
a different library decodes: OpenCV's libpng / libtiff / libwebp / OpenJPEG on the CPU,
nvTIFF / nvJPEG2000 on the GPU. When the two read the file differently, gpuimg sizes the
target from the header and the decoder fills only part of it (the rest is stale buffer
content, reported as a success), or the decoder believes a corrupt length and allocates
gigabytes before failing. :func:`structure_problem` walks the container (chunks, IFD,
boxes, markers) without decoding anything, and says what is wrong in words; the caller
turns that into ``DecodeError(label, reason)``.

:func:`tiff_associated_alpha` and :func:`unpremultiply` handle TIFFs whose alpha is
associated (premultiplied, ExtraSamples = 1): decoders return them premultiplied, Pillow
returns them straight (it reads them through its "RGBa" raw mode), and
:func:`unpremultiply` gives Pillow's pixels from the decoder's.

Every walker reads with ``struct.unpack_from`` on the caller's buffer (no slice copies;
a PNG with thousands of IDAT chunks costs a few hundred microseconds) and checks each
offset against the buffer's length before reading, so junk gives a reason or None and
never an exception or a read past the end.

Example:
    >>> structure_problem(b"\\x89PNG\\r\\n\\x1a\\n", "png", 1, 1)
    'the PNG data is truncated (it ends at byte 8, before the IHDR chunk)'
    >>> structure_problem(b"\\xff\\xd8\\xff", "jpeg", 1, 1) is None
    True
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from ._bytes import byte_view

__all__ = ["structure_problem", "jpeg_scan_problem", "tiff_associated_alpha", "unpremultiply"]


def structure_problem(data: bytes | memoryview | Any, codec: str, width: int = -1, height: int = -1) -> str | None:
    """Why ``data`` must not be decoded, or None when its structure looks sound.

    ``codec`` is nvImageCodec's codec name ("png", "tiff", "webp", "bmp", "pnm",
    "jpeg2k", "jpeg"); ``width`` / ``height`` the STORED size its header reported
    (before any EXIF rotation; -1: not known yet, so not compared: the decoder checks
    the structure before nvImageCodec's own header parser sees the data, whose divisions
    and allocations hostile files target, and the size once that parser has read it).
    The checks are structural and cheap (no decompression,
    no CRCs): every length and offset must lie inside the data, the size the container
    states must be the one nvImageCodec reported, and the tags or chunks that decide the
    size must not appear twice. JPEG and unknown codecs return None (the JPEG fast path
    has its own end-of-image check). The reason reads after "cannot decode <source>: ".

    ``data``: bytes or any buffer of bytes (a 1-D uint8 NumPy array); an object that is
    not a buffer is a TypeError. Junk data never raises: it gives a reason (or None where
    nothing checkable is wrong).

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (40, 30)).save(buf, "PNG")
        >>> structure_problem(buf.getvalue(), "png", 40, 30) is None
        True
        >>> structure_problem(buf.getvalue(), "png", 40, 31)
        'the PNG IHDR chunk says 40x30, the header was read as 40x31'
    """
    check = _CHECKS.get(codec)
    if check is None:
        return None
    buf = byte_view(data)
    try:
        return check(buf, int(width), int(height))
    except (struct.error, IndexError, ValueError, OverflowError) as exc:
        # The walkers check bounds before reading; landing here still means a structure
        # that ends or points outside the data, which is what a truncated file does.
        return f"its {_TITLES[codec]} structure is truncated or corrupt ({exc})"


def jpeg_scan_problem(data: bytes | memoryview | Any) -> str | None:
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
        >>> jpeg_scan_problem(good) is None
        True
        >>> jpeg_scan_problem(good[:-200])
        'the JPEG data is truncated (no end-of-image marker after the last scan)'
        >>> bad = bytearray(good); bad[-300:-298] = b"\\xff\\x02"
        >>> jpeg_scan_problem(bytes(bad))[:50]
        'the JPEG scan data is corrupt (reserved marker 0xF'
    """
    buf = byte_view(data)
    raw = buf if isinstance(buf, bytes) else bytes(buf)
    return _jpeg_scan_walk(raw, _jpeg_markers(raw))


def _jpeg_markers(raw: bytes, start: int = 0) -> np.ndarray:
    """Ascending positions (from ``start`` on) of every 0xFF that begins a marker as the
    entropy-coded data reads it: not a stuffed 0xFF00, a fill byte (0xFFFF) or a restart
    marker (0xFFD0-D7). The GPU check (:mod:`~gpuimg.codec._scan_gpu`) finds the same set."""
    arr = np.frombuffer(raw, np.uint8)
    ff = _positions_of_ff(arr[start:-1]) + start
    follow = arr[ff + 1]
    return ff[(follow != 0) & (follow != 0xFF) & ((follow < 0xD0) | (follow > 0xD7))]


def _jpeg_first_scan(raw: bytes) -> int:
    """Where the first start-of-scan marker begins, found by walking the segments by
    their lengths (bytes inside them, such as an EXIF thumbnail, are skipped); -1 when the
    walk finds no scan (the full check then says why)."""
    n, pos = len(raw), 2
    while pos + 3 < n:
        if raw[pos] != 0xFF:
            return -1
        marker = raw[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker == 0xDA:
            return pos
        elif marker == 0x01 or 0xD0 <= marker <= 0xD9:
            return -1
        else:
            pos += 2 + ((raw[pos + 2] << 8) | raw[pos + 3])
    return -1


def _jpeg_scan_walk(raw: bytes, markers: np.ndarray) -> str | None:
    """:func:`jpeg_scan_problem`'s walk, given ``markers`` (:func:`_jpeg_markers`
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


def tiff_associated_alpha(data: bytes | memoryview | Any) -> bool:
    """True when ``data`` is a TIFF whose IFD0 ExtraSamples (338) first value is 1:
    associated (premultiplied) alpha. False for anything else, junk included.

    Example:
        >>> import io, numpy as np, tifffile
        >>> buf = io.BytesIO()
        >>> tifffile.imwrite(buf, np.zeros((2, 2, 4), np.uint8), photometric="rgb", extrasamples=[1])
        >>> tiff_associated_alpha(buf.getvalue()), tiff_associated_alpha(b"II*\\x00")
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


def unpremultiply(arr: Any, out: Any = None) -> Any:
    """Straight (un-premultiplied) RGBA from premultiplied ``arr``, as Pillow's RGBa -> RGBA.

    ``arr``: an (H, W, 4) uint8 or uint16 NumPy or CuPy array, colour premultiplied by
    alpha. Each colour becomes ``min(max, colour * max // alpha)`` (``max`` 255 or
    65535, floor division, no rounding) and 0 where alpha is 0; alpha is unchanged. For
    uint8 this is what Pillow does when it reads a premultiplied TIFF (its "RGBa" raw
    mode), bit for bit on all 256x256 (value, alpha) pairs; ``Image.convert("RGBA")``
    of an RGBa image differs only where alpha is 0 and the colour is not (it keeps the
    colour), which premultiplied data cannot hold. ``out``: None for a new array,
    ``arr`` itself to work in place, or an array of the same shape, dtype and module.
    Returns ``out``.

    Example:
        >>> import numpy as np
        >>> unpremultiply(np.array([[[64, 128, 0, 128], [0, 0, 0, 0]]], np.uint8)).tolist()
        [[[127, 255, 0, 128], [0, 0, 0, 0]]]
    """
    xp = _array_module(arr)
    if arr.ndim != 3 or arr.shape[-1] != 4:
        raise ValueError(f"unpremultiply takes an (H, W, 4) array, got shape {tuple(arr.shape)}")
    if arr.dtype == np.uint8:
        peak = 255
    elif arr.dtype == np.uint16:
        peak = 65535
    else:
        raise ValueError(f"unpremultiply takes uint8 or uint16 pixels, got {arr.dtype}")
    if out is None:
        out = arr.copy()
    elif out is not arr:
        if tuple(out.shape) != tuple(arr.shape) or out.dtype != arr.dtype or _array_module(out) is not xp:
            raise ValueError(
                f"out must be a {xp.__name__} {arr.dtype} array of shape {tuple(arr.shape)}, "
                f"got {type(out).__name__} {out.dtype} {tuple(out.shape)}"
            )
        out[..., 3] = arr[..., 3]
    height, width = arr.shape[:2]
    # Row blocks of about a million pixels bound the uint32 temporaries (16 bytes a pixel)
    # on big images; colour * 65535 still fits uint32.
    step = max(1, (1 << 20) // max(1, width))
    for top in range(0, height, step):
        rows = slice(top, min(height, top + step))
        alpha = arr[rows, :, 3:4].astype(xp.uint32)
        # Alpha 0 makes the colour 0 (its scale is 0, the divisor 1); alpha max gives the
        # colour back by itself.
        scale = (alpha != 0).astype(xp.uint32)
        scale *= peak
        xp.maximum(alpha, 1, out=alpha)
        colour = arr[rows, :, :3].astype(xp.uint32)
        colour *= scale
        colour //= alpha
        xp.minimum(colour, peak, out=colour)
        out[rows, :, :3] = colour
    return out


# --- shared helpers ----------------------------------------------------------------------

_TITLES = {"png": "PNG", "tiff": "TIFF", "webp": "WebP", "jpeg2k": "JPEG 2000", "bmp": "BMP", "pnm": "PNM"}


def _array_module(arr: Any) -> Any:
    """NumPy, or CuPy for a CuPy array (CuPy imported only when it is installed and needed)."""
    if isinstance(arr, np.ndarray):
        return np
    try:
        import cupy
    except ImportError:
        return np
    return cupy.get_array_module(arr)


def _size_mismatch(what: str, w: int, h: int, width: int, height: int) -> str | None:
    if (w, h) == (width, height) or width < 0:
        return None
    return f"the {what} says {w}x{h}, the header was read as {width}x{height}"


# --- PNG ---------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHUNK = struct.Struct(">I4s")
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


def _png(buf: Any, width: int, height: int) -> str | None:
    n = len(buf)
    if buf[:8] != _PNG_SIGNATURE:
        return "the PNG signature is damaged"
    if n < 33:
        return f"the PNG data is truncated (it ends at byte {n}, before the IHDR chunk)"
    length, kind = _PNG_CHUNK.unpack_from(buf, 8)
    if kind != b"IHDR" or length != 13:
        return f"the first PNG chunk is {_chunk_name(kind)} of {length} bytes, not the 13-byte IHDR"
    w, h, depth, colour = struct.unpack_from(">IIBB", buf, 16)
    problem = _size_mismatch("PNG IHDR chunk", w, h, width, height)
    if problem:
        return problem
    if depth not in _PNG_DEPTHS.get(colour, ()):
        return f"the PNG IHDR chunk gives an invalid bit depth {depth} for colour type {colour}"
    unpack = _PNG_CHUNK.unpack_from
    pos, idat, plte = 33, False, False
    # The hot loop of big files (one pass per chunk, thousands of IDATs): one unpack and a
    # compare or two per chunk.
    while True:
        if pos + 12 > n:
            return f"the PNG data is truncated (it ends at byte {n}, before the IEND chunk)"
        length, kind = unpack(buf, pos)
        end = pos + 12 + length
        if end > n or length > 0x7FFFFFFF:
            return (
                f"the PNG chunk {_chunk_name(kind)} at byte {pos} claims {length} bytes but only "
                f"{n - pos - 12} follow (a corrupt length or a truncated file)"
            )
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
        pos = end


def _chunk_name(kind: bytes) -> str:
    return repr(kind.decode("latin-1")) if kind.isalpha() else repr(kind)


# --- TIFF --------------------------------------------------------------------------------

# Tags whose second copy makes the header parser and the decoder disagree (one reads the
# first, the other the last): the size, the sample layout and where the data lies.
_TIFF_SINGLE = {
    256: "ImageWidth", 257: "ImageLength", 258: "BitsPerSample", 259: "Compression",
    273: "StripOffsets", 277: "SamplesPerPixel", 279: "StripByteCounts", 284: "PlanarConfiguration",
    322: "TileWidth", 323: "TileLength", 324: "TileOffsets", 325: "TileByteCounts",
}  # fmt: skip
_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_TIFF_INTS = {1: "u1", 3: "u2", 4: "u4", 13: "u4", 16: "u8", 6: "i1", 8: "i2", 9: "i4", 17: "i8"}
_TIFF_MAX_ENTRIES = 4096  # real IFD0s hold tens of tags; thousands means a garbage count


class _Ifd:
    """IFD0 of a TIFF: where each tag's values lie (the first copy of each tag)."""

    __slots__ = ("buf", "order", "first", "inline")

    def __init__(self, buf: Any, order: str, inline: int):
        self.buf = buf
        self.order = order  # "<" or ">"
        self.inline = inline  # value bytes held in the entry itself (4, BigTIFF 8)
        self.first: dict[int, tuple[int, int, int]] = {}  # tag -> (type, count, entry value field)

    def values(self, tag: int) -> np.ndarray | str | None:
        """The integer values of ``tag`` (a view, no copy), None for a non-integer type,
        or a reason when they lie outside the file."""
        kind, count, field = self.first[tag]
        code = _TIFF_INTS.get(kind)
        if code is None:
            return None
        size = _TIFF_SIZES[kind] * count
        if size <= self.inline:
            pos = field
        else:
            pos = struct.unpack_from(self.order + ("I" if self.inline == 4 else "Q"), self.buf, field)[0]
            if pos + size > len(self.buf):
                name = _TIFF_SINGLE.get(tag, f"tag {tag}")
                return (
                    f"the TIFF is truncated: the {count} values of {name} lie at bytes {pos}-{pos + size} "
                    f"of a {len(self.buf)}-byte file"
                )
        return np.frombuffer(self.buf, np.dtype(code).newbyteorder(self.order), count, pos)


def _tiff_ifd0(buf: Any) -> _Ifd | str:
    """IFD0 of a classic or BigTIFF file, or the reason it cannot be read."""
    n = len(buf)
    head = bytes(buf[:4])
    if head in (b"II*\x00", b"MM\x00*"):
        order = "<" if head[0] == 0x49 else ">"
        if n < 8:
            return f"the TIFF data is truncated (it ends at byte {n}, inside its 8-byte header)"
        offset = struct.unpack_from(order + "I", buf, 4)[0]
        count_fmt, entry_fmt, entry_size, inline, first = "H", "HHI", 12, 4, 8
    elif head in (b"II+\x00", b"MM\x00+"):
        order = "<" if head[0] == 0x49 else ">"
        if n < 16:
            return f"the BigTIFF data is truncated (it ends at byte {n}, inside its 16-byte header)"
        bytesize, zero, offset = struct.unpack_from(order + "HHQ", buf, 4)
        if bytesize != 8 or zero != 0:
            return f"the BigTIFF header gives an offset size of {bytesize}, not 8"
        count_fmt, entry_fmt, entry_size, inline, first = "Q", "HHQ", 20, 8, 16
    else:
        return "the TIFF byte-order mark or magic number is damaged"
    count_size = struct.calcsize(count_fmt)
    if offset < first or offset + count_size > n:
        return f"the TIFF's first IFD offset {offset} lies outside the {n}-byte file (truncated or corrupt)"
    count = struct.unpack_from(order + count_fmt, buf, offset)[0]
    if count == 0 or count > _TIFF_MAX_ENTRIES:
        return f"the TIFF's first IFD claims {count} entries (corrupt)"
    entries = offset + count_size
    if entries + count * entry_size > n:
        return (
            f"the TIFF is truncated: the first IFD's {count} entries need bytes {entries}-"
            f"{entries + count * entry_size} of a {n}-byte file"
        )
    ifd = _Ifd(buf, order, inline)
    unpack = struct.Struct(order + entry_fmt).unpack_from
    for i in range(count):
        pos = entries + i * entry_size
        tag, kind, values = unpack(buf, pos)
        if tag in ifd.first:
            if tag in _TIFF_SINGLE:
                return (
                    f"the TIFF tag {_TIFF_SINGLE[tag]} ({tag}) appears twice in IFD0 "
                    "(the header reader and the decoder would disagree on it)"
                )
            continue
        if kind in _TIFF_SIZES:  # unknown types are skipped, as libtiff does
            ifd.first[tag] = (kind, values, pos + 4 + inline)  # the value field follows the count
    return ifd


def _tiff(buf: Any, width: int, height: int) -> str | None:
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
    problem = _size_mismatch("TIFF IFD0", size[0], size[1], width, height)
    if problem:
        return problem
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


# --- WebP --------------------------------------------------------------------------------


def _webp(buf: Any, width: int, height: int) -> str | None:
    n = len(buf)
    if n < 12 or buf[:4] != b"RIFF" or buf[8:12] != b"WEBP":
        return "the WebP RIFF header is damaged or truncated"
    riff = struct.unpack_from("<I", buf, 4)[0]
    if riff + 8 > n:
        return f"the WebP data is truncated (its RIFF header claims {riff + 8} bytes, the data has {n})"
    end = riff + 8  # trailing bytes after the RIFF are ignored, as libwebp does
    pos, canvas, image = 12, None, None
    while pos + 8 <= end:
        kind, size = struct.unpack_from("<4sI", buf, pos)
        body = pos + 8
        if body + size > end:
            return (
                f"the WebP chunk {_chunk_name(kind)} at byte {pos} claims {size} bytes but only "
                f"{end - body} follow (a corrupt size or a truncated file)"
            )
        if pos == 12 and kind not in (b"VP8 ", b"VP8L", b"VP8X"):
            return f"the first WebP chunk is {_chunk_name(kind)}, not VP8, VP8L or VP8X"
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
            image = _webp_frame_size(buf, kind, body, size)
            if isinstance(image, str):
                return image
        pos = body + size + (size & 1)
    if canvas is not None:
        problem = _size_mismatch("WebP VP8X canvas", canvas[0], canvas[1], width, height)
        if problem:
            return problem
        if canvas[2]:  # animation: frames are ANMF chunks; the canvas is what decodes
            return None
        if image is None:
            return "the WebP has no VP8 or VP8L image chunk (no image data)"
        return _size_mismatch("WebP image chunk", image[0], image[1], canvas[0], canvas[1])
    if image is None:
        return "the WebP has no VP8 or VP8L image chunk (no image data)"
    return _size_mismatch(f"WebP {'VP8L' if buf[15] == 0x4C else 'VP8'} chunk", image[0], image[1], width, height)


def _webp_frame_size(buf: Any, kind: bytes, body: int, size: int) -> tuple[int, int] | str:
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


# --- JPEG 2000 ---------------------------------------------------------------------------

_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def _jpeg2k(buf: Any, width: int, height: int) -> str | None:
    n = len(buf)
    if buf[:2] == b"\xff\x4f":
        return _j2k_codestream(buf, 0, n, width, height)
    if buf[:12] != _JP2_SIGNATURE:
        return "the JPEG 2000 signature is damaged"
    pos, size, codestream = 12, None, None
    while pos < n:
        box = _jp2_box(buf, pos, n)
        if isinstance(box, str):
            return box
        kind, body, end = box
        if kind == b"jp2h":
            size = _jp2_ihdr(buf, body, end)
            if isinstance(size, str):
                return size
        elif kind == b"jp2c" and codestream is None:
            codestream = (body, end)
        pos = end
    if size is None:
        return "the JP2 file has no jp2h/ihdr header box"
    problem = _size_mismatch("JP2 ihdr box", size[0], size[1], width, height)
    if problem:
        return problem
    if codestream is None:
        return "the JP2 file has no jp2c codestream box (truncated or corrupt)"
    return _j2k_codestream(buf, codestream[0], codestream[1], width, height)


def _jp2_box(buf: Any, pos: int, end: int) -> tuple[bytes, int, int] | str:
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
        return f"the JPEG 2000 box {_chunk_name(kind)} at byte {pos} claims an impossible length {length}"
    if pos + length > end:
        return (
            f"the JPEG 2000 box {_chunk_name(kind)} at byte {pos} claims {length} bytes but only "
            f"{end - pos} are there (a corrupt length or a truncated file)"
        )
    return kind, body, pos + length


def _jp2_ihdr(buf: Any, pos: int, end: int) -> tuple[int, int] | str:
    while pos < end:
        box = _jp2_box(buf, pos, end)
        if isinstance(box, str):
            return box
        kind, body, stop = box
        if kind == b"ihdr":
            if stop - body < 14:
                return f"the JP2 ihdr box is {stop - body} bytes, less than 14"
            h, w = struct.unpack_from(">II", buf, body)
            return w, h
        pos = stop
    return "the JP2 jp2h box holds no ihdr box"


def _j2k_codestream(buf: Any, start: int, end: int, width: int, height: int) -> str | None:
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
    problem = _size_mismatch("JPEG 2000 SIZ marker", xsiz - xosiz, ysiz - yosiz, width, height)
    if problem:
        return problem
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
            problem = _j2k_cod(buf, pos, length, end)
            if problem:
                return problem
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


def _j2k_cod(buf: Any, pos: int, length: int, end: int) -> str | None:
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


# --- BMP ---------------------------------------------------------------------------------

_BMP_UNCOMPRESSED = (0, 3, 6)  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS


def _bmp(buf: Any, width: int, height: int) -> str | None:
    n = len(buf)
    if n < 18 or buf[:2] != b"BM":
        return "the BMP file header is damaged or truncated"
    offset, header = struct.unpack_from("<II", buf, 10)
    if header < 12 or 14 + header > n:
        return f"the BMP info header ({header} bytes) is corrupt or cut off in the {n}-byte file"
    if header == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes
        w, h, _, bpp = struct.unpack_from("<HHHH", buf, 18)
        compression = 0
    elif header >= 16:
        w, h, _, bpp = struct.unpack_from("<iiHH", buf, 18)
        compression = struct.unpack_from("<I", buf, 30)[0] if header >= 20 else 0
    else:
        return f"the BMP info header has an unknown size {header}"
    if w <= 0 or h == 0:
        return f"the BMP header gives an empty or negative size {w}x{h}"
    problem = _size_mismatch("BMP header", w, abs(h), width, height)
    if problem:
        return problem
    if offset >= n:
        return f"the BMP pixel data offset {offset} lies beyond the end of the {n}-byte file (truncated)"
    if offset < 14 + header:
        return f"the BMP pixel data offset {offset} points inside its headers (corrupt)"
    if compression in _BMP_UNCOMPRESSED:
        if bpp not in (1, 2, 4, 8, 16, 24, 32):
            return f"the BMP header gives an invalid bit count {bpp}"
        need = (w * bpp + 31) // 32 * 4 * abs(h)
        if offset + need > n:
            return (
                f"the BMP pixel data is truncated: {abs(h)} rows need {need} bytes after byte {offset}, "
                f"the file has {n - offset}"
            )
    return None


# --- PNM ---------------------------------------------------------------------------------

_PNM_HEADER_LIMIT = 1 << 16  # comments make a header long; beyond this, do not look
_PNM_SPACE = b" \t\n\r\x0b\x0c"


def _pnm(buf: Any, width: int, height: int) -> str | None:
    n = len(buf)
    head = bytes(buf[: min(n, _PNM_HEADER_LIMIT)])
    if len(head) < 2 or head[0] != 0x50 or head[1] not in b"123456":
        return "the PNM magic number is damaged"
    kind = head[1] - 0x30
    wanted = 2 if kind in (1, 4) else 3
    tokens: list[int] = []
    pos = 2
    while len(tokens) < wanted:
        while pos < len(head) and (head[pos] in _PNM_SPACE or head[pos] == 0x23):
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
        if pos == start or head[pos] not in _PNM_SPACE and head[pos] != 0x23:
            return f"the PNM header has a non-number at byte {pos}"
        tokens.append(int(head[start:pos]))
    w, h = tokens[0], tokens[1]
    maxval = tokens[2] if wanted == 3 else 1
    if not 1 <= maxval <= 65535:
        return f"the PNM header gives an invalid maximum value {maxval}"
    problem = _size_mismatch("PNM header", w, h, width, height)
    if problem:
        return problem
    if kind <= 3:
        return None  # ASCII rasters: no fixed size to check
    sample = 1 if maxval < 256 else 2
    need = (w + 7) // 8 * h if kind == 4 else w * h * sample * (3 if kind == 6 else 1)
    raster = pos + 1  # exactly one whitespace byte ends the header
    if raster + need > n:
        return f"the PNM raster is truncated: {w}x{h} needs {need} bytes after byte {raster}, the file has {n - raster}"
    return None


_CHECKS = {"png": _png, "tiff": _tiff, "webp": _webp, "jpeg2k": _jpeg2k, "bmp": _bmp, "pnm": _pnm}
