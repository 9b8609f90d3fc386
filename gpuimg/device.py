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

from .errors import ArgumentTypeError, DeviceUnavailableError, check_choice

__all__ = [
    "usable_cores",
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
# What a plain `pip install gpuimg` says: the CPU path works; the GPU path is one extra.
CUPY_MISSING = "CuPy is not installed: pip install 'gpuimg[cu12]' or 'gpuimg[cu13]' for the GPU path (see the README's Install)"
_DEVICES = ("cpu", "cuda")


@functools.lru_cache(maxsize=1)
def _cuda_probe() -> tuple[bool, str]:
    """(usable, reason): probed once, because a failing CUDA init is slow and never changes."""
    try:
        import cupy
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "cupy":  # a plain install: the GPU path is an extra
            if _driver_cuda_version() is None:  # the root cause first: CuPy alone would not help
                return False, f"{no_gpu_reason('', None, None)}, and {CUPY_MISSING}"
            return False, CUPY_MISSING
        return False, f"CuPy cannot be imported ({exc})"
    except Exception as exc:  # a broken CUDA install raising at import
        return False, f"CuPy cannot be imported ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        try:
            runtime = int(cupy.cuda.runtime.runtimeGetVersion())
        except Exception:  # noqa: BLE001 - only used to explain the failure
            runtime = None
        return False, no_gpu_reason(str(exc), _driver_cuda_version(), runtime)
    if count < 1:
        return False, "no CUDA device is present (the NVIDIA driver is loaded but lists no GPU)"
    return True, ""


def _driver_cuda_version() -> int | None:
    """The CUDA version the installed NVIDIA driver supports (e.g. 12040), 0 when the
    driver library loads but does not say, None when there is no driver library at all."""
    import ctypes
    import sys

    name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    version = ctypes.c_int(0)
    try:
        if lib.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return 0
    except AttributeError:
        return 0
    return int(version.value)


def _cuda_text(version: int) -> str:
    return f"{version // 1000}.{version % 1000 // 10}"


def no_gpu_reason(error: str, driver: int | None, runtime: int | None) -> str:
    """Why no GPU can be used, in words a user can act on, from the CUDA error text, the
    driver's CUDA version (None: no NVIDIA driver installed) and the runtime's.

    Example:
        >>> no_gpu_reason("cudaErrorInsufficientDriver: ...", None, 13000)
        'no NVIDIA driver is installed (the CUDA driver library cannot be loaded)'
        >>> no_gpu_reason("cudaErrorInsufficientDriver: ...", 12020, 13000)
        'the NVIDIA driver supports CUDA up to 12.2 but the CUDA packages installed need 13.0: update the driver, or install the CUDA 12 packages (see the README)'
    """
    if driver is None:
        return "no NVIDIA driver is installed (the CUDA driver library cannot be loaded)"
    if runtime and driver and driver < runtime:
        return (
            f"the NVIDIA driver supports CUDA up to {_cuda_text(driver)} but the CUDA packages installed need "
            f"{_cuda_text(runtime)}: update the driver, or install the CUDA {driver // 1000} packages (see the README)"
        )
    if "NoDevice" in error or "no CUDA-capable device" in error:
        return "no CUDA device is present (the NVIDIA driver is loaded but lists no GPU)"
    return f"the CUDA driver reports no usable device ({error})"


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
    chosen, by_env = _chosen_device()
    if not by_env:
        _say_device_once(chosen)
    return chosen


def _chosen_device() -> tuple[Device, bool]:
    """(the default device, whether GPUIMG_DEVICE chose it), without the log line."""
    env = os.environ.get("GPUIMG_DEVICE", "").strip().lower()
    if env:
        return resolve_device(env, _source="the environment variable GPUIMG_DEVICE"), True
    return ("cuda" if cuda_available() else "cpu"), False


@functools.lru_cache(maxsize=1)
def _say_device_once(chosen: str) -> None:
    """The one log line per process saying which device gpuimg chose by itself: INFO for
    the GPU, WARNING (shown by default) for the CPU fallback, with the reason."""
    import logging

    log = logging.getLogger("gpuimg")
    if chosen == "cuda":
        log.info("gpuimg runs on the GPU")
    else:
        log.warning("gpuimg runs on the CPU: no GPU can be used (%s); pass device='cpu' or set GPUIMG_DEVICE=cpu "
                    "to choose the CPU and silence this", _cuda_probe()[1])


def device_report() -> str:
    """The one line saying which device runs by default and, when it is the CPU, why not
    the GPU (what test skips, the command line and bug reports quote).

    Example:
        >>> device_report().split()[0] in ("cpu", "cuda")
        True
    """
    usable, reason = _cuda_probe()
    if _chosen_device()[0] == "cuda":  # a report, not a choice: no fallback warning logged
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
        raise ArgumentTypeError(f"{_source} must be a string such as 'cpu' or 'cuda', got {device!r}")
    name = device.strip().lower()
    if name in ("gpu", "cuda:0"):
        name = "cuda"
    check_choice(name, _source, _DEVICES, "a device")
    if name == "cuda":
        usable, reason = _cuda_probe()
        if not usable:
            fallback = "--device cpu" if _source.startswith("--") else "device='cpu' (or GPUIMG_DEVICE=cpu)"
            asked = f"{_source} {device}" if _source.startswith("--") else f"{_source}={device!r}"
            raise DeviceUnavailableError(f"{asked} asks for a GPU but none can be used: {reason}. Use {fallback} for the CPU path.")
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
    raise ArgumentTypeError(
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


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one):
    what the shards, the isolated CPU-codec children and the CPU encoder threads share.

    Example:
        >>> usable_cores() >= 1
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
