"""How one item decodes: its target shape and nvImageCodec's parameters, from its header.

:func:`make_plan` turns a source's :class:`~gpuimg.codec.sources.ImageInfo` and the call's
options (mode, depth, EXIF, region) into a :class:`Plan`; the :class:`~gpuimg.codec.Decoder`
caches plans per header layout and lays its targets and staging buffers out from them.

Example:
    >>> unchanged_layout(ImageInfo(64, 48, 1, "png", "uint8"))
    (1, 'uint8')
    >>> check_region((0, 0, 2, 3))
    (0, 0, 2, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import ArgumentError, DecodeError, ImageTooLargeError
from ..meta.exif import swaps_axes
from . import _nvimgcodec
from .sources import ImageInfo, ParsedSource

__all__ = ["Plan", "make_plan", "check_region", "unchanged_layout", "stored_hw", "decode_params", "MAX_PIXELS", "MODES", "DEPTHS"]

# Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS): familiar to users.
MAX_PIXELS = 1024 * 1024 * 1024 // 4 // 3
MODES = ("rgb", "bgr", "rgba", "gray", "unchanged")
DEPTHS = ("uint8", "any")


class Plan(NamedTuple):
    """How one item decodes: the target shape and nvImageCodec's parameters."""

    height: int
    width: int
    channels: int  # channels of the result
    dtype: np.dtype
    decode_channels: int  # channels nvImageCodec writes (3 when alpha is added afterwards)
    orientation: int  # the EXIF orientation gpuimg applies after decoding (1: none)
    premultiplied: bool  # associated alpha: decoded as RGBA, un-premultiplied, then converted
    staged: bool  # decoded into the staging batch, then copied/converted into the result


def check_region(region: Any) -> tuple[int, int, int, int] | None:
    if region is None:
        return None
    ok = isinstance(region, Sequence) and len(region) == 4 and all(isinstance(v, int | np.integer) for v in region)
    if not ok or not (0 <= region[0] < region[2] and 0 <= region[1] < region[3]):
        raise ArgumentError(
            f"region={region!r} must be (top, left, bottom, right) ints with 0 <= top < bottom and 0 <= left < right"
        )
    return tuple(int(v) for v in region)  # type: ignore[return-value]


def _has_alpha(info: ImageInfo) -> bool:
    # A 4-channel JPEG is CMYK, not colour + alpha (decoded to RGB here; its inks: gpuimg.codec.cmyk).
    return info.channels in (2, 4) and info.codec != "jpeg"


def unchanged_layout(info: ImageInfo) -> tuple[int, str]:
    """(channels, dtype) of what ``mode="unchanged", depth="any"`` decodes ``info``'s
    image to: gray stays 1 channel, colour with alpha 4, everything else (CMYK JPEGs
    included) 3; "uint16" where the file stores more than 8 bits.

    Example:
        >>> unchanged_layout(ImageInfo(64, 48, 2, "png", "uint16"))
        (4, 'uint16')
    """
    return (1 if info.channels == 1 else (4 if _has_alpha(info) else 3)), info.dtype


def make_plan(
    loaded: ParsedSource, info: ImageInfo, mode: str, depth: str, apply_exif: bool, region: Any, max_pixels: int
) -> Plan:
    """The item's decoded shape and parameters; raises ImageTooLargeError before any allocation."""
    if info.pixels > max_pixels:
        raise ImageTooLargeError(
            f"cannot decode {loaded.label}: its header claims {info.width}x{info.height} = {info.pixels:,} pixels, "
            f"over the limit of {max_pixels:,} (Decoder(max_pixels=...) raises it)"
        )
    h, w = _decoded_hw(info, apply_exif)
    if mode == "unchanged":
        channels = unchanged_layout(info)[0]
    else:
        channels = {"rgb": 3, "bgr": 3, "rgba": 4, "gray": 1}[mode]
    decode_channels = 3 if channels == 4 and not _has_alpha(info) else channels
    premultiplied = info.premultiplied and channels in (3, 4)
    if premultiplied:
        decode_channels = 4  # colour is only right after dividing by the alpha
    dtype = np.dtype(np.uint16 if depth == "any" and info.dtype == "uint16" else np.uint8)
    orientation = info.orientation if apply_exif else 1
    staged = region is not None or decode_channels != channels or orientation != 1 or premultiplied
    if region is not None:
        top, left, bottom, right = region
        if bottom > h or right > w:
            raise DecodeError(loaded.label, f"region={region} reaches outside the {w}x{h} image")
        out_hw = (bottom - top, right - left)
    else:
        out_hw = (h, w)
    return Plan(out_hw[0], out_hw[1], channels, dtype, decode_channels, orientation, premultiplied, staged)


def _decoded_hw(info: ImageInfo, apply_exif: bool) -> tuple[int, int]:
    """The whole decoded (height, width): the header's oriented size, or the stored size
    when the EXIF orientation is not applied."""
    if not apply_exif and swaps_axes(info.orientation):
        return info.width, info.height
    return info.height, info.width


def decode_params(nvimgcodec: Any, mode: str, channels: int, any_depth: bool) -> Any:
    fmt, spec = _nvimgcodec.format_of(nvimgcodec, channels, mode)
    # Always the stored orientation: gpuimg applies EXIF itself (see gpuimg.codec.exif).
    return nvimgcodec.DecodeParams(
        apply_exif_orientation=False, color_spec=spec, allow_any_depth=any_depth, sample_format=fmt
    )


def stored_hw(info: ImageInfo) -> tuple[int, int]:
    """The (height, width) as stored, before any EXIF orientation: what nvImageCodec writes."""
    return _decoded_hw(info, False)
