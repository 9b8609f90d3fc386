"""Neighbourhood filters: gaussian/box/median blur, unsharp mask, sharpen, convolution, Sobel.

Every op takes an Image or an ImageBatch (any mix of sizes, 1/3/4 channels; uint8, uint16
or float32) and follows ``op(src, ..., out=None, stream=None)``. On the GPU a whole batch
is one kernel launch per pass, indexing the batch's table; the NumPy code beside each
kernel is the CPU fallback and the oracle the kernels are tested against.

Borders (``border=``) and the OpenCV border each one matches (see ``_engine.args.BORDERS``):
"reflect" = cv2.BORDER_REFLECT_101 (the default, as in OpenCV), "symmetric" =
cv2.BORDER_REFLECT, "edge" = cv2.BORDER_REPLICATE, "wrap" = cv2.BORDER_WRAP, "constant"
= cv2.BORDER_CONSTANT with ``value``.

Example:
    >>> import numpy as np, gpuimg
    >>> from gpuimg.ops.filters import gaussian_blur
    >>> img = gpuimg.Image.from_array(np.zeros((32, 48, 3), np.uint8), device="cpu")
    >>> gaussian_blur(img, 2.0).shape
    (32, 48, 3)
"""

from __future__ import annotations

from .convolution import convolve, sharpen, sobel
from .median import MAX_MEDIAN_SIZE, median_blur, median_network
from .separable import MAX_TILE_RADIUS, box_blur, default_radius, gaussian_blur, gaussian_kernel, unsharp_mask

__all__ = [
    "gaussian_blur",
    "gaussian_kernel",
    "box_blur",
    "unsharp_mask",
    "sharpen",
    "convolve",
    "sobel",
    "median_blur",
]
