"""The colour engine: LittleCMS through Pillow's ``ImageCms`` (the optional extra
``gpuimg[color]``), the one place that opens ICC profiles and runs their transforms.

Example:
    >>> littlecms(srgb_profile(), "relative", "RGB", np.array([[[255, 0, 0]]], np.uint8)).tolist()
    [[[255, 0, 0]]]
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ....errors import ArgumentError, ColorEngineMissingError

__all__ = ["imagecms", "srgb_profile", "littlecms", "open_profile", "every_level", "ColorEngineMissingError"]


def imagecms() -> Any:
    try:
        from PIL import ImageCms
    except ImportError:
        raise ColorEngineMissingError(
            "colour conversion builds its transforms with LittleCMS through Pillow's ImageCms, which is not "
            "installed; install the extra: pip install 'gpuimg[color]'"
        ) from None
    return ImageCms


_srgb: list[bytes] = []


def srgb_profile() -> bytes:
    """The ICC profile of sRGB (LittleCMS's built-in, as Pillow writes it), for outputs.

    Example:
        >>> srgb_profile()[36:40]
        b'acsp'
    """
    if not _srgb:
        cms = imagecms()
        _srgb.append(cms.ImageCmsProfile(cms.createProfile("sRGB")).tobytes())
    return _srgb[0]


def littlecms(profile: bytes, intent: str, mode: str, pixels: np.ndarray) -> np.ndarray:
    """LittleCMS's transform (``profile`` -> sRGB, ``intent``) of ``pixels`` ((h, w, 3 or
    4) uint8 in ``mode`` "RGB" or "CMYK"), as one image: (h, w, 3) uint8."""
    from PIL import Image as PILImage

    cms = imagecms()
    src = open_profile(profile, "RGB" if mode == "RGB" else "CMYK")
    flag = cms.Intent.RELATIVE_COLORIMETRIC if intent == "relative" else cms.Intent.PERCEPTUAL
    try:
        transform = cms.buildTransform(src, cms.ImageCmsProfile(cms.createProfile("sRGB")), mode, "RGB", renderingIntent=flag)
    except cms.PyCMSError as exc:
        raise ArgumentError(f"profile= is a {mode} profile LittleCMS cannot build a transform to sRGB from ({exc})") from None
    # LittleCMS runs without the GIL: strips of rows on a few threads (a transform is
    # read-only once built).
    strips = np.array_split(pixels, max(1, min(8, os.cpu_count() or 1, len(pixels))))
    with ThreadPoolExecutor(len(strips)) as pool:
        done = pool.map(lambda part: np.asarray(cms.applyTransform(PILImage.fromarray(part, mode), transform), np.uint8), strips)
        return np.concatenate(list(done))


def open_profile(profile: bytes, space: str) -> Any:
    """``profile`` opened by LittleCMS; ArgumentError naming ``profile=`` for bytes it cannot
    read or a profile of another colour space than ``space`` ("RGB", "CMYK")."""
    cms = imagecms()
    try:
        opened = cms.ImageCmsProfile(io.BytesIO(profile))
    except (OSError, cms.PyCMSError) as exc:
        raise ArgumentError(f"profile= is not an ICC profile LittleCMS can read ({exc})") from None
    found = profile[16:20].decode("latin-1").strip()
    if found != space:
        raise ArgumentError(f"profile= is a {found} profile for {space} pixels; convert_colorspace takes RGB profiles for "
                            "RGB images and CMYK profiles for CMYK images")
    return opened


def every_level(profile: bytes, intent: str) -> np.ndarray:
    """(256, 256, 256, 3) uint8: LittleCMS's transform of every 8-bit colour, as ONE
    4096 x 4096 image (about half a second; the tables keep only what interpolation
    cannot give)."""
    levels = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    grid = np.stack([r, g, b], axis=-1).reshape(4096, 4096, 3)
    return littlecms(profile, intent, "RGB", grid).reshape(256, 256, 256, 3)
