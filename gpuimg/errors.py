"""The gpuimg exception family.

Every error the library raises on purpose derives from :class:`GpuImgError`, so one
``except gpuimg.GpuImgError`` catches them all; each also derives from the built-in type
a Python user would expect (``ValueError`` for bad data, ``RuntimeError`` for a missing
device), so existing ``except ValueError`` code keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "GpuImgError",
    "DeviceUnavailableError",
    "DecodeError",
    "EncodeError",
    "UnsupportedFormatError",
    "ImageTooLargeError",
    "OutOfMemoryError",
    "check_choice",
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


def check_choice(value: T, name: str, choices: Iterable[Any], what: str = "") -> T:
    """``value`` if it is one of ``choices``, else a ValueError naming the argument, the
    bad value and the allowed ones (the one spelling of every "use one of" check).

    ``what`` names the kind of value ("a border mode") for a clearer message.

    Example:
        >>> check_choice("edge", "border", ("edge", "reflect"))
        'edge'
        >>> check_choice("mirror", "border", ("edge", "reflect"), "a border mode")
        Traceback (most recent call last):
        ...
        ValueError: border='mirror' is not a border mode; use one of ('edge', 'reflect')
    """
    allowed = tuple(choices)
    try:
        ok = value in allowed
    except TypeError:  # an unhashable or uncomparable value is not a choice either
        ok = False
    if not ok:
        kind = f"is not {what}" if what else "is not supported"
        raise ValueError(f"{name}={value!r} {kind}; use one of {allowed}")
    return value
