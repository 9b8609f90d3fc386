"""Mode conversions: to_gray, convert (gray/rgb/bgr/rgba) and to_tensor (uint8 -> float tensor)."""

from __future__ import annotations

from typing import Any

from ..registry import register_op
from .._engine.args import Source, check_src, uniform_channels
from .builders import _convert_step
from .fusion import Chain, run_steps
from .tensor import tensor_spec

__all__ = ["to_gray", "convert", "to_tensor"]


def _channels_of(src: Source) -> int:
    check_src(src)
    return uniform_channels(src)


# ----------------------------------------------------------------------------- the ops


@register_op
def to_gray(src: Source, weights: str = "bt601", *, out: Source | None = None, stream: Any = None) -> Source:
    """Gray level (1 channel) of an RGB/RGBA image or batch; alpha is ignored. A gray
    image comes back as it is (copied into ``out``, or a copy), as Pillow's
    ``convert("L")`` and torchvision's ``rgb_to_grayscale`` leave one.

    ``weights``: "bt601" (Pillow's ``convert("L")`` bit for bit; OpenCV within one level) or
    "bt709".

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.array([[[255, 0, 0]]], np.uint8))
        >>> int(to_gray(img).numpy()[0, 0, 0])
        76
        >>> int(to_gray(to_gray(img)).numpy()[0, 0, 0])
        76
    """
    # gray -> gray is the convert step's copy: one code path for out=, batches and streams
    return run_steps(src, [_convert_step("gray", None, weights, _channels_of(src))], out, stream)


@register_op
def convert(src: Source, mode: str, *, src_mode: str | None = None, weights: str = "bt601", out: Source | None = None, stream: Any = None) -> Source:
    """Convert among "gray", "rgb", "bgr" and "rgba" (alpha added as 255 or dropped).

    ``src_mode`` defaults from the channel count (1: gray, 3: rgb, 4: rgba); say "bgr" for
    OpenCV-ordered pixels.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.array([[[1, 2, 3]]], np.uint8))
        >>> convert(img, "bgr").numpy()[0, 0].tolist(), convert(img, "rgba").shape
        ([3, 2, 1], (1, 1, 4))
    """
    return run_steps(src, [_convert_step(mode, src_mode, weights, _channels_of(src))], out, stream)


# ----------------------------------------------------------------------------- to_tensor

@register_op
def to_tensor(
    src: Source,
    mean: Any = None,
    std: Any = None,
    dtype: str = "float32",
    layout: str = "NCHW",
    *,
    out: Any = None,
    stream: Any = None,
) -> Any:
    """uint8 image or equal-size batch -> normalised float tensor ``(v / 255 - mean) / std``.

    One launch. Returns a CuPy array on the GPU (NumPy on the CPU): ``(C, H, W)`` for an
    Image, ``(N, C, H, W)`` for a batch (``layout="NHWC"``: channels last). Share it with
    PyTorch without a copy: ``torch.from_dlpack(t)``. ``out=`` reuses a tensor.

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.full((2, 2, 3), 255, np.uint8))
        >>> t = to_tensor(img, mean=0.5, std=0.5)
        >>> t.shape, float(t[0, 0, 0])
        ((3, 2, 2), 1.0)
    """
    return Chain(tensor=tensor_spec(mean, std, dtype, layout))(src, out=out, stream=stream)
