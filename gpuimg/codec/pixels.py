"""Pixel fix-ups the decode path applies after a decoder has written: un-premultiplying
associated alpha (a TIFF with ExtraSamples = 1, :func:`gpuimg.codec.containers.tiff.associated_alpha`).

Decoders return such TIFFs premultiplied, Pillow returns them straight (it reads them
through its "RGBa" raw mode), and :func:`unpremultiply` gives Pillow's pixels from the
decoder's.

Example:
    >>> import numpy as np
    >>> unpremultiply(np.array([[[0, 0, 0, 0]]], np.uint8)).tolist()
    [[[0, 0, 0, 0]]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError

__all__ = ["unpremultiply"]


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
        raise ArgumentError(f"unpremultiply takes an (H, W, 4) array, got shape {tuple(arr.shape)}")
    if arr.dtype == np.uint8:
        peak = 255
    elif arr.dtype == np.uint16:
        peak = 65535
    else:
        raise ArgumentError(f"unpremultiply takes uint8 or uint16 pixels, got {arr.dtype}")
    if out is None:
        out = arr.copy()
    elif out is not arr:
        if tuple(out.shape) != tuple(arr.shape) or out.dtype != arr.dtype or _array_module(out) is not xp:
            raise ArgumentError(
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


def _array_module(arr: Any) -> Any:
    """NumPy, or CuPy for a CuPy array (CuPy imported only when it is installed and needed)."""
    if isinstance(arr, np.ndarray):
        return np
    try:
        import cupy
    except ImportError:
        return np
    return cupy.get_array_module(arr)
