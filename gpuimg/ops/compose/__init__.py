"""Compositing and drawing on RGBA images (straight alpha): fill, gradient, blend, paste,
grid, collage, corner_radius, drop_shadow, stroke.

Every kernel reads the kernel table of its operands, so one launch serves a whole
ImageBatch (per-sample parameters where natural). Blending uses Pillow's integer
``alpha_composite`` arithmetic, so ``blend`` equals ``Image.alpha_composite`` bit for bit
wherever the layers overlap. Edges are antialiased from coverage: rounded corners from
the distance to the corner circle, strokes from a separable squared-distance transform of
the alpha mask (exact Euclidean distances up to the stroke width, O(width) work per pixel).

Example:
    >>> import numpy as np, gpuimg
    >>> from gpuimg.ops import compose
    >>> canvas = gpuimg.Image.empty(4, 6, 4, device="cpu")
    >>> compose.fill(canvas, (255, 0, 0, 255), out=canvas).numpy()[0, 0].tolist()
    [255, 0, 0, 255]
"""

from __future__ import annotations

from ._kernels import ALPHA_SHAPE
from .effects import bounded_distance, corner_coverage, corner_radius, drop_shadow, stroke
from .layers import blend, collage, grid, over_numpy, paste
from .paint import fill, gradient

__all__ = ["fill", "gradient", "blend", "paste", "grid", "collage", "corner_radius", "drop_shadow", "stroke"]
