"""Colour and pointwise ops: gray, mode conversion, adjustments, threshold, equalize, to_tensor.

Every op here is a :class:`~gpuimg.ops.color.fusion.PointwiseStep` run through the
fusion machinery in :mod:`gpuimg.ops.color.fusion`: one kernel launch per Image or ImageBatch, 16-byte
loads and stores, per-sample parameters (a scalar or one value per image). To fuse several,
build the steps from :data:`step` and :func:`chain` them::

    S = color.step
    fused = color.chain(S.brightness(1.2), S.contrast(0.9), S.gamma(0.8)).to_tensor(mean, std)
    tensor = fused(batch)          # 2 launches (contrast's mean + everything else)

Definitions (uint8 images): brightness, contrast, saturation, hue and gamma follow
``torchvision.transforms.v2.functional`` (float32 arithmetic, results truncated to uint8);
gray levels follow Pillow's ``convert("L")`` (BT.601, rounded fixed point; OpenCV's
``COLOR_RGB2GRAY`` agrees within one level); ``threshold`` and ``equalize_histogram``
follow OpenCV (``cv2.threshold`` with THRESH_BINARY / THRESH_OTSU, ``cv2.equalizeHist``;
RGB images are equalised per channel). Colour ops leave an alpha channel unchanged.

Example:
    >>> import numpy as np, gpuimg
    >>> from gpuimg.ops import color
    >>> img = gpuimg.Image.from_array(np.full((2, 2, 3), 200, np.uint8))
    >>> int(color.invert(img).numpy()[0, 0, 0])
    55

Modules: :mod:`.fusion` (PointwiseStep, Chain, chain, run_steps: one kernel per chain),
:mod:`.kernel_source` (its CUDA generation), :mod:`.steps` (the step classes),
:mod:`.builders` (:data:`step`), :mod:`.adjust` (the adjust ops), :mod:`.conversion`
(to_gray, convert, to_tensor), :mod:`.tensor` (TensorSpec, tensor_spec), :mod:`.icc`
(convert_colorspace: an ICC profile's transform to sRGB as a 3-D LUT, its own kernel;
:mod:`.profiles` is its former import path).
"""

from __future__ import annotations

from ._base import BINS, PointwiseStep, Step, gray_tv_numpy
from .adjust import (
    adjust_brightness,
    adjust_contrast,
    adjust_gamma,
    adjust_hue,
    adjust_saturation,
    equalize_histogram,
    invert,
    opacity,
    threshold,
)
from .builders import step
from .conversion import convert, to_gray, to_tensor
from .icc import convert_colorspace, srgb_profile
from .fusion import Chain, chain, run_steps
from .steps import COLOR_MODES, MODES, equalize_lut_numpy, otsu_numpy
from .tensor import TensorSpec, tensor_spec

__all__ = [
    "to_gray",
    "convert",
    "invert",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "adjust_gamma",
    "opacity",
    "threshold",
    "equalize_histogram",
    "to_tensor",
    "convert_colorspace",
    "srgb_profile",
    "chain",
    "Chain",
    "step",
    "COLOR_MODES",
    "MODES",
    "PointwiseStep",
]
