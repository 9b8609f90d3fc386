"""The gpuimg exception family, and the checks that raise it.

Every error the library raises on purpose derives from :class:`GpuImgError`, so one
``except gpuimg.GpuImgError`` catches them all; each also derives from the built-in type
a Python user would expect (``ValueError`` for a bad value, ``TypeError`` for a wrong
type, ``RuntimeError`` for a missing device, ``ImportError`` for a missing extra), so
existing ``except ValueError`` code keeps working. Every public exception class lives
here; the modules that raise them import them from here.

A bad argument is an :class:`ArgumentError` (or :class:`ArgumentTypeError`) whose
message names the argument, the value given and what is allowed; :func:`check_choice`
and :func:`check_int` are the one spelling of the two commonest checks.

Example:
    >>> import gpuimg
    >>> try:
    ...     check_int(0, "batch_size", low=1)
    ... except gpuimg.GpuImgError as exc:
    ...     print(type(exc).__name__, exc.argument, exc.value, isinstance(exc, ValueError))
    ArgumentError batch_size 0 True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

__all__ = [
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
    "check_choice",
    "check_int",
]


class GpuImgError(Exception):
    """Base class of every error gpuimg raises on purpose."""


class _ArgumentMixin:
    """The argument's name, the value given and what is allowed, kept on the error for
    code that reports or handles it (each None where the raise did not say)."""

    argument: str | None
    value: Any
    expected: str | None

    def __init__(self, message: str, *, argument: str | None = None, value: Any = None, expected: str | None = None):
        super().__init__(message)  # type: ignore[call-arg]
        self.argument, self.value, self.expected = argument, value, expected

    def __reduce__(self) -> Any:
        # Errors cross process boundaries (shards, worker processes): pickle by the message
        # and keep the fields, which plain Exception pickling (args only) would drop. The
        # value goes only where it is plain data: an array given as one may be large or on
        # the GPU, and the message has its repr already.
        value = self.value if _plain(self.value) else None
        return _rebuild, (type(self), str(self), self.argument, value, self.expected)


def _plain(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return True
    if isinstance(value, tuple | list) and len(value) <= 64 and depth < 2:
        return all(_plain(v, depth + 1) for v in value)
    return False


def _rebuild(cls: type, message: str, argument: str | None, value: Any, expected: str | None) -> Any:
    return cls(message, argument=argument, value=value, expected=expected)


class ArgumentError(_ArgumentMixin, GpuImgError, ValueError):
    """An argument's value is not allowed: the message names the argument, the value and
    what is allowed (also in the fields ``argument``, ``value`` and ``expected``).

    Also a ``ValueError``, so ``except ValueError`` keeps catching it. Data given as an
    argument that does not fit the call (an image with channels an op cannot take) is one
    too: the argument is the image.

    Example:
        >>> err = ArgumentError("sigma must be > 0, got -1", argument="sigma", value=-1, expected="> 0")
        >>> isinstance(err, ValueError), err.argument, str(err)
        (True, 'sigma', 'sigma must be > 0, got -1')
    """


class ArgumentTypeError(_ArgumentMixin, GpuImgError, TypeError):
    """An argument is of a type the call does not take (a string where a number goes);
    the message names the argument, what was given and what is taken.

    Also a ``TypeError``. (Not :class:`argparse.ArgumentTypeError`, which is argparse's.)

    Example:
        >>> isinstance(ArgumentTypeError("sigma must be a number, got '2'"), TypeError)
        True
    """


class DeviceUnavailableError(GpuImgError, RuntimeError):
    """A CUDA device was asked for but none is usable (no GPU, no driver, driver too old)."""


class DecodeError(GpuImgError, ValueError):
    """An encoded image could not be decoded; the message names the source and the reason."""

    def __init__(self, source: object, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"cannot decode {source}: {reason}")

    def __reduce__(self) -> Any:
        # Pickled (from a worker or shard process) by its two fields: the default, by the
        # message alone, could not call __init__ again.
        return type(self), (self.source, self.reason)


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


class NameTemplateError(ArgumentError):
    """A ``name`` template (:class:`gpuimg.pipeline.files.NameTemplate`) that cannot name
    files: an unknown field, a path separator, a name that is empty, ``.`` or ``..``."""


class ColorEngineMissingError(GpuImgError, ImportError):
    """Pillow's ImageCms (LittleCMS) is needed to build a profile transform and is missing
    (``pip install 'gpuimg[color]'``)."""


class RayNotInstalledError(GpuImgError, ImportError):
    """Ray Data is not installed (``pip install "gpuimg[ray]"``)."""


def check_choice(value: T, name: str, choices: Iterable[Any], what: str = "") -> T:
    """``value`` if it is one of ``choices`` (the one spelling of every "use one of" check).

    ``what`` names the kind of value ("a border mode") for a clearer message.

    Raises:
        ArgumentError: ``value`` is not one of ``choices``; the message names ``name``,
            the value and the allowed ones.

    Example:
        >>> check_choice("edge", "border", ("edge", "reflect"))
        'edge'
        >>> check_choice("mirror", "border", ("edge", "reflect"), "a border mode")
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: border='mirror' is not a border mode; use one of ('edge', 'reflect')
    """
    allowed = tuple(choices)
    try:
        ok = value in allowed
    except TypeError:  # an unhashable or uncomparable value is not a choice either
        ok = False
    if not ok:
        kind = f"is not {what}" if what else "is not supported"
        raise ArgumentError(f"{name}={value!r} {kind}; use one of {allowed}", argument=name, value=value,
                            expected=f"one of {allowed}")
    return value


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None, *,
              optional: bool = False) -> Any:
    """``value`` if it is an int (not a bool; NumPy integers count) within [low, high], or
    None where ``optional`` (the one spelling of every "must be an int >= N" check).

    Raises:
        ArgumentError: ``value`` is not an int, or out of range; the message names
            ``name``, the value and the range ("batch_size must be an int >= 1, got 0").
            A ValueError even for a value of another type, as these checks always were.

    Example:
        >>> check_int(4, "readers", low=1), check_int(None, "shards", low=1, optional=True)
        (4, None)
        >>> check_int(True, "readers", low=1)
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: readers must be an int >= 1, got True
        >>> check_int(101, "quality", 1, 100)
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: quality must be an int in [1, 100], got 101
        >>> check_int(0, "shards", low=1, optional=True)
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: shards must be None or an int >= 1, got 0
    """
    if optional and value is None:
        return None
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if ok and ((low is not None and value < low) or (high is not None and value > high)):
        ok = False
    if not ok:
        if low is not None and high is not None:
            bounds = f" in [{low}, {high}]"
        else:
            bounds = f" >= {low}" if low is not None else (f" <= {high}" if high is not None else "")
        expected = f"{'None or ' if optional else ''}an int{bounds}"
        raise ArgumentError(f"{name} must be {expected}, got {value!r}", argument=name, value=value, expected=expected)
    return value

