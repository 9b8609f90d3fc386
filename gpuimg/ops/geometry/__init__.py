"""Geometry: resize (every usual filter, antialiasing), fit/cover, crop, flip, rotate, pad, warp.

Every op takes an Image or an ImageBatch and follows ``op(src, ..., out=None, stream=None)``;
sizes are ``(height, width)``; a batch takes one value for all images or one per image
(sizes, crop boxes, angles, matrices). On the GPU each call is ONE kernel launch for the
whole batch: resize-like ops share the fused two-axis resampler in ``resample.py``;
crop, flip, rotate90 and pad are one integer index-map kernel; rotate and warp_affine
one affine kernel. ``out=src`` works where the shape allows (the source is then read from
a workspace copy).

Example:
    >>> import numpy as np, gpuimg
    >>> from gpuimg.ops.geometry import resize, flip
    >>> img = gpuimg.Image.from_array(np.zeros((300, 400, 3), np.uint8), device="cpu")
    >>> resize(img, (150, 200)).shape
    (150, 200, 3)
    >>> flip(img, horizontal=True).shape
    (300, 400, 3)
"""

from ._plan import METHODS
from .crop_flip_pad import PAD_MODES, center_crop, crop, flip, pad, rotate90
from .resize import FIT_MODES, fit, resize, resize_shorter
from .thumbnail import fit_thumbnail, thumbnail_size
from .warp import WARP_METHODS, rotate, warp_affine


__all__ = [
    "resize",
    "resize_shorter",
    "fit",
    "crop",
    "center_crop",
    "flip",
    "rotate90",
    "rotate",
    "pad",
    "warp_affine",
    "fit_thumbnail",
    "thumbnail_size",
    "METHODS",
]
