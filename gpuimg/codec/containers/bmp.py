"""BMP: the structure check (:func:`problem`), and a NumPy decoder for the variants
nvImageCodec 0.9 decodes wrongly (no error, bad pixels).

nvImageCodec's BMP decoder drops the alpha channel of 32-bit bitfield files (gpuimg's own
encoder writes RGBA as one), expands 16-bit channels by a bit shift (white becomes 248)
and returns black for bitfield masks other than the common ones. This module decodes
those variants itself: every UNCOMPRESSED BMP with a Windows header (40, 52, 56, 108 or
124 bytes) that is 16 or 32 bits per pixel (``BI_RGB``) or uses channel masks
(``BI_BITFIELDS`` = 3, ``BI_ALPHABITFIELDS`` = 6; 16, 24 or 32 bits). Everything else
(1/4/8/24-bit ``BI_RGB``, RLE, JPEG/PNG inside BMP, OS/2 headers) stays with nvImageCodec:
:func:`needs_own_decoder` says which is which.

Pillow (13) is the reference, and its choices are followed:

* a channel of ``n`` bits scales to 8 bits as ``v * 255 // (2**n - 1)`` (Pillow's
  formula for its 5- and 6-bit channels, truncating; white stays 255, a 1-bit channel
  gives 0/255, 8 bits are unchanged, wider channels scale down the same way);
* 32-bit ``BI_RGB`` is RGB: the fourth byte is not alpha, even where a writer filled it
  (Pillow and Windows ignore it; writers that leave it 0 would otherwise turn out
  invisible), and the masks of a V4/V5 header are ignored for ``BI_RGB``, as Pillow does;
* a 40-byte or 52-byte header with ``BI_BITFIELDS`` has three masks (no alpha);
  56-byte and longer headers carry an alpha mask, and the image has alpha (4 channels)
  exactly when that mask is non-zero, its values kept as stored (all-zero alpha stays 0);
* 32-bit ``BI_BITFIELDS`` with every mask zero reads as B, G, R, A bytes (Pillow's rule).

Beyond Pillow: any contiguous, non-overlapping masks decode (Pillow refuses all but a
few layouts), ``BI_ALPHABITFIELDS`` decodes (Pillow refuses it), and a 16-bit alpha mask
gives an alpha channel (Pillow drops it; its colour channels match). Masks that overlap,
have gaps or reach past the pixel size, all-zero colour masks (16/24 bits), bad sizes and
truncated pixel data raise :class:`~gpuimg.DecodeError`.

Example:
    >>> import struct
    >>> px = struct.pack("<HH", 0x7FFF, 0x001F)  # one 16-bit row: white, blue
    >>> info = struct.pack("<IiiHHIIiiII", 40, 2, 1, 1, 16, 0, 4, 0, 0, 0, 0)
    >>> data = b"BM" + struct.pack("<IHHI", 58, 0, 0, 54) + info + px
    >>> needs_own_decoder(data)
    True
    >>> decode(data, "two.bmp").tolist()
    [[[255, 255, 255], [0, 0, 255]]]
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

import numpy as np

from ...errors import DecodeError
from .._bytes import byte_view
from ._common import size_mismatch

__all__ = ["TITLE", "BmpHeader", "problem", "needs_own_decoder", "header", "decode"]

TITLE = "BMP"

BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS = 0, 3, 6
_HEADER_SIZES = (40, 52, 56, 108, 124)  # BITMAPINFOHEADER, V2, V3, V4, V5; 12 and 64 are OS/2
_MAX_BYTES = 2**31  # decoded size limit: far above any real BMP, below a bomb's allocation
_CHUNK_PIXELS = 1 << 18  # pixels converted per step: bounds the temporaries to a few MB

# The masks a BI_RGB file implies (Pillow: "BGR;15" and "BGRX").
_RGB_MASKS = {16: (0x7C00, 0x03E0, 0x001F, 0), 32: (0xFF0000, 0xFF00, 0xFF, 0)}
_ZERO_MASKS_32 = (0xFF0000, 0xFF00, 0xFF, 0xFF000000)  # Pillow reads all-zero 32-bit masks as BGRA


class BmpHeader(NamedTuple):
    """The facts of an owned BMP (see :func:`header`): the size as decoded (``height``
    positive, top-down files included), bits per pixel, the compression (0, 3 or 6), the
    effective ``(red, green, blue, alpha)`` masks and whether the result has alpha.

    Example:
        >>> BmpHeader(4, 2, 32, 3, (0xFF0000, 0xFF00, 0xFF, 0xFF000000), True).channels
        4
    """

    width: int
    height: int
    bits: int
    compression: int
    masks: tuple[int, int, int, int]
    has_alpha: bool

    @property
    def channels(self) -> int:
        """Channels of the decoded array: 4 with alpha, else 3."""
        return 4 if self.has_alpha else 3


class _Layout(NamedTuple):
    """Where the pixels lie: the header, the first stored row's offset, the row stride."""

    head: BmpHeader
    top_down: bool
    offset: int
    stride: int


def _owned(buf: Any) -> bool:
    if len(buf) < 34 or bytes(buf[:2]) != b"BM":
        return False
    size, bits, compression = struct.unpack_from("<I", buf, 14)[0], *struct.unpack_from("<HI", buf, 28)
    if size not in _HEADER_SIZES:
        return False
    return compression in (BI_BITFIELDS, BI_ALPHABITFIELDS) or (compression == BI_RGB and bits in (16, 32))


def needs_own_decoder(data: Any) -> bool:
    """True when ``data`` (any buffer of an encoded file) is a BMP this module decodes:
    16/32-bit ``BI_RGB`` or ``BI_BITFIELDS``/``BI_ALPHABITFIELDS`` with a Windows header.

    Reads only the first 34 bytes. True also for such a file that turns out broken
    (truncated, bad masks): :func:`decode` then raises a DecodeError saying why. False for
    everything else, BMP or not.

    Example:
        >>> needs_own_decoder(b"\\x89PNG\\r\\n\\x1a\\n"), needs_own_decoder(b"BM" + bytes(60))
        (False, False)
    """
    try:
        return _owned(byte_view(data))
    except (TypeError, ValueError):  # not a byte buffer
        return False


def _mask_bits(mask: int) -> tuple[int, int]:
    """(shift, width) of a contiguous mask; width 0 for an empty mask."""
    if mask == 0:
        return 0, 0
    shift = (mask & -mask).bit_length() - 1
    width = (mask >> shift).bit_length()
    return shift, width


def _layout(buf: Any, label: str) -> _Layout:
    """Parse and check the header of an owned BMP (``_owned(buf)`` is true)."""
    hsize = struct.unpack_from("<I", buf, 14)[0]
    if len(buf) < 14 + min(hsize, 40):
        raise DecodeError(label, f"the BMP header is truncated ({len(buf)} bytes)")
    offset = struct.unpack_from("<I", buf, 10)[0]
    width, height, _planes, bits, compression = struct.unpack_from("<iiHHI", buf, 18)
    count = 0  # masks stored in the file
    if compression == BI_RGB:
        masks = _RGB_MASKS[bits]
    else:
        if bits not in (16, 24, 32):
            raise DecodeError(label, f"a bitfields BMP must have 16, 24 or 32 bits per pixel, not {bits}")
        # The masks follow the 40-byte fields: inside a V2+ header, after a 40-byte one.
        # BI_BITFIELDS has an alpha mask only where the header has room for it (V3+).
        count = 4 if compression == BI_ALPHABITFIELDS or hsize >= 56 else 3
        if len(buf) < 54 + 4 * count:
            raise DecodeError(label, f"the BMP channel masks are truncated ({len(buf)} bytes)")
        masks = (*struct.unpack_from(f"<{count}I", buf, 54), 0)[:4]
        if bits == 32 and masks == (0, 0, 0, 0):
            masks = _ZERO_MASKS_32
        _check_masks(masks, bits, label)
    if offset == 0:  # no pixel offset given: the pixels follow the header and masks
        offset = 14 + hsize if compression == BI_RGB else max(14 + hsize, 54 + 4 * count)
    if width <= 0 or height == 0 or height == -(2**31):
        raise DecodeError(label, f"the BMP header gives an impossible size {width}x{height}")
    top_down = height < 0
    height = abs(height)
    has_alpha = masks[3] != 0
    channels = 4 if has_alpha else 3
    if width * height * channels > _MAX_BYTES:
        raise DecodeError(label, f"the BMP header claims {width}x{height} pixels, over {_MAX_BYTES:,} decoded bytes")
    head = BmpHeader(width, height, bits, compression, masks, has_alpha)
    return _Layout(head, top_down, offset, ((width * bits + 31) // 32) * 4)


def _check_masks(masks: tuple[int, ...], bits: int, label: str) -> None:
    names = ("red", "green", "blue", "alpha")
    if not any(masks[:3]):
        raise DecodeError(label, "the BMP colour masks are all zero")
    seen = 0
    for name, mask in zip(names, masks):
        shift, width = _mask_bits(mask)
        if mask >> bits:
            raise DecodeError(label, f"the BMP {name} mask {mask:#x} reaches past the {bits}-bit pixel")
        if mask != ((1 << width) - 1) << shift:
            raise DecodeError(label, f"the BMP {name} mask {mask:#x} is not one run of bits")
        if mask & seen:
            raise DecodeError(label, f"the BMP {name} mask {mask:#x} overlaps another channel's mask")
        seen |= mask


def header(data: Any, label: str = "<BMP data>") -> BmpHeader | None:
    """The header of a BMP :func:`decode` handles, checked; None when
    :func:`needs_own_decoder` is False. Reads at most the first 70 bytes.

    Use it to size the decode target (``height`` x ``width`` x ``channels``) before
    decoding. Raises :class:`~gpuimg.DecodeError` naming ``label`` for a broken header
    (bad masks, impossible size); truncated pixel data is found only by :func:`decode`.

    Example:
        >>> import struct
        >>> info = struct.pack("<IiiHHIIiiII", 40, 3, -2, 1, 32, 0, 24, 0, 0, 0, 0)
        >>> head = header(b"BM" + struct.pack("<IHHI", 78, 0, 0, 54) + info + bytes(24))
        >>> head.width, head.height, head.channels
        (3, 2, 3)
    """
    buf = byte_view(data)
    if not _owned(buf):
        return None
    return _layout(buf, label).head


def decode(data: Any, label: str) -> np.ndarray:
    """Decode a BMP for which :func:`needs_own_decoder` is True into a new
    (H, W, 3) or (H, W, 4) uint8 array, RGB(A), top row first.

    ``data``: bytes or any byte buffer (a uint8 array). ``label`` names the source in
    errors. The rows are read in place (no copy of the file) and converted in chunks, so
    memory stays at the result's size plus a few MB. Raises :class:`~gpuimg.DecodeError`
    for a file that is not such a BMP, a broken header or truncated pixel data (only the
    padding of the last stored row may be missing).

    Example:
        >>> import struct
        >>> px = struct.pack("<I", 0x80FF0000)  # one BGRA pixel: red, half transparent
        >>> info = struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 32, 6, 4, 0, 0, 0, 0)
        >>> masks = struct.pack("<4I", 0xFF0000, 0xFF00, 0xFF, 0xFF000000)
        >>> data = b"BM" + struct.pack("<IHHI", 74, 0, 0, 70) + info + masks + px
        >>> decode(data, "red.bmp").tolist()
        [[[255, 0, 0, 128]]]
    """
    buf = byte_view(data)
    if not _owned(buf):
        raise DecodeError(label, "it is not a 16/32-bit or bitfields BMP")
    lay = _layout(buf, label)
    head = lay.head
    nbytes = head.bits // 8
    row_bytes = head.width * nbytes
    need = lay.offset + (head.height - 1) * lay.stride + row_bytes
    if need > len(buf):
        rows = max(0, (len(buf) - lay.offset) // lay.stride)
        raise DecodeError(
            label, f"the BMP pixel data is truncated ({len(buf):,} bytes, {need:,} needed; {rows} of {head.height} rows)"
        )
    raw = np.frombuffer(buf, np.uint8)
    byte_of = _byte_channels(head.masks, head.bits)
    # The stored rows, read in place; 16/32-bit pixels as (possibly unaligned) integers.
    if byte_of is None and head.bits != 24:
        shape, dtype, strides = (head.height, head.width), np.dtype(f"<u{nbytes}"), (lay.stride, nbytes)
    else:
        shape, dtype, strides = (head.height, head.width, nbytes), np.dtype(np.uint8), (lay.stride, nbytes, 1)
    rows = np.ndarray(shape, dtype, raw, lay.offset, strides)
    if not lay.top_down:
        rows = rows[::-1]  # bottom-up: the last stored row is the top one
    out = np.empty((head.height, head.width, head.channels), np.uint8)
    tables = None if byte_of is not None else _tables(head.masks, head.bits, head.channels)
    step = max(1, _CHUNK_PIXELS // head.width)
    for y in range(0, head.height, step):
        block, target = rows[y : y + step], out[y : y + step]
        if byte_of is not None:
            for c in range(head.channels):
                target[..., c] = block[..., byte_of[c]]
        else:
            # (A copy of the chunk: the rows are seldom aligned, and unaligned integer math is slow.)
            _convert(_pixels(block) if head.bits == 24 else block.copy(), head.masks, tables, target)
    return out


def _byte_channels(masks: tuple[int, ...], bits: int) -> list[int] | None:
    """The byte index of each channel when every used mask is one whole byte (the common
    24/32-bit layouts: a plain byte copy), else None. Zero colour masks take the generic path."""
    if bits == 16:
        return None
    index = []
    for mask in masks:
        if mask == 0:
            continue
        shift, width = _mask_bits(mask)
        if width != 8 or shift % 8:
            return None
        index.append(shift // 8)
    return index if len(index) == (4 if masks[3] else 3) else None


def _pixels(block: np.ndarray) -> np.ndarray:
    """The (rows, width) pixel integers of a (rows, width, 3) block of 24-bit pixels."""
    pix = block[..., 0].astype(np.uint32)
    pix |= block[..., 1].astype(np.uint32) << 8
    pix |= block[..., 2].astype(np.uint32) << 16
    return pix


def _scale_table(width: int) -> np.ndarray:
    """uint8 value of each ``width``-bit channel value (Pillow's ``v * 255 // max``)."""
    top = (1 << width) - 1
    return (np.arange(top + 1, dtype=np.uint64) * 255 // top).astype(np.uint8)


def _tables(masks: tuple[int, ...], bits: int, channels: int) -> list[np.ndarray | None]:
    """Per channel, the table that gives its uint8 values: indexed by the whole pixel for
    16-bit files (one gather a channel, no shifts), by the channel's bits otherwise; None
    for a channel without bits or wider than 16 bits (computed)."""
    whole = np.arange(1 << 16, dtype=np.uint32) if bits == 16 else None
    tables: list[np.ndarray | None] = []
    for c in range(channels):
        shift, width = _mask_bits(masks[c])
        if width == 0 or (whole is None and width > 16):
            tables.append(None)
        elif whole is not None:
            tables.append(_scale_table(width)[(whole >> shift) & ((1 << width) - 1)])
        else:
            tables.append(_scale_table(width))
    return tables


def _convert(pix: np.ndarray, masks: tuple[int, ...], tables: list[np.ndarray | None], target: np.ndarray) -> None:
    """Write each mask's channel of the pixel integers ``pix`` into ``target[..., c]``,
    scaled to 8 bits (``tables`` from :func:`_tables`)."""
    for c in range(target.shape[-1]):
        shift, width = _mask_bits(masks[c])
        table = tables[c]
        if width == 0:
            target[..., c] = 0  # a colour channel without bits
        elif table is not None and table.size == 1 << 16 and pix.dtype == np.uint16:
            target[..., c] = table[pix]
        elif table is not None:
            target[..., c] = table[(pix >> shift) & ((1 << width) - 1)]
        else:
            top = (1 << width) - 1
            target[..., c] = ((pix >> shift) & top).astype(np.uint64) * 255 // top


_UNCOMPRESSED = (0, 3, 6)  # BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS


def problem(buf: Any, width: int, height: int) -> str | None:
    """Why the BMP ``buf`` must not be decoded, or None: its headers inside the data, a
    size of ``width`` x ``height`` (-1: not compared), the pixel data where the offset
    says and, uncompressed, as long as the rows need.

    Example:
        >>> problem(b"BM", 1, 1)
        'the BMP file header is damaged or truncated'
    """
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
    mismatch = size_mismatch("BMP header", w, abs(h), width, height)
    if mismatch:
        return mismatch
    if offset >= n:
        return f"the BMP pixel data offset {offset} lies beyond the end of the {n}-byte file (truncated)"
    if offset < 14 + header:
        return f"the BMP pixel data offset {offset} points inside its headers (corrupt)"
    if compression in _UNCOMPRESSED:
        if bpp not in (1, 2, 4, 8, 16, 24, 32):
            return f"the BMP header gives an invalid bit count {bpp}"
        need = (w * bpp + 31) // 32 * 4 * abs(h)
        if offset + need > n:
            return (
                f"the BMP pixel data is truncated: {abs(h)} rows need {need} bytes after byte {offset}, "
                f"the file has {n - offset}"
            )
    return None
