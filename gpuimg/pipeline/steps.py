"""Pipeline steps: op names resolved through the ops registry, their arguments checked,
second images (``blend``/``paste`` overlays) decoded once; steps read from JSON files.

Example:
    >>> from gpuimg.pipeline.steps import Step
    >>> Step(("gaussian_blur", {"sigma": 1.0}), "cpu").describe()
    ['gaussian_blur', {'sigma': 1.0}]
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gpuimg.ops  # noqa: F401 - importing the ops fills the registry

from ..codec import read
from ..image import Image, ImageBatch
from ..ops import registry

__all__ = ["Step", "StepSpec", "available_ops", "load_steps"]

StepSpec = Callable[..., Any] | tuple[str, dict[str, Any]] | Sequence[Any]


def available_ops() -> list[str]:
    """Names usable as pipeline steps: the registered ops of :mod:`gpuimg.ops`.

    Example:
        >>> {"gaussian_blur", "fill", "blend"} <= set(available_ops())
        True
    """
    return registry.available_ops()


def _step_op(name: Any) -> registry.OpInfo:
    """The registered op ``name`` that may be a step; ValueError listing the steps."""
    if not isinstance(name, str):
        raise TypeError(f"a step name must be a string, got {name!r}")
    if name not in available_ops():
        raise ValueError(f"unknown step {name!r}; available steps: {', '.join(available_ops()) or '(no ops registered)'}")
    return registry.get_op(name)


class Step:
    """One resolved step: the op, its keyword arguments, and its reused output buffer.

    ``spec``: a callable taking and returning an ImageBatch, or ``(name, kwargs)`` naming
    a registered op. A str or path given for one of the op's ``image_params`` (the overlay
    of ``blend``/``paste``) is decoded once here, on ``device``, and passed on each call.

    Example:
        >>> step = Step(("blend", {"src": "assets/coffee_rgba.png", "top": 5}), "cpu")
        >>> step.describe(), step.kwargs["src"].shape
        (['blend', {'src': 'assets/coffee_rgba.png', 'top': 5}], (400, 600, 4))
    """

    def __init__(self, spec: StepSpec, device: str):
        image_params: tuple[str, ...] = ()
        if callable(spec):
            self.name, self.fn, given = getattr(spec, "__name__", repr(spec)), spec, {}
        elif isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) in (1, 2):
            given = dict(spec[1]) if len(spec) == 2 and spec[1] is not None else {}
            op = _step_op(spec[0])
            self.name, self.fn, image_params = op.name, op.fn, op.image_params
        else:
            raise TypeError(f"a step must be a callable or a (name, kwargs) pair, got {spec!r}")
        self.given = given  # as written (what a pipeline JSON file holds)
        self.kwargs = dict(given)
        params = _parameters(self.fn)
        self.takes_out = params is None or "out" in params
        self.takes_stream = params is None or "stream" in params
        self._check_kwargs()
        self._overlays: dict[str, Image] = {}
        for param in image_params:
            value = self.kwargs.get(param)
            if isinstance(value, str | os.PathLike):
                self._overlays[param] = self.kwargs[param] = _decode_overlay(self.name, param, value, device)
        self._repeated: dict[tuple[str, int], ImageBatch] = {}

    def _check_kwargs(self) -> None:
        try:
            inspect.signature(self.fn).bind(None, **self.kwargs)
        except TypeError as exc:
            raise ValueError(f"step {self.name!r} cannot take {self.kwargs}: {exc}") from None
        except ValueError:  # builtins without a signature: nothing to check
            pass

    def __call__(self, src: Any, out: Any, stream: Any) -> Any:
        extra: dict[str, Any] = {}
        if self.takes_out and out is not None:
            extra["out"] = out
        if self.takes_stream and stream is not None:
            extra["stream"] = stream
        kwargs = self.kwargs
        if self._overlays and isinstance(src, ImageBatch):
            kwargs = {**kwargs, **{p: self._overlay_batch(p, len(src)) for p in self._overlays}}
        return self.fn(src, **kwargs, **extra)

    def _overlay_batch(self, param: str, count: int) -> ImageBatch:
        """The overlay once per image of a batch (layer i over image i: one launch),
        made once per batch length."""
        key = (param, count)
        if key not in self._repeated:
            self._repeated[key] = ImageBatch.from_images([self._overlays[param]] * count)
        return self._repeated[key]

    def describe(self) -> list[Any]:
        """``[name, kwargs]`` as given (overlay paths stay paths)."""
        return [self.name, self.given]


def _decode_overlay(step: str, param: str, path: str | os.PathLike, device: str) -> Image:
    """The image file given for an image parameter, decoded once (RGBA: blend and paste
    take an RGBA layer over RGB or RGBA images)."""
    try:
        image = read(path, device=device, mode="rgba")
    except (OSError, ValueError) as exc:
        raise ValueError(f"step {step!r}: {param}={str(path)!r} cannot be read as an image: {exc}") from None
    if image.device == "cuda":  # decoded on this thread's stream; the lanes use their own
        import cupy

        cupy.cuda.Device().synchronize()
    return image


def _parameters(fn: Callable[..., Any]) -> set[str] | None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return set(params)


def load_steps(path: str | os.PathLike) -> list[tuple[str, dict[str, Any]]]:
    """Steps from a JSON file: ``[["resize_shorter", {"size": 512}], ["sharpen", {}]]`` or
    ``{"steps": [...]}``; each step may also be ``{"op": name, ...kwargs}``.

    Example:
        >>> import json, tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "p.json"
        >>> _ = f.write_text(json.dumps({"steps": [{"op": "flip", "horizontal": True}]}))
        >>> load_steps(f)
        [('flip', {'horizontal': True})]
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"pipeline file {str(path)!r} cannot be read as JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("steps")
    if not isinstance(data, list):
        raise ValueError(f"pipeline file {str(path)!r} must hold a list of steps or {{\"steps\": [...]}}")
    steps = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and isinstance(item.get("op"), str):
            kwargs = {k: v for k, v in item.items() if k != "op"}
            steps.append((item["op"], kwargs))
        elif isinstance(item, list) and len(item) in (1, 2) and isinstance(item[0], str):
            kwargs = item[1] if len(item) == 2 else {}
            if not isinstance(kwargs, dict):
                raise ValueError(f"step {i} of {str(path)!r}: the parameters must be an object, got {kwargs!r}")
            steps.append((item[0], dict(kwargs)))
        else:
            raise ValueError(f"step {i} of {str(path)!r} must be [name, {{params}}] or {{\"op\": name, ...}}, got {item!r}")
    return steps
