"""Host pictures of images: thumbnails averaged down on the device, RGB for display.

Sits below :mod:`gpuimg.image` (it imports no gpuimg module), so that
:meth:`gpuimg.Image.thumbnail` needs nothing above image.py; :mod:`gpuimg.display` builds
the notebook pictures (PNG through gpuimg's own Encoder, HTML captions) on top.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["thumbnail", "as_rgb", "CHECKER"]

CHECKER = 8  # pixels per square of the checkerboard shown under transparent pixels


def thumbnail(pixels: Any, max_size: int) -> np.ndarray:
    """A uint8 host copy of the (H, W, C) NumPy or CuPy array ``pixels``, its longer side
    at most ``max_size``: averaged down by an integer factor where the array lives, so
    only the small picture crosses to the host. uint16 keeps its high byte; float32 maps
    [0, 1] to [0, 255].

    Example:
        >>> thumbnail(np.full((300, 200, 3), 7, np.uint8), 100).shape
        (100, 66, 3)
    """
    pixels = _as_uint8(pixels)
    height, width, channels = pixels.shape
    factor = max(1, -(-max(height, width) // max_size))
    if factor > 1:
        h, w = height // factor, width // factor
        if h and w:
            block = pixels[: h * factor, : w * factor].reshape(h, factor, w, factor, channels)
            pixels = block.mean(axis=(1, 3)).round().astype(np.uint8)
        else:  # a sliver thinner than the factor: take every factor-th pixel instead
            pixels = pixels[::factor, ::factor]
    return np.asarray(pixels) if isinstance(pixels, np.ndarray) else pixels.get()


def _as_uint8(pixels: Any) -> Any:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return (pixels >> 8).astype(np.uint8)
    return (pixels.clip(0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)  # the method: NumPy and CuPy alike


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 of a 1, 3 or 4 channel host picture: gray becomes RGB; RGBA is
    composited over a light checkerboard, as image viewers show transparency (over plain
    white, a white stroke or glow would be invisible).

    Example:
        >>> as_rgb(np.zeros((2, 2, 4), np.uint8))[0, 0].tolist()   # transparent: the backdrop
        [255, 255, 255]
    """
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if pixels.shape[2] == 4:
        h, w = pixels.shape[:2]
        squares = (np.arange(h)[:, None] // CHECKER + np.arange(w)[None, :] // CHECKER) % 2
        backdrop = np.where(squares, 204.0, 255.0)[:, :, None]
        alpha = pixels[:, :, 3:4].astype(np.float32) / 255.0
        return (pixels[:, :, :3] * alpha + backdrop * (1.0 - alpha) + 0.5).astype(np.uint8)
    return pixels
