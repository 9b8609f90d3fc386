"""Which array module runs the pixels (CuPy on a GPU, NumPy otherwise), and CUDA streams.

The choice, in order of precedence: an explicit ``device=`` argument, the environment
variable ``GPUIMG_DEVICE`` (``cpu`` or ``cuda``), then ``cuda`` when a usable CUDA device
is present, else ``cpu``. Asking for ``cuda`` where no GPU can be used raises
:class:`~gpuimg.errors.DeviceUnavailableError` with the reason.

Example:
    >>> import gpuimg
    >>> gpuimg.default_device() in ("cpu", "cuda")
    True
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from types import ModuleType
from typing import Any, ContextManager, Literal

import numpy as np

from .errors import DeviceUnavailableError, check_choice

__all__ = [
    "Device",
    "cuda_available",
    "default_device",
    "device_report",
    "resolve_device",
    "array_module",
    "device_of_array",
    "device_key",
    "get_stream",
    "stream_ptr",
    "use_stream",
]

Device = Literal["cpu", "cuda"]
_DEVICES = ("cpu", "cuda")


@functools.lru_cache(maxsize=1)
def _cuda_probe() -> tuple[bool, str]:
    """(usable, reason): probed once, because a failing CUDA init is slow and never changes."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        return False, f"CuPy cannot be imported ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"the CUDA driver reports no usable device ({exc})"
    if count < 1:
        return False, "no CUDA device is present"
    return True, ""


def cuda_available() -> bool:
    """True when CuPy is importable and at least one CUDA device can be used.

    Example:
        >>> cuda_available() in (True, False)
        True
    """
    return _cuda_probe()[0]


def default_device() -> Device:
    """The device used when none is given: ``GPUIMG_DEVICE`` if set, else cuda when usable.

    Example:
        >>> default_device() == ("cuda" if cuda_available() else "cpu") or "GPUIMG_DEVICE" in os.environ
        True
    """
    env = os.environ.get("GPUIMG_DEVICE", "").strip().lower()
    if env:
        return resolve_device(env, _source="the environment variable GPUIMG_DEVICE")
    return "cuda" if cuda_available() else "cpu"


def device_report() -> str:
    """The one line saying which device runs by default and, when it is the CPU, why not
    the GPU (what test skips, the command line and bug reports quote).

    Example:
        >>> device_report().split()[0] in ("cpu", "cuda")
        True
    """
    usable, reason = _cuda_probe()
    if default_device() == "cuda":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return f"cuda ({name})"
    if usable:
        return "cpu (GPUIMG_DEVICE=cpu; a GPU is usable)"
    return f"cpu (no GPU: {reason})"


def resolve_device(device: str | None = None, *, _source: str = "device") -> Device:
    """Validate ``device`` ("cpu", "cuda", "gpu", "cuda:0" or None for the default).

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    if device is None:
        return default_device()
    if not isinstance(device, str):
        raise TypeError(f"{_source} must be a string such as 'cpu' or 'cuda', got {device!r}")
    name = device.strip().lower()
    if name in ("gpu", "cuda:0"):
        name = "cuda"
    check_choice(name, _source, _DEVICES, "a device")
    if name == "cuda":
        usable, reason = _cuda_probe()
        if not usable:
            raise DeviceUnavailableError(
                f"{_source}={device!r} asks for a GPU but none can be used: {reason}. "
                "Use device='cpu' (or GPUIMG_DEVICE=cpu) for the NumPy fallback."
            )
    return name  # type: ignore[return-value]


def array_module(device: str) -> ModuleType:
    """``cupy`` for "cuda", ``numpy`` for "cpu".

    Example:
        >>> array_module("cpu").__name__
        'numpy'
    """
    if device == "cuda":
        import cupy

        return cupy
    return np


def device_of_array(array: Any) -> Device | None:
    """"cuda" for CuPy arrays, "cpu" for NumPy arrays, None for anything else.

    Example:
        >>> device_of_array(np.zeros(3)), device_of_array([1, 2])
        ('cpu', None)
    """
    if isinstance(array, np.ndarray):
        return "cpu"
    if type(array).__module__.startswith("cupy") and hasattr(array, "data") and hasattr(array, "device"):
        return "cuda"
    return None


def device_key(device: str) -> tuple[str, int]:
    """What a per-device cache is keyed by: ``("cpu", -1)``, or ``("cuda", id)`` with the id
    of CuPy's current CUDA device (memory and compiled kernels of one GPU are of no use on
    another).

    Example:
        >>> device_key("cpu")
        ('cpu', -1)
    """
    if device != "cuda":
        return ("cpu", -1)
    import cupy

    return ("cuda", int(cupy.cuda.runtime.getDevice()))


def get_stream(stream: Any = None) -> Any:
    """A CuPy stream object for ``stream``: None means CuPy's current stream.

    Accepts a ``cupy.cuda.Stream``, a raw ``cudaStream_t`` as int, or any object with a
    ``cuda_stream`` (PyTorch) or ``ptr`` attribute.

    Example (needs a GPU):
        >>> import cupy                                   # doctest: +SKIP
        >>> s = cupy.cuda.Stream()                        # doctest: +SKIP
        >>> get_stream(s) is s, get_stream(s.ptr).ptr == s.ptr  # doctest: +SKIP
        (True, True)
    """
    import cupy

    if stream is None:
        return cupy.cuda.get_current_stream()
    if isinstance(stream, cupy.cuda.Stream | cupy.cuda.ExternalStream):
        return stream
    ptr = stream if isinstance(stream, int) else None
    for attr in ("cuda_stream", "ptr"):
        if ptr is None and isinstance(getattr(stream, attr, None), int):
            ptr = getattr(stream, attr)
    if ptr is not None:
        with warnings.catch_warnings():  # CuPy 14 deprecates ExternalStream for protocol objects, not raw handles
            warnings.simplefilter("ignore", DeprecationWarning)
            return cupy.cuda.ExternalStream(ptr)
    raise TypeError(
        f"stream={stream!r} is not a CUDA stream; pass a cupy.cuda.Stream, a torch.cuda.Stream or an int handle"
    )


def stream_ptr(stream: Any = None) -> int:
    """The raw ``cudaStream_t`` of ``stream`` (None: the current CuPy stream) as an int.

    Example (needs a GPU):
        >>> stream_ptr() == int(__import__("cupy").cuda.get_current_stream().ptr)  # doctest: +SKIP
        True
    """
    return int(get_stream(stream).ptr)


def use_stream(device: str, stream: Any = None) -> ContextManager[Any]:
    """Context that makes ``stream`` current for CuPy work; a no-op on the CPU.

    Example:
        >>> with use_stream("cpu"):
        ...     pass
    """
    if device != "cuda":
        return contextlib.nullcontext()
    return get_stream(stream)
