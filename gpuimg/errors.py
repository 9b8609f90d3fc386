"""The gpuimg exception family.

Every error the library raises on purpose derives from :class:`GpuImgError`, so one
``except gpuimg.GpuImgError`` catches them all; each also derives from the built-in type
a Python user would expect (``ValueError`` for bad data, ``RuntimeError`` for a missing
device), so existing ``except ValueError`` code keeps working.
"""

from __future__ import annotations

__all__ = [
    "GpuImgError",
    "DeviceUnavailableError",
    "DecodeError",
    "EncodeError",
    "UnsupportedFormatError",
    "ImageTooLargeError",
    "OutOfMemoryError",
]


class GpuImgError(Exception):
    """Base class of every error gpuimg raises on purpose."""


class DeviceUnavailableError(GpuImgError, RuntimeError):
    """A CUDA device was asked for but none is usable (no GPU, no driver, driver too old)."""


class DecodeError(GpuImgError, ValueError):
    """An encoded image could not be decoded; the message names the source and the reason."""

    def __init__(self, source: object, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"cannot decode {source}: {reason}")


class EncodeError(GpuImgError, ValueError):
    """An image could not be encoded with the requested codec and options."""


class UnsupportedFormatError(GpuImgError, ValueError):
    """The file format or codec is not one gpuimg can read or write."""


class ImageTooLargeError(GpuImgError, ValueError):
    """An image's header claims more pixels than the configured limit (a decompression bomb guard)."""


class OutOfMemoryError(GpuImgError, MemoryError):
    """A buffer could not be allocated; the message says how many bytes, where, and for what.

    A ``MemoryError`` too, so code that catches out-of-memory generically (and the
    pipeline, which splits a batch on it) keeps working.
    """
