"""nvImageCodec glue shared by the sources, the decoder and the encoder (private).

The module is imported on first use only (its import prints loader noise and needs no
GPU until a codec object is made), and every cache of nvImageCodec objects is keyed by
:func:`gpuimg.device.device_key`, the device an object was made for.
"""

from __future__ import annotations

import os
from typing import Any

_module: list[Any] = []


def load() -> Any:
    """The nvImageCodec module, imported on first use (its import prints loader noise)."""
    if not _module:
        # nvImageCodec logs every failed batch item; gpuimg reports each as an exception
        # naming the source instead, so its log is quiet unless the user asked for it
        # (PYNVIMGCODEC_VERBOSITY is read once, at import).
        os.environ.setdefault("PYNVIMGCODEC_VERBOSITY", "0")
        try:
            from nvidia import nvimgcodec
        except ModuleNotFoundError as exc:  # e.g. macOS, where no nvImageCodec wheel exists
            raise ModuleNotFoundError(
                "nvImageCodec is not installed, so gpuimg cannot decode or encode files here (ops on arrays still "
                "run): pip install nvidia-nvimgcodec-cu12 (Linux and Windows; there is no macOS wheel)", name=exc.name
            ) from None

        _module.append(nvimgcodec)
    return _module[0]


def format_of(nvimgcodec: Any, channels: int, mode: str = "rgb") -> tuple[Any, Any]:
    """nvImageCodec's (sample format, colour spec) for pixels of ``channels`` in ``mode``."""
    if channels == 1:
        return nvimgcodec.I_Y, nvimgcodec.GRAY
    if channels == 4:
        return nvimgcodec.I_RGBA, nvimgcodec.SRGB
    return (nvimgcodec.I_BGR if mode == "bgr" else nvimgcodec.I_RGB), nvimgcodec.SRGB
