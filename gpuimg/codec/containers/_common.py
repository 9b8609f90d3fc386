"""What every container module shares: how a size mismatch and a chunk type read (private)."""

from __future__ import annotations

from typing import NamedTuple


def size_mismatch(what: str, w: int, h: int, width: int, height: int) -> str | None:
    """The reason the container's size ``w`` x ``h`` differs from the header's, or None
    (also for ``width`` -1: the header was not read yet).

    Example:
        >>> size_mismatch("PNG IHDR chunk", 4, 3, 4, 2)
        'the PNG IHDR chunk says 4x3, the header was read as 4x2'
        >>> size_mismatch("PNG IHDR chunk", 4, 3, -1, -1) is None
        True
    """
    if (w, h) == (width, height) or width < 0:
        return None
    return f"the {what} says {w}x{h}, the header was read as {width}x{height}"


def chunk_name(kind: bytes) -> str:
    """A four-byte chunk or box type as messages show it: quoted text, or the bytes' repr.

    Example:
        >>> chunk_name(b"IDAT"), chunk_name(b"\\x00\\x01ab")
        ("'IDAT'", "b'\\\\x00\\\\x01ab'")
    """
    return repr(kind.decode("latin-1")) if kind.isalpha() else repr(kind)


class Header(NamedTuple):
    """What a container's own header walk says of the image Pillow will decode from it:
    the size, the channels gpuimg decodes it to (1 gray, 2 gray + alpha, 3 colour, 4
    colour + alpha) and the sample type."""

    width: int
    height: int
    channels: int
    dtype: str = "uint8"


class Malformed(ValueError):
    """A header walk's finding: the structure is cut short or wrong; the message is the
    reason, read after "cannot decode <source>: " (:func:`gpuimg.codec.containers.pillow_header`)."""
