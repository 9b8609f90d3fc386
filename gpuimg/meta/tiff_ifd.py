"""TIFF-structured tag directories (IFDs): read them from hostile bytes, write them back.

EXIF blocks and TIFF files share this structure: a byte-order mark, a first-IFD offset,
then directories of 12-byte entries whose values sit inline (4 bytes or fewer) or at an
offset (BigTIFF: 8-byte offsets and counts, 20-byte entries). :func:`directory` is the
one reader of a directory's entries where they lie (:class:`Slot`), every copy of a tag
in file order, for classic and BigTIFF alike, with one limit (:data:`MAX_ENTRIES`);
:func:`first_copies` keeps each tag's first copy, the one a header reader and the
decoder must agree on. :func:`read_header` reads a TIFF file's header. The TIFF
container's structure check reads IFD0 through these; :func:`read_ifd` turns a
directory into :class:`Entry` objects holding their raw value bytes (so writing them
back needs no knowledge of each tag) for EXIF blocks and TIFF metadata, and
:func:`write_ifds` lays out a tree of directories (sub-IFDs by pointer tag) as a new
block. Every read is bounds-checked: a bad offset or count raises :class:`IfdError`,
never reads past the data.

Example:
    >>> block = write_ifds("<", [Entry(0x0112, 3, 1, b"\\x06\\x00")])
    >>> block[:4]
    b'II*\\x00'
    >>> entries, _ = read_ifd(block, "<", 8)
    >>> entries[0].value("<")
    6
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["Entry", "IfdError", "Slot", "byte_order", "read_header", "directory", "first_copies", "value_span", "read_ifd",
           "write_ifds", "TYPE_SIZES", "BIGTIFF_TYPE_SIZES", "POINTER_TAGS", "MAX_ENTRIES"]  # fmt: skip

# TIFF/EXIF field type -> bytes per value (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE,
# UNDEFINED, SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE, IFD).
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
# ... and BigTIFF's 8-byte integer types (LONG8, SLONG8, IFD8).
BIGTIFF_TYPE_SIZES = {**TYPE_SIZES, 16: 8, 17: 8, 18: 8}
_FORMATS = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 11: "f", 12: "d", 13: "I"}
# Tags whose value is the offset of a sub-directory: Exif IFD, GPS IFD, Interoperability IFD.
POINTER_TAGS = (0x8769, 0x8825, 0xA005)
# Entries a directory may hold, for every reader of TIFF-structured bytes (the TIFF
# structure check, the metadata read, EXIF blocks): libtiff's own sanity limit, so that
# what the check lets through is what libtiff decodes. Real directories hold tens.
MAX_ENTRIES = 4096
_MAX_VALUES = 1 << 16  # values decoded per entry (a thumbnail-sized UNDEFINED stays bytes)


class IfdError(ValueError):
    """The bytes are not a well-formed directory (offset or count out of range)."""


@dataclass
class Entry:
    """One tag: its type, value count and raw value bytes (in the block's byte order).
    ``children``: the entries of the sub-directory a pointer tag points to."""

    tag: int
    type: int
    count: int
    raw: bytes
    children: list[Entry] | None = field(default=None, repr=False)

    def in_order(self, src: str, dst: str) -> Entry:
        """This entry with its values (and its sub-directory's) in byte order ``dst``.
        UNDEFINED values (a MakerNote) are opaque and stay as they are.

        Example:
            >>> Entry(0x0112, 3, 1, b"\\x00\\x06").in_order(">", "<").raw
            b'\\x06\\x00'
        """
        children = [c.in_order(src, dst) for c in self.children] if self.children is not None else None
        raw = self.raw
        if src != dst and (self.type in _FORMATS or self.type in (5, 10)):
            code = _FORMATS.get(self.type) or ("I" if self.type == 5 else "i")
            n = len(raw) // struct.calcsize(code)
            raw = struct.pack(f"{dst}{n}{code}", *struct.unpack(f"{src}{n}{code}", raw))
        return Entry(self.tag, self.type, self.count, raw, children)

    def value(self, e: str) -> Any:
        """The value: str for ASCII, bytes for UNDEFINED, a number for one value, a tuple
        for several; rationals as floats (0 for a zero denominator).

        Example:
            >>> Entry(0x010F, 2, 6, b"Canon\\x00").value("<")
            'Canon'
        """
        if self.type == 2:
            return self.raw.split(b"\x00", 1)[0].decode("latin-1").strip()
        if self.type == 7 or self.type not in TYPE_SIZES:
            return self.raw
        n = min(self.count, _MAX_VALUES)
        if self.type in (5, 10):
            pairs = struct.unpack_from(f"{e}{2 * n}{'I' if self.type == 5 else 'i'}", self.raw)
            values: tuple = tuple(a / b if b else 0.0 for a, b in zip(pairs[::2], pairs[1::2]))
        else:
            values = struct.unpack_from(f"{e}{n}{_FORMATS[self.type]}", self.raw)
        return values[0] if len(values) == 1 else values


def byte_order(block: Any, start: int = 0) -> str:
    """"<" or ">" from a TIFF header at ``start``; IfdError when there is none.

    Example:
        >>> byte_order(b"MM\\x00*\\x00\\x00\\x00\\x08")
        '>'
    """
    mark = bytes(block[start : start + 4])
    if mark == b"II*\x00":
        return "<"
    if mark == b"MM\x00*":
        return ">"
    raise IfdError("no TIFF header (II*\\0 or MM\\0*)")


def read_header(block: Any) -> tuple[str, bool, int]:
    """(byte order, BigTIFF, first-IFD offset) of a TIFF file's header; IfdError saying
    what is wrong when there is none.

    Example:
        >>> read_header(b"II+\\x00\\x08\\x00\\x00\\x00\\x10\\x00\\x00\\x00\\x00\\x00\\x00\\x00")
        ('<', True, 16)
    """
    n = len(block)
    head = bytes(block[:4])
    if head in (b"II*\x00", b"MM\x00*"):
        order = "<" if head[0] == 0x49 else ">"
        if n < 8:
            raise IfdError(f"the TIFF data is truncated (it ends at byte {n}, inside its 8-byte header)")
        return order, False, struct.unpack_from(order + "I", block, 4)[0]
    if head in (b"II+\x00", b"MM\x00+"):
        order = "<" if head[0] == 0x49 else ">"
        if n < 16:
            raise IfdError(f"the BigTIFF data is truncated (it ends at byte {n}, inside its 16-byte header)")
        bytesize, zero, offset = struct.unpack_from(order + "HHQ", block, 4)
        if bytesize != 8 or zero != 0:
            raise IfdError(f"the BigTIFF header gives an offset size of {bytesize}, not 8")
        return order, True, offset
    raise IfdError("the TIFF byte-order mark or magic number is damaged")


class Slot(NamedTuple):
    """One directory entry where it lies: its tag, type, value count and the position of
    its value field (the value itself when it fits there, else its offset)."""

    tag: int
    type: int
    count: int
    field: int


def directory(
    block: Any, e: str, offset: int, base: int = 0, *, big: bool = False, what: str = "directory"
) -> tuple[list[Slot], int | None]:
    """The entries of the directory at ``base + offset`` (every copy of a tag, in file
    order) and the next directory's offset (None when the data ends before it).

    ``big``: a BigTIFF directory (8-byte count, 20-byte entries). The directory must lie
    after the header, within the data, and hold at most :data:`MAX_ENTRIES` entries;
    otherwise an IfdError names ``what`` and says why.

    Example:
        >>> slots, nxt = directory(write_ifds("<", [Entry(0x0112, 3, 1, b"\\x06\\x00")]), "<", 8)
        >>> slots, nxt
        ([Slot(tag=274, type=3, count=1, field=18)], 0)
    """
    count_fmt, entry_fmt, entry_size, header = ("Q", "HHQ", 20, 16) if big else ("H", "HHI", 12, 8)
    inline = 8 if big else 4
    end = len(block)
    pos = base + offset
    count_size = struct.calcsize(count_fmt)
    if offset < header or pos + count_size > end:
        raise IfdError(f"the {what} offset {offset} lies outside the {end}-byte data (truncated or corrupt)")
    count = struct.unpack_from(e + count_fmt, block, pos)[0]
    if count > MAX_ENTRIES:
        raise IfdError(f"the {what} claims {count} entries (corrupt)")
    first = pos + count_size
    stop = first + count * entry_size
    if stop > end:
        raise IfdError(f"the {what} is truncated: its {count} entries need bytes {first}-{stop} of the {end}-byte data")
    unpack = struct.Struct(e + entry_fmt).unpack_from
    slots = []
    for at in range(first, stop, entry_size):
        tag, kind, n = unpack(block, at)
        slots.append(Slot(tag, kind, n, at + 4 + inline))  # the value field follows the count
    nxt = struct.unpack_from(e + ("Q" if big else "I"), block, stop)[0] if stop + inline <= end else None
    return slots, nxt


def first_copies(slots: list[Slot], sizes: dict[int, int] = BIGTIFF_TYPE_SIZES) -> tuple[dict[int, Slot], list[int]]:
    """Each tag's first copy among ``slots`` of a type in ``sizes`` (others are skipped,
    as libtiff skips unknown types), and the tags seen again after it, in file order.

    Example:
        >>> first_copies([Slot(256, 3, 1, 10), Slot(256, 4, 1, 22), Slot(9, 99, 1, 34)])
        ({256: Slot(tag=256, type=3, count=1, field=10)}, [256])
    """
    first: dict[int, Slot] = {}
    again: list[int] = []
    for slot in slots:
        if slot.tag in first:
            again.append(slot.tag)
        elif slot.type in sizes:
            first[slot.tag] = slot
    return first, again


def value_span(block: Any, e: str, slot: Slot, base: int = 0, *, big: bool = False) -> tuple[int, int]:
    """(start, bytes) of ``slot``'s values in ``block`` (its type in
    :data:`BIGTIFF_TYPE_SIZES`): inline in its value field, or at the offset that field
    holds. Not checked against the data's end: the caller says what lies outside.

    Example:
        >>> value_span(b"", "<", Slot(274, 3, 1, 18))
        (18, 2)
    """
    nbytes = BIGTIFF_TYPE_SIZES[slot.type] * slot.count
    if nbytes <= (8 if big else 4):
        return slot.field, nbytes
    return base + struct.unpack_from(e + ("Q" if big else "I"), block, slot.field)[0], nbytes


def read_ifd(block: Any, e: str, offset: int, base: int = 0, *, follow: bool = True, _seen: set | None = None) -> tuple[list[Entry], int]:
    """The entries of the directory at ``base + offset`` and the next directory's offset.

    Offsets are relative to ``base`` (the TIFF header). Every copy of a tag is kept, in
    file order (entries of an unknown type are skipped). ``follow``: read the
    sub-directories of pointer tags into ``Entry.children`` (a loop is an IfdError).
    """
    seen = _seen if _seen is not None else set()
    if offset in seen:
        raise IfdError("a directory points back to itself")
    seen.add(offset)
    slots, nxt = directory(block, e, offset, base)
    if nxt is None:
        raise IfdError(f"the directory of {len(slots)} entries ends without the next directory's offset (truncated)")
    entries = []
    for slot in slots:
        if slot.type not in TYPE_SIZES:
            continue  # an unknown type: its size is unknown, so it cannot be kept
        at, nbytes = value_span(block, e, slot, base)
        if at + nbytes > len(block):
            raise IfdError(f"tag 0x{slot.tag:04X}'s value lies outside the data")
        entry = Entry(slot.tag, slot.type, slot.count, bytes(block[at : at + nbytes]))
        if follow and slot.tag in POINTER_TAGS and slot.type in (4, 13) and slot.count == 1:
            entry.children, _ = read_ifd(block, e, struct.unpack_from(e + "I", entry.raw)[0], base, _seen=seen)
        entries.append(entry)
    return entries, nxt


def write_ifds(e: str, first: list[Entry], *, base: int = 0, header: bool = True) -> bytes:
    """A block holding ``first`` as its one directory (no next directory), pointer tags'
    ``children`` as sub-directories, with a TIFF header unless ``header=False``.

    ``base``: the offset this block will sit at, relative to the TIFF header its offsets
    count from (a directory appended to an existing TIFF file: its length, with
    ``header=False``). Entries are written in ascending tag order, as TIFF requires.
    """
    out = bytearray()
    if header:
        out += (b"II*\x00" if e == "<" else b"MM\x00*") + struct.pack(e + "I", 8)
    _write_dir(out, e, first, base)
    return bytes(out)


def _write_dir(out: bytearray, e: str, entries: list[Entry], base: int) -> None:
    entries = sorted(entries, key=lambda en: en.tag)
    start = len(out)
    out += b"\x00" * (2 + 12 * len(entries) + 4)
    struct.pack_into(e + "H", out, start, len(entries))
    for i, entry in enumerate(entries):
        at = start + 2 + 12 * i
        if entry.children is not None:
            _pad(out)
            child = len(out)
            _write_dir(out, e, entry.children, base)
            struct.pack_into(e + "HHII", out, at, entry.tag, 4, 1, base + child)
            continue
        struct.pack_into(e + "HHI", out, at, entry.tag, entry.type, entry.count)
        if len(entry.raw) <= 4:
            out[at + 8 : at + 8 + len(entry.raw)] = entry.raw
        else:
            _pad(out)
            struct.pack_into(e + "I", out, at + 8, base + len(out))
            out += entry.raw
    # next-directory offset stays 0: one directory, no thumbnail IFD


def _pad(out: bytearray) -> None:
    if len(out) & 1:  # values start on a word boundary (TIFF 6.0)
        out += b"\x00"
