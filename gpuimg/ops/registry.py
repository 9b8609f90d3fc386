"""The registry of public ops: what the pipeline, the command line and users may call by name.

An op family marks each public op with :func:`register_op`; nothing is guessed from
parameter names. ``gpuimg.ops`` imports every family, so once ``gpuimg.ops`` is imported
the registry is complete. This module imports no family (families import it).

Example:
    >>> import gpuimg.ops
    >>> from gpuimg.ops import registry
    >>> info = registry.get_op("gaussian_blur")
    >>> info.family, info.step, info.sets_metadata
    ('filters', True, False)
    >>> "fill" in registry.available_ops()
    True
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from ..errors import ArgumentError, ArgumentTypeError
from ._engine.args import as_source

__all__ = ["OpInfo", "register_op", "get_op", "op_of", "available_ops", "registered"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class OpInfo:
    """One registered op.

    ``name``: the name steps and the command line use. ``fn``: the function, called as
    ``fn(src, **params, out=..., stream=...)``. ``family``: color, geometry, filters or
    compose. ``step``: usable as a pipeline step (takes one image or batch first and
    returns the result). ``image_params``: parameters that take a second image (an overlay
    for ``blend``/``paste``); a pipeline step may give a file path there, which the
    pipeline decodes once.

    What a step of this op does beyond its pixels, for the pipeline: ``sets_metadata``,
    the op sets its results' ``metadata`` itself (``convert_colorspace``: the profile they
    are now in), so the pipeline does not carry the sources' over them.
    ``colour_intent``: ``kwargs -> intent or None``, the rendering intent with which a
    step of these arguments converts colours to sRGB (the pipeline then decodes CMYK
    JPEGs to their inks and converts them so); None for ops that never do.

    Example:
        >>> import gpuimg.ops
        >>> get_op("convert_colorspace").intent_of({"intent": "perceptual"}), get_op("resize").intent_of({})
        ('perceptual', None)
    """

    name: str
    fn: Callable[..., Any]
    family: str
    step: bool = True
    image_params: tuple[str, ...] = ()
    sets_metadata: bool = False
    colour_intent: Callable[[Mapping[str, Any]], str | None] | None = None

    def intent_of(self, kwargs: Mapping[str, Any]) -> str | None:
        """The rendering intent a step with ``kwargs`` converts colours with, or None."""
        return None if self.colour_intent is None else self.colour_intent(kwargs)


_ops: dict[str, OpInfo] = {}
_by_fn: dict[Callable[..., Any], OpInfo] = {}  # the op returned by register_op -> its info


@overload
def register_op(fn: F, /) -> F: ...
@overload
def register_op(*, name: str | None = None, step: bool = True, image_params: tuple[str, ...] = (),
                sets_metadata: bool = False,
                colour_intent: Callable[[Mapping[str, Any]], str | None] | None = None) -> Callable[[F], F]: ...


def register_op(fn: Any = None, /, *, name: str | None = None, step: bool = True,
                image_params: tuple[str, ...] = (), sets_metadata: bool = False,
                colour_intent: Callable[[Mapping[str, Any]], str | None] | None = None) -> Any:
    """Register ``fn`` as a public op (used bare, ``@register_op``, or with options: the
    :class:`OpInfo` fields of the same names).

    The op returned also takes arrays for its images (its first parameter and
    ``image_params``): the ONE place where NumPy/CuPy arrays and torch tensors in HWC (or
    HW) become Images, zero-copy (:func:`~gpuimg.ops._engine.args.as_source`). A second
    registration under the same name by another function is a bug and raises.

    Example:
        >>> import numpy as np
        >>> from gpuimg.ops import color
        >>> color.invert(np.zeros((2, 3, 3), np.uint8)).array[0, 0].tolist()
        [255, 255, 255]
    """

    def add(f: F) -> F:
        f = _taking_arrays(f, image_params)
        op_name = name or f.__name__
        family = f.__module__.split(".")[2] if f.__module__.startswith("gpuimg.ops.") else f.__module__
        info = OpInfo(op_name, f, family, step, tuple(image_params), sets_metadata, colour_intent)
        old = _ops.get(op_name)
        if old is not None and old.fn.__qualname__ != f.__qualname__:
            raise ArgumentError(f"op {op_name!r} is registered twice ({old.fn.__module__} and {f.__module__})")
        _ops[op_name] = _by_fn[f] = info
        return f

    return add(fn) if fn is not None else add


def _taking_arrays(f: F, image_params: tuple[str, ...]) -> F:
    """``f`` with array arguments for its image parameters wrapped as Images (zero-copy).
    An Image or ImageBatch passes through with one isinstance check (a GPU op's per-call
    budget is tens of microseconds)."""
    from ..image import Image, ImageBatch

    params = list(inspect.signature(f).parameters)
    if not params:
        return f
    first = params[0]
    # Not ``out``: an out is the caller's gpuimg buffer (an array there is refused).
    others = [(n, params.index(n)) for n in image_params if n in params and n != first]

    @functools.wraps(f)
    def op(*args: Any, **kwargs: Any) -> Any:
        if args:
            if not isinstance(args[0], Image | ImageBatch):
                args = (as_source(args[0], first), *args[1:])
        elif first in kwargs:
            kwargs[first] = as_source(kwargs[first], first)
        for n, i in others:
            if i < len(args):
                args = (*args[:i], as_source(args[i], n), *args[i + 1 :])
            elif n in kwargs:
                kwargs[n] = as_source(kwargs[n], n)
        return f(*args, **kwargs)

    return op  # type: ignore[return-value]


def get_op(name: str) -> OpInfo:
    """The op registered as ``name``; a ValueError listing the available ones otherwise."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"an op name must be a string, got {name!r}")
    info = _ops.get(name)
    if info is None:
        raise ArgumentError(f"unknown op {name!r}; available: {', '.join(available_ops(steps_only=False)) or '(none registered)'}")
    return info


def op_of(fn: Any) -> OpInfo | None:
    """The :class:`OpInfo` of ``fn`` when it is a registered op (as ``gpuimg.ops`` hands
    it out), else None: a pipeline step given as a callable learns what it does so.

    Example:
        >>> import gpuimg.ops
        >>> op_of(gpuimg.ops.color.convert_colorspace).sets_metadata, op_of(print)
        (True, None)
    """
    try:
        return _by_fn.get(fn)
    except TypeError:  # an unhashable callable is no registered op
        return None


def available_ops(steps_only: bool = True) -> list[str]:
    """Sorted names of the registered ops (only those usable as pipeline steps by default)."""
    return sorted(n for n, info in _ops.items() if info.step or not steps_only)


def registered() -> dict[str, OpInfo]:
    """A copy of the whole registry, name -> OpInfo."""
    return dict(_ops)
