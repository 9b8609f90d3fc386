"""Dense 2-D convolution (correlation, or the magnitude of two): its driver, the NumPy
twin, and sharpen, convolve, sobel. The kernel itself is conv2d of the family module
(filters._common)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import ArgumentError
from ..registry import register_op
from .._engine.args import Source, number, uniform_channels
from .._engine.batch import BLOCK, batch_view, grid_for, kernel_args, launch, pairs, prepare_out, readable_source
from .._engine.kernels import border_index, store_numpy
from .._engine.params import upload
from ._common import _check, _kernel


# ============================================================================ NumPy reference
def _conv2d_numpy(arr: np.ndarray, kernels: np.ndarray, border: str, cval: float) -> np.ndarray:
    """Correlation with each of ``kernels`` (nk, kh, kw); hypot of two results when nk == 2."""
    h, w = arr.shape[:2]
    nk, kh, kw = kernels.shape
    ys = border_index(np.arange(-(kh // 2), h + kh - 1 - kh // 2), h, border)
    xs = border_index(np.arange(-(kw // 2), w + kw - 1 - kw // 2), w, border)
    padded = arr[np.maximum(ys, 0)][:, np.maximum(xs, 0)].astype(np.float32)
    if border == "constant":
        padded[ys < 0] = cval
        padded[:, xs < 0] = cval
    acc = np.zeros((nk, *arr.shape), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            window = padded[ky : ky + h, kx : kx + w]
            for k in range(nk):
                acc[k] += np.float32(kernels[k, ky, kx]) * window
    return np.sqrt(acc[0] ** 2 + acc[1] ** 2) if nk == 2 else acc[0]



# ============================================================================ driver
def _conv(src: Source, kernels: np.ndarray, border: str, value: float, out: Source | None, stream: Any) -> Source:
    """Dense 2-D correlation (or the magnitude of two), one launch per batch."""
    code = _check(src, border)
    out = prepare_out(src, out)
    kernels = np.asarray(kernels, np.float32)
    if src.device == "cpu":
        for s, o, _ in pairs(src, out):
            o.array[...] = store_numpy(_conv2d_numpy(s.array, kernels, border, value), o.dtype)
        return out
    view = readable_source(src, out, stream)
    oview = batch_view(out, stream)
    w_dev = upload("filters:conv", kernels.reshape(-1), "cuda", stream)
    nk, kh, kw = kernels.shape
    launch(
        _kernel("conv2d", src.dtype), grid_for(view, BLOCK), BLOCK + (1,),
        kernel_args(np.uint64(view.base), view.table, np.uint64(oview.base), oview.table, w_dev, kh, kw, nk, code,
                    float(value), uniform_channels(src)),
        stream,
    )
    return out



# ============================================================================ public ops
def _sharpen_kernel(amount: float) -> np.ndarray:
    """centre + amount * (centre - mean of the 8 neighbours); amount 1 is Pillow's SHARPEN."""
    k = np.full((3, 3), -amount / 8.0)
    k[1, 1] = 1.0 + amount
    return k


@register_op
def sharpen(src: Source, amount: float = 1.0, border: str = "reflect", *, out: Source | None = None, stream: Any = None) -> Source:
    """3x3 sharpening: ``c + amount * (c - mean(8 neighbours))``.

    ``amount=1`` is Pillow's ``ImageFilter.SHARPEN`` kernel (32 centre, -2 around, / 16).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((6, 6, 1), 50, np.uint8), device="cpu")
        >>> int(sharpen(img, 2.0).array[3, 3, 0])
        50
    """
    return _conv(src, _sharpen_kernel(number(amount, "amount"))[None], border, 0.0, out, stream)


@register_op
def convolve(
    src: Source,
    kernel: Any,
    border: str = "reflect",
    value: float = 0.0,
    *, out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Correlate with a small 2-D ``kernel`` (anchor at its centre), like ``cv2.filter2D``.

    Each channel is filtered independently; results are rounded and saturated to the
    dtype. Kernels up to 31x31 (larger ones belong to an FFT, not a direct sum).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((6, 6, 1), 4, np.uint8), device="cpu")
        >>> int(convolve(img, np.ones((3, 3)) / 9).array[2, 2, 0])
        4
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or not (1 <= k.shape[0] <= 31 and 1 <= k.shape[1] <= 31) or not np.all(np.isfinite(k)):
        raise ArgumentError(f"kernel must be a finite 2-D array of 1..31 x 1..31 values, got shape {k.shape}")
    return _conv(src, k[None], border, value, out, stream)


_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)


@register_op
def sobel(src: Source, border: str = "reflect", *, out: Source | None = None, stream: Any = None) -> Source:
    """Edge magnitude ``sqrt(gx**2 + gy**2)`` of the 3x3 Sobel derivatives, per channel.

    gx and gy are ``cv2.Sobel(a, cv2.CV_32F, 1, 0)`` and ``(0, 1)`` (same border); the
    magnitude is rounded and saturated to the source dtype. One launch.

    Example:
        >>> import numpy as np, gpuimg
        >>> a = np.zeros((6, 6, 1), np.uint8); a[:, 3:] = 100
        >>> int(sobel(gpuimg.Image.from_array(a, device="cpu")).array[2, 3, 0])
        255
    """
    return _conv(src, np.stack([_SOBEL_X, _SOBEL_X.T]), border, 0.0, out, stream)
