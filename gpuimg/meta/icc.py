"""ICC profiles as bytes: the header checks that tell a profile from junk, and its name.

Only what the codec layer needs: whether embedded bytes are a profile (size field, the
``acsp`` signature), its colour space and its description tag (v2 ``desc`` or v4
``mluc``). Building transforms is :mod:`gpuimg.ops.color.profiles`'s job.

Example:
    >>> problem(b"junk")
    'the ICC profile is 4 bytes, shorter than its 128-byte header'
"""

from __future__ import annotations

import struct

__all__ = ["problem", "description", "color_space"]

_HEADER = 128


def problem(data: bytes) -> str | None:
    """Why ``data`` is not an ICC profile, or None when its header and tag table hold.

    Example:
        >>> problem(b"\\x00" * 200) is not None
        True
    """
    if len(data) < _HEADER + 4:
        return f"the ICC profile is {len(data)} bytes, shorter than its 128-byte header"
    size = struct.unpack_from(">I", data, 0)[0]
    if data[36:40] != b"acsp":
        return "the ICC profile has no 'acsp' signature"
    if size != len(data):
        return f"the ICC profile's header says {size} bytes but {len(data)} are embedded"
    count = struct.unpack_from(">I", data, _HEADER)[0]
    if _HEADER + 4 + 12 * count > len(data):
        return f"the ICC profile's tag table ({count} tags) does not fit its {len(data)} bytes"
    for i in range(count):
        _, offset, length = struct.unpack_from(">4sII", data, _HEADER + 4 + 12 * i)
        if offset + length > len(data):
            return "an ICC profile tag lies outside the profile"
    return None


def color_space(data: bytes) -> str:
    """The profile's data colour space signature ("RGB", "CMYK", "GRAY", ...).

    Example:
        >>> color_space(b"\\x00" * 16 + b"RGB " + b"\\x00" * 108)
        'RGB'
    """
    return data[16:20].decode("latin-1").strip()


def description(data: bytes) -> str | None:
    """The profile's description tag ("sRGB IEC61966-2.1", "Display P3"), or None.

    Reads a v2 ``textDescriptionType`` (ASCII) or a v4 ``multiLocalizedUnicodeType``
    (the first record, UTF-16BE). Assumes :func:`problem` found none.
    """
    try:
        count = struct.unpack_from(">I", data, _HEADER)[0]
        for i in range(count):
            sig, offset, length = struct.unpack_from(">4sII", data, _HEADER + 4 + 12 * i)
            if sig != b"desc":
                continue
            tag = data[offset : offset + length]
            if tag[:4] == b"desc":
                n = struct.unpack_from(">I", tag, 8)[0]
                return tag[12 : 12 + n].split(b"\x00", 1)[0].decode("latin-1") or None
            if tag[:4] == b"mluc":
                records, _ = struct.unpack_from(">II", tag, 8)
                if records:
                    n, at = struct.unpack_from(">II", tag, 20)
                    return tag[at : at + n].decode("utf-16-be", "replace").rstrip("\x00") or None
            return None
    except (struct.error, UnicodeDecodeError):
        return None
    return None
