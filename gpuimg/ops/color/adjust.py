"""Pointwise adjustments: invert, brightness, contrast, saturation, hue, gamma, opacity,
threshold and histogram equalisation (each one fused step run by the engine)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..registry import register_op
from .._engine.args import Source
from .builders import step
from .fusion import run_steps

__all__ = [
    "invert",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "adjust_gamma",
    "opacity",
    "threshold",
    "equalize_histogram",
]


@register_op
def invert(src: Source, *, out: Source | None = None, stream: Any = None) -> Source:
    """``255 - v`` on the colour channels (alpha kept).

    Example:
        >>> import numpy as np, gpuimg
        >>> int(invert(gpuimg.Image.from_array(np.zeros((1, 1), np.uint8))).numpy()[0, 0, 0])
        255
    """
    return run_steps(src, [step.invert()], out, stream)


@register_op
def adjust_brightness(src: Source, factor: float | Sequence[float], *, out: Source | None = None, stream: Any = None) -> Source:
    """Multiply by ``factor`` (>= 0, one per image allowed), as torchvision's adjust_brightness.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((1, 1, 3), 100, np.uint8))
        >>> int(adjust_brightness(img, 1.5).numpy()[0, 0, 0])
        150
    """
    return run_steps(src, [step.brightness(factor)], out, stream)


@register_op
def adjust_contrast(src: Source, factor: float | Sequence[float], *, out: Source | None = None, stream: Any = None) -> Source:
    """Blend with the image's mean gray level, as torchvision's adjust_contrast (2 launches).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.array([[[0, 0, 0], [200, 200, 200]]], np.uint8))
        >>> adjust_contrast(img, 0.5).numpy()[0, :, 0].tolist()
        [49, 149]
    """
    return run_steps(src, [step.contrast(factor)], out, stream)


@register_op
def adjust_saturation(src: Source, factor: float | Sequence[float], *, out: Source | None = None, stream: Any = None) -> Source:
    """Blend with the gray image (0: gray, 1: unchanged), as torchvision's adjust_saturation.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.array([[[200, 100, 0]]], np.uint8))
        >>> adjust_saturation(img, 0.0).numpy()[0, 0].tolist()
        [118, 118, 118]
    """
    return run_steps(src, [step.saturation(factor)], out, stream)


@register_op
def adjust_hue(src: Source, factor: float | Sequence[float], *, out: Source | None = None, stream: Any = None) -> Source:
    """Rotate the hue by ``factor`` turns (in [-0.5, 0.5]), as torchvision's adjust_hue.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.array([[[255, 0, 0]]], np.uint8))
        >>> adjust_hue(img, 1 / 3).numpy()[0, 0].tolist()
        [0, 255, 0]
    """
    return run_steps(src, [step.hue(factor)], out, stream)


@register_op
def adjust_gamma(src: Source, gamma: float | Sequence[float], gain: float | Sequence[float] = 1.0, *, out: Source | None = None, stream: Any = None) -> Source:
    """``255.999 * clamp(gain * (v / 255) ** gamma)``, truncated, as torchvision's adjust_gamma.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((1, 1, 3), 64, np.uint8))
        >>> int(adjust_gamma(img, 0.5).numpy()[0, 0, 0])
        128
    """
    return run_steps(src, [step.gamma(gamma, gain)], out, stream)


@register_op
def opacity(src: Source, factor: float | Sequence[float], *, out: Source | None = None, stream: Any = None) -> Source:
    """Scale the alpha of an RGBA image by ``factor`` in [0, 1] (rounded).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((1, 1, 4), 255, np.uint8))
        >>> int(opacity(img, 0.5).numpy()[0, 0, 3])
        128
    """
    return run_steps(src, [step.opacity(factor)], out, stream)


@register_op
def threshold(src: Source, value: float | Sequence[float] | str, maxval: float = 255, *, out: Source | None = None, stream: Any = None) -> Source:
    """Binary threshold as ``cv2.threshold(THRESH_BINARY)``: ``v > value ? maxval : 0``.

    ``value="otsu"`` picks the level per image with OpenCV's Otsu method (gray images only;
    one extra histogram launch).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.array([[10, 200]], np.uint8))
        >>> threshold(img, 127).numpy()[0, :, 0].tolist()
        [0, 255]
    """
    return run_steps(src, [step.threshold(value, maxval)], out, stream)


@register_op
def equalize_histogram(src: Source, *, out: Source | None = None, stream: Any = None) -> Source:
    """Histogram equalisation as ``cv2.equalizeHist``; RGB(A) images per colour channel.

    Two launches per image or batch (histogram, then the lookup).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.array([[0, 0, 10, 20]], np.uint8))
        >>> equalize_histogram(img).numpy()[0, :, 0].tolist()
        [0, 0, 128, 255]
    """
    return run_steps(src, [step.equalize()], out, stream)
