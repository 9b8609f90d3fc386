"""nvImageCodec glue shared by the sources, the decoder and the encoder (private).

The module is imported on first use only (its import prints loader noise and needs no
GPU until a codec object is made), and every cache of nvImageCodec objects is keyed by
:func:`gpuimg.device.device_key`, the device an object was made for.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from typing import Any

_module: list[Any] = []
_missing: list[str] = []  # the GPU codec libraries nvImageCodec's loader could not load
_warned: list[bool] = []

# What nvImageCodec's import prints on stderr for each GPU codec library that is not
# installed (every plain CPU install), with a pip hint for the next line.
_LOADER_NOISE = re.compile(rb"^(Failed to load (\w+) library!.*|Note: If using nvImageCodec's Python distribution.*)$")


_loading = threading.Lock()  # two first imports at once would each redirect fd 2


def load() -> Any:
    """The nvImageCodec module, imported on first use (its import prints loader noise)."""
    if _module:
        return _module[0]
    with _loading:
        if _module:
            return _module[0]
        # nvImageCodec logs every failed batch item; gpuimg reports each as an exception
        # naming the source instead, so its log is quiet unless the user asked for it
        # (PYNVIMGCODEC_VERBOSITY is read once, at import).
        asked = os.environ.get("PYNVIMGCODEC_VERBOSITY", "0") not in ("", "0")
        os.environ.setdefault("PYNVIMGCODEC_VERBOSITY", "0")
        try:
            nvimgcodec = _import_module() if asked else _import_quietly()
        except ModuleNotFoundError as exc:  # e.g. macOS, where no nvImageCodec wheel exists
            raise ModuleNotFoundError(
                "nvImageCodec is not installed, so gpuimg cannot decode or encode files here (ops on arrays still "
                "run): pip install nvidia-nvimgcodec-cu12 (Linux and Windows; there is no macOS wheel)", name=exc.name
            ) from None

        _module.append(nvimgcodec)
        return nvimgcodec


def missing_gpu_libraries() -> tuple[str, ...]:
    """The GPU codec libraries (``"nvjpeg"``, ``"nvjpeg2k"``, ``"nvtiff"``) that
    nvImageCodec's import could not load: a plain install, without a GPU extra."""
    load()
    return tuple(_missing)


def warn_missing_gpu_libraries() -> None:
    """Say once (gpuimg's logger) which GPU codecs this install lacks, when a codec is
    made for a GPU: the loader's own hints are held back, and without nvJPEG a "GPU"
    decode of JPEGs runs on the CPU codecs."""
    if load() and _missing and not _warned:
        _warned.append(True)
        logging.getLogger("gpuimg").warning(
            "nvImageCodec could not load %s, so on the GPU those formats go through the CPU codecs: pip install "
            "'gpuimg[cu12]' (or 'gpuimg[cu13]' on a CUDA 13 driver) for the GPU codecs", ", ".join(_missing))


def _import_module() -> Any:
    from nvidia import nvimgcodec

    return nvimgcodec


def _import_quietly() -> Any:
    """Import nvImageCodec with the loader's "Failed to load nvjpeg library!" lines held
    back: a CPU install has no GPU codecs by design, and five lines of install hints on
    every run (and from every child process) read as an error. The names it could not
    load are kept (:func:`missing_gpu_libraries`); whatever else reaches stderr during
    the import (another thread's output included) is passed on after it."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (an embedded interpreter)
        return _import_module()
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            return _import_module()
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            passed = []
            for line in held.read().splitlines(keepends=True):
                noise = _LOADER_NOISE.match(line.rstrip(b"\r\n"))
                if noise is None:
                    passed.append(line)
                elif noise.group(2):
                    _missing.append(noise.group(2).decode())
            if passed:
                os.write(2, b"".join(passed))


def format_of(nvimgcodec: Any, channels: int, mode: str = "rgb") -> tuple[Any, Any]:
    """nvImageCodec's (sample format, colour spec) for pixels of ``channels`` in ``mode``."""
    if channels == 1:
        return nvimgcodec.I_Y, nvimgcodec.GRAY
    if channels == 4:
        return nvimgcodec.I_RGBA, nvimgcodec.SRGB
    return (nvimgcodec.I_BGR if mode == "bgr" else nvimgcodec.I_RGB), nvimgcodec.SRGB
