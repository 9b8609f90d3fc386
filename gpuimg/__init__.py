"""gpuimg: decode, process and encode images on the GPU, with the pixels staying there.

Example:
    >>> import gpuimg
    >>> img = gpuimg.Image.empty(480, 640, device="cpu")
    >>> img.shape
    (480, 640, 3)
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .device import cuda_available, default_device, resolve_device
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    ColorEngineMissingError,
    DecodeError,
    DeviceUnavailableError,
    EncodeError,
    GpuImgError,
    ImageTooLargeError,
    NameTemplateError,
    OutOfMemoryError,
    RayNotInstalledError,
    UnsupportedFormatError,
)
from .image import Image, ImageBatch
from .memory import memory_stats, recent_allocations, reset_memory_stats

__version__ = "0.1.0"

# Names exported from modules that load on first use: importing gpuimg stays fast (no
# nvImageCodec or kernel compilation until needed), and the layers stay independent.
_LAZY: dict[str, str] = {
    # the codec package (gpuimg.codec)
    "Decoder": "codec",
    "Encoder": "codec",
    "read": "codec",
    "write": "codec",
    "read_batch": "codec",
    "info": "codec",
    "ImageInfo": "codec",
    "parse": "codec",
    "ParsedSource": "codec",
    "BatchResult": "codec",
    "BatchError": "codec",
    # the pipeline (gpuimg.pipeline)
    "Pipeline": "pipeline",
    "PipelineConfig": "pipeline",
    "RunOptions": "pipeline",
    # gpuimg.display
    "show": "display",
    # gpuimg.thumbnails (a file to a thumbnail: decode, fit, sRGB, metadata)
    "thumbnail": "thumbnails",
    # op families as subpackages
    "ops": "ops",
    # gpuimg.ops.geometry
    **{name: "ops.geometry" for name in (
        "resize", "resize_shorter", "fit", "crop", "center_crop", "flip", "rotate90", "rotate", "pad", "warp_affine",
    )},
    # gpuimg.ops.filters
    **{name: "ops.filters" for name in (
        "gaussian_blur", "box_blur", "median_blur", "unsharp_mask", "sharpen", "convolve", "sobel",
    )},
    # gpuimg.ops.color (fusion: gpuimg.ops.color.chain / .step)
    **{name: "ops.color" for name in (
        "to_gray", "convert", "invert", "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue",
        "adjust_gamma", "opacity", "threshold", "equalize_histogram", "to_tensor", "convert_colorspace", "srgb_profile",
    )},
    # gpuimg.ops.compose
    **{name: "ops.compose" for name in (
        "fill", "gradient", "blend", "paste", "grid", "collage", "corner_radius", "drop_shadow", "stroke",
    )},
}

__all__ = [
    "Image",
    "ImageBatch",
    "memory_stats",
    "recent_allocations",
    "reset_memory_stats",
    "cuda_available",
    "default_device",
    "resolve_device",
    "GpuImgError",
    "ArgumentError",
    "ArgumentTypeError",
    "DeviceUnavailableError",
    "DecodeError",
    "EncodeError",
    "UnsupportedFormatError",
    "ImageTooLargeError",
    "OutOfMemoryError",
    "NameTemplateError",
    "ColorEngineMissingError",
    "RayNotInstalledError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'gpuimg' has no attribute {name!r}")
    module = importlib.import_module(f".{module_name}", __name__)
    value = module if name == module_name else getattr(module, name)
    globals()[name] = value
    return value


def _show_in_notebooks() -> None:
    """Inside IPython/Jupyter, an Image shows as its thumbnail and an ImageBatch as a
    captioned grid (:func:`gpuimg.display.register`); elsewhere nothing is imported."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    if shell is not None and hasattr(shell, "display_formatter"):
        importlib.import_module(".display", __name__).register(shell)


_show_in_notebooks()


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
