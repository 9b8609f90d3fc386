"""XMP packets: the ``tiff:Orientation`` they may carry, read as Pillow reads it
(:func:`orientation`), and rewritten upright for an output (:func:`upright`).

An XMP packet is XML, but only this one property is read, and with one linear regex
search rather than an XML parser: no entity expansion, no recursion, a cost of one pass
over a packet whose size the container reader has already bounded.

Example:
    >>> orientation(b'<rdf:Description tiff:Orientation="6"/>')
    6
    >>> upright('<tiff:Orientation>6</tiff:Orientation>')
    '<tiff:Orientation>1</tiff:Orientation>'
"""

from __future__ import annotations

import re

__all__ = ["orientation", "upright", "text"]

# Pillow 13's Image.getexif: r'tiff:Orientation(="|>)([0-9])', the first match, one digit.
# The same pattern here, so that a packet rotates in gpuimg exactly where it rotates in
# Pillow's exif_transpose (a value of 0 or 9 is found, and then means no turn).
_READ = re.compile(rb'tiff:Orientation(="|>)([0-9])')

# What an output rewrites: every form the reader above finds, and the spaced and
# single-quoted attribute forms other readers (exiftool) accept, whatever digits follow.
_WRITE = re.compile(r'(tiff:Orientation\s*=\s*["\']\s*|<tiff:Orientation>\s*)[0-9]+')


def orientation(packet: bytes | str | None) -> int | None:
    """The ``tiff:Orientation`` of the XMP ``packet`` (0-9, as stored: the caller decides
    what a value outside 1-8 means), or None when it has none. Both the attribute form
    (``tiff:Orientation="6"``) and the element form (``<tiff:Orientation>6</...>``) are
    read; the first occurrence counts, and only its first digit (Pillow's reading).

    Example:
        >>> orientation('<tiff:Orientation>8</tiff:Orientation>'), orientation("<x/>"), orientation(None)
        (8, None, None)
        >>> orientation(b'tiff:Orientation="x"') is None
        True
    """
    if not packet:
        return None
    data = packet.encode("utf-8", "replace") if isinstance(packet, str) else bytes(packet)
    match = _READ.search(data)
    return match[2][0] - 0x30 if match else None


def upright(packet: str) -> str:
    """``packet`` with every ``tiff:Orientation`` set to 1: what an output whose pixels
    were turned upright carries (its EXIF says Orientation 1 too, so no reader turns the
    pixels a second time). Pillow's ``exif_transpose`` deletes the text instead; a value
    of 1 is kept here so the packet says the same as the output's EXIF.

    Example:
        >>> upright('<d tiff:Orientation="60"/>')
        '<d tiff:Orientation="1"/>'
    """
    return _WRITE.sub(r"\g<1>1", packet)


def text(raw: bytes | None) -> str | None:
    """The XMP packet ``raw`` (bytes as a container holds them) as text: UTF-8, the NULs
    some writers pad it with removed; None for None and for bytes that are not UTF-8 (a
    packet gpuimg leaves out, and whose orientation it therefore does not read).

    Example:
        >>> text(b"<x/>\\x00\\x00"), text(b"\\xff<x/>")
        ('<x/>', None)
    """
    if raw is None:
        return None
    try:
        return bytes(raw).decode("utf-8").rstrip("\x00")
    except UnicodeDecodeError:
        return None
