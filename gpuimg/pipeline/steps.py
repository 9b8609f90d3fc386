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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import gpuimg.ops  # noqa: F401 - importing the ops fills the registry

from ..codec import formats, read
from ..device import use_stream
from ..errors import ArgumentError, ArgumentTypeError, check_choice
from ..image import Image, ImageBatch
from ..ops import cache, registry

__all__ = ["Step", "retype", "StepSpec", "available_ops", "load_steps", "run_steps_per_item", "check_steps", "fixed_output_size", "OutputRule", "OUTPUT_MODES", "MODES"]

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
        raise ArgumentTypeError(f"a step name must be a string, got {name!r}")
    if name not in available_ops():
        raise ArgumentError(f"unknown step {name!r}; available steps: {', '.join(available_ops()) or '(no ops registered)'}")
    return registry.get_op(name)


def retype(buffer: Image | ImageBatch, dtype: Any) -> Image | ImageBatch:
    """The pipeline's own ``buffer`` set to ``dtype``, its shapes kept (metadata only while it
    fits, else one counted growth): explicit, because ops never retype an ``out``.

    Example:
        >>> retype(Image.empty(2, 2, device="cpu"), "float32").dtype.name
        'float32'
    """
    if buffer.dtype == np.dtype(dtype):
        return buffer
    if isinstance(buffer, ImageBatch):
        return buffer.set_shapes(buffer.shapes, dtype=dtype)
    return buffer.set_shape(*buffer.shape, dtype=dtype)


# An overlay repeated per batch length (layer i over image i: one launch); a run has one
# full length and a last, shorter batch, so a few entries serve a few overlay steps.
_OVERLAY_REPEATS = cache("pipeline:overlay-repeats", max_items=8)


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
            op = registry.op_of(spec)
        elif isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) in (1, 2):
            given = dict(spec[1]) if len(spec) == 2 and spec[1] is not None else {}
            op = _step_op(spec[0])
            self.name, self.fn, image_params = op.name, op.fn, op.image_params
        else:
            raise ArgumentTypeError(f"a step must be a callable or a (name, kwargs) pair, got {spec!r}")
        self.op: registry.OpInfo | None = op  # what the op does to metadata and colour (None: a plain callable)
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
        self._makes: dict[np.dtype, np.dtype] = {}  # input dtype -> the dtype the step made of it

    def _check_kwargs(self) -> None:
        try:
            inspect.signature(self.fn).bind(None, **self.kwargs)
        except TypeError as exc:
            raise ArgumentError(f"step {self.name!r} cannot take {self.kwargs}: {exc}") from None
        except ValueError:  # builtins without a signature: nothing to check
            pass

    def __call__(self, src: Any, out: Any, stream: Any) -> Any:
        """The step on ``src``; ``out`` is the pipeline's own buffer from an earlier call
        (or None), retyped here for what the step makes of ``src`` (ops refuse an ``out``
        of another dtype rather than retype it)."""
        extra: dict[str, Any] = {}
        if self.takes_out and out is not None:
            out = self._reusable(src, out)
            if out is not None:
                extra["out"] = out
        if self.takes_stream and stream is not None:
            extra["stream"] = stream
        kwargs = self.kwargs
        if self._overlays and isinstance(src, ImageBatch):
            kwargs = {**kwargs, **{p: self._overlay_batch(p, len(src)) for p in self._overlays}}
        result = self.fn(src, **kwargs, **extra)
        if isinstance(src, Image | ImageBatch) and isinstance(result, Image | ImageBatch):
            self._makes[src.dtype] = result.dtype
            if self.op is None or not self.op.sets_metadata:
                carry_metadata(src, result)
        return result

    def _reusable(self, src: Any, out: Any) -> Any:
        """``out`` typed for this step's result on ``src`` (the step made that dtype from
        ``src``'s dtype before: one op with the same arguments always does), or None when
        that is not known yet or ``out`` cannot take it (the op then makes a new result,
        which becomes the buffer). Anything but an Image/ImageBatch is passed as it is."""
        if not isinstance(out, Image | ImageBatch) or not isinstance(src, Image | ImageBatch):
            return out
        makes = self._makes.get(src.dtype)
        if makes is None or out is src:
            return None
        if out.dtype != makes:
            try:
                retype(out, makes)
            except ValueError:  # borrowed memory or a batch slot: it cannot change dtype
                return None
        return out

    def _overlay_batch(self, param: str, count: int) -> ImageBatch:
        """The overlay once per image of a batch (layer i over image i: one launch),
        made once per batch length."""
        overlay = self._overlays[param]
        return _OVERLAY_REPEATS.get_or_make((overlay, count), lambda: ImageBatch.from_images([overlay] * count))

    def describe(self) -> list[Any]:
        """``[name, kwargs]`` as given (overlay paths stay paths)."""
        return [self.name, self.given]


def _decode_overlay(step: str, param: str, path: str | os.PathLike, device: str) -> Image:
    """The image file given for an image parameter, decoded once (RGBA: blend and paste
    take an RGBA layer over RGB or RGBA images)."""
    try:
        image = read(path, device=device, mode="rgba")
    except (OSError, ValueError) as exc:
        raise ArgumentError(f"step {step!r}: {param}={str(path)!r} cannot be read as an image: {exc}") from None
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
        raise ArgumentError(f"pipeline file {str(path)!r} cannot be read as JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("steps")
    if not isinstance(data, list):
        raise ArgumentError(f"pipeline file {str(path)!r} must hold a list of steps or {{\"steps\": [...]}}")
    steps = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and isinstance(item.get("op"), str):
            kwargs = {k: v for k, v in item.items() if k != "op"}
            steps.append((item["op"], kwargs))
        elif isinstance(item, list) and len(item) in (1, 2) and isinstance(item[0], str):
            kwargs = item[1] if len(item) == 2 else {}
            if not isinstance(kwargs, dict):
                raise ArgumentError(f"step {i} of {str(path)!r}: the parameters must be an object, got {kwargs!r}")
            steps.append((item[0], dict(kwargs)))
        else:
            raise ArgumentError(f"step {i} of {str(path)!r} must be [name, {{params}}] or {{\"op\": name, ...}}, got {item!r}")
    return steps


# --------------------------------------------------------------------------- per-item runs


def carry_metadata(src: Any, result: Any) -> None:
    """Each result image carries its source image's ``metadata`` (the input file's EXIF,
    XMP and ICC profile, which the sink writes into the output). A reused output buffer
    holds an earlier batch's, so it is always set. Ops that change what the metadata
    says (``convert_colorspace``: the profile) are registered with ``sets_metadata`` and do
    it themselves.

    Example:
        >>> a, b = Image.empty(1, 1, device="cpu"), Image.empty(1, 1, device="cpu")
        >>> a.metadata = "m"; carry_metadata(a, b); b.metadata
        'm'
    """
    if result is src:
        return
    srcs = [src] if isinstance(src, Image) else list(src)
    outs = [result] if isinstance(result, Image) else list(result)
    for a, b in zip(srcs, outs):
        b.metadata = a.metadata


def run_steps_per_item(steps: Sequence[Step], images: Sequence[Image], stream: Any) -> list[Image | BaseException]:
    """Each image through ``steps`` alone (no reused outputs): its result, or the error
    that stopped it. The rare path taken when a batched step raised: it tells the bad
    items from the good ones, so one image a step rejects does not fail its batch.

    Example:
        >>> imgs = [Image.from_array(np.zeros((4, 4, 3), np.uint8)), Image.from_array(np.zeros((9, 9, 3), np.uint8))]
        >>> out = run_steps_per_item([Step(("crop", {"top": 5, "left": 5, "height": 2, "width": 2}), "cpu")], imgs, None)
        >>> type(out[0]).__name__, out[1].shape
        ('ArgumentError', (2, 2, 3))
    """
    results: list[Image | BaseException] = []
    for image in images:
        x: Any = image
        try:
            for step in steps:
                x = step(x, None, stream)
        except Exception as exc:  # noqa: BLE001 - the item's failure, reported with its reason
            x = exc
        results.append(x)
    return results


def _largest_int(value: Any) -> int:
    """The largest absolute int in ``value`` (nested lists, tuples and dicts; 0: none)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return abs(value)
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return max((_largest_int(v) for v in value), default=0)
    return 0


PROBE_MAX_SIDE = 4096  # the largest probe made (48 MiB of RGB): positions beyond it are judged per item


def _registered_steps(steps: Sequence[Step]) -> list[Step]:
    """The steps that call a registered op (callables are not probed: they may not take
    a single Image)."""
    ops = registry.registered()
    return [s for s in steps if s.name in ops and s.fn is ops[s.name].fn]


def _probe(steps: Sequence[Step], device: str, extra: tuple[int, int] = (0, 0)) -> Any:
    """``steps`` run once on an RGB uint8 probe of side 64 plus twice the largest int of
    their arguments (at most :data:`PROBE_MAX_SIDE`), ``extra`` added to (height, width);
    ArgumentError naming the step that refused it."""
    side = min(PROBE_MAX_SIDE, 64 + 2 * max((_largest_int(s.given) for s in steps), default=0))
    x: Any = Image.from_array(np.full((side + extra[0], side + extra[1], 3), 128, np.uint8), device="cpu").to(device)
    for step in steps:
        try:
            x = step(x, None, None)
        except (TypeError, ValueError) as exc:
            raise ArgumentError(f"step {step.name!r} cannot take {step.given}: {exc}") from None
    if device == "cuda":  # the probe ran on the current stream; the lanes use their own
        import cupy

        cupy.cuda.Device().synchronize()
    return x


def check_steps(steps: Sequence[Step], device: str) -> None:
    """Raise ValueError, before a run, for step arguments that would fail every image.

    Unknown names and parameters are caught when a :class:`Step` is made. Here the
    registered steps run once on a probe: an RGB uint8 image (the common input) whose
    side is 64 plus twice the largest int of the arguments (at most
    :data:`PROBE_MAX_SIDE`), so that every crop, pad or paste position the arguments name
    fits it; an error on the probe is then the arguments' fault (a string where a number
    goes, a negative sigma). Errors that depend on the image (a crop outside a smaller
    photo, a dtype or channel count an op refuses) fail only their items, during the run.
    Callable steps are not probed (they may not take a single Image).

    Example:
        >>> check_steps([Step(("crop", {"top": 350, "left": 0, "height": 100, "width": 100}), "cpu")], "cpu")
        >>> check_steps([Step(("crop", {"top": "a", "left": 0, "height": 2, "width": 2}), "cpu")], "cpu")
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: step 'crop' cannot take {'top': 'a', 'left': 0, 'height': 2, 'width': 2}: ...
    """
    named = _registered_steps(steps)
    if named:
        _probe(named, device)


def fixed_output_size(steps: Sequence[Step], device: str) -> tuple[int, int] | None:
    """The (height, width) every image has after ``steps``, or None where it depends on
    the input (no steps, ``resize_shorter`` alone, a callable step last, ...).

    Found by running the registered steps after the last callable one on two probes of
    different sizes and aspect ratios: the same output size from both is the steps'.

    Example:
        >>> fixed_output_size([Step(("resize_shorter", {"size": 64}), "cpu"), Step(("center_crop", {"size": [48, 40]}), "cpu")], "cpu")
        (48, 40)
        >>> fixed_output_size([Step(("resize_shorter", {"size": 64}), "cpu")], "cpu") is None
        True
    """
    tail = list(steps)
    while tail and len(_registered_steps(tail[-1:])) == 1:  # walk back over the registered steps
        tail.pop()
    tail = list(steps)[len(tail):]
    if not tail:
        return None
    try:
        sizes = {tuple(_probe(tail, device, extra).shape[:2]) for extra in ((0, 0), (24, 56))}
    except ValueError:
        return None  # the steps do not fit a probe: the size is judged per item
    return sizes.pop() if len(sizes) == 1 else None


# --------------------------------------------------------------------------- output rule

OUTPUT_MODES = ("keep", "rgb", "rgba", "gray")  # what each output image is (OutputRule's mode)
MODES = OUTPUT_MODES  # the name it had
_FORCED_CHANNELS = {"rgb": 3, "rgba": 4, "gray": 1}
_DECODE_MODE = {1: "gray", 3: "rgb", 4: "rgba"}  # the decoder's mode giving these channels


@dataclass(frozen=True)
class OutputRule:
    """What each output image is: its channels and bit depth, from the input's, ``mode``
    and what the output format ``fmt`` can store (:attr:`Format.channels`, ``dtypes``).

    ``mode="keep"`` (default): gray stays gray, alpha stays alpha, 16-bit stays 16-bit,
    where ``fmt`` stores them. ``"rgb"`` / ``"rgba"`` / ``"gray"``: every image is decoded
    so (the decoder's conversions: opaque alpha added, ITU-R 601 luma, alpha dropped for
    gray), except that ``"rgb"`` keeps an image's alpha through the steps and composites
    it onto ``background`` as ``keep`` does (Pillow's ``alpha_composite`` onto the
    background colour, not the colour channels alone); a forced mode the format cannot
    store (``rgba`` for JPEG) is refused here. Where the format cannot store what an image
    is:

    * alpha: composited onto ``background`` (RGB 0..255, default white), after the steps:
      ``round((c * a + bg * (max - a)) / max)``;
    * 16-bit: rounded to 8-bit, ``round(v * 255 / 65535)``, before the steps (so steps
      that take only uint8 see uint8);
    * gray in a format without gray (WebP): the gray value in R, G and B.

    A step that refuses an image's dtype or channel count (most compose ops take only
    uint8) fails that item with the op's reason; nothing is converted behind its back.

    Example:
        >>> from gpuimg.codec import formats
        >>> rule = OutputRule(formats.lookup("jpeg"))
        >>> rule.decode_args(4, "uint16"), rule.channels_for(4), rule.keeps_16bit
        (('rgba', 'any'), 3, False)
        >>> OutputRule(formats.lookup("jpeg"), mode="rgba")
        Traceback (most recent call last):
        ...
        gpuimg.errors.ArgumentError: mode='rgba' cannot be written as JPEG, which stores 1 or 3 channels...
    """

    fmt: formats.Format
    mode: str = "keep"
    background: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        check_choice(self.mode, "mode", OUTPUT_MODES)
        bg = tuple(self.background) if isinstance(self.background, Sequence) and not isinstance(self.background, str) else ()
        if len(bg) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in bg):
            raise ArgumentError(f"background={self.background!r} must be three ints 0..255 (R, G, B)")
        object.__setattr__(self, "background", bg)
        forced = _FORCED_CHANNELS.get(self.mode)
        if forced is not None and forced not in self.fmt.channels:
            stores = " or ".join(str(c) for c in self.fmt.channels)
            raise ArgumentError(f"mode={self.mode!r} cannot be written as {self.fmt.title}, which stores {stores} channels; "
                                f"use mode 'keep' or another format")

    @property
    def keeps_16bit(self) -> bool:
        return self.fmt.keeps_16bit

    def decode_args(self, channels: int, dtype: Any) -> tuple[str, str]:
        """The decoder's (mode, depth) for a group of images that are ``channels`` /
        ``dtype`` as stored (the "unchanged" plan): 8-bit RGB gets exactly ("rgb",
        "uint8"), the pipeline's decode before modes existed."""
        forced = _FORCED_CHANNELS.get(self.mode, channels)
        if self.mode == "rgb" and channels == 4:  # alpha kept, for after_steps to composite
            forced = 4
        return _DECODE_MODE[forced], "any" if str(dtype) == "uint16" else "uint8"

    def channels_for(self, channels: int) -> int:
        """The channels an image of ``channels`` is written with (3 where ``fmt`` cannot
        store them, or under mode "rgb": alpha composited, gray repeated)."""
        if self.mode == "rgb":
            return 3
        return channels if channels in self.fmt.channels else 3

    def before_steps(self, batch: ImageBatch, out: ImageBatch | None, stream: Any) -> ImageBatch:
        """``batch`` (no copy) or, for 16-bit the format cannot store, 8-bit in ``out``."""
        if batch.dtype != np.uint16 or self.keeps_16bit:
            return batch
        return _convert(batch, out, [s[2] for s in batch.shapes], True, self.background, stream)

    def after_steps(self, batch: ImageBatch, out: ImageBatch | None, stream: Any) -> ImageBatch:
        """``batch`` (no copy) when the format stores every image as it is (the common
        case: one host-side look), else the stored form in ``out``."""
        to8 = batch.dtype == np.uint16 and not self.keeps_16bit
        uniform = batch.uniform_channels
        if uniform is not None and uniform == self.channels_for(uniform) and not to8:
            return batch
        return _convert(batch, out, [self.channels_for(s[2]) for s in batch.shapes], to8, self.background, stream)


def _convert(batch: ImageBatch, out: ImageBatch | None, channels: list[int], to8: bool, background: tuple[int, int, int],
             stream: Any) -> ImageBatch:
    """``batch`` with image i in ``channels[i]`` (alpha composited onto ``background``,
    gray repeated) and, if ``to8``, 16-bit rounded to 8-bit, into ``out`` (re-laid out).
    Per image array work: only images the output format cannot store come here."""
    dtype = np.dtype(np.uint8) if to8 else batch.dtype
    shapes = [(h, w, c) for (h, w, _), c in zip(batch.shapes, channels)]
    if out is None:
        out = ImageBatch.empty(shapes, dtype=dtype, device=batch.device)
    else:
        out.set_shapes(shapes, dtype=dtype)
    top = 65535 if batch.dtype == np.uint16 else 255
    xp = batch.xp
    with use_stream(batch.device, stream):
        bg = xp.asarray(background, dtype=xp.uint64) * (top // 255)
        for src, dst, c in zip(batch, out, channels):
            a = src.array
            if a.shape[2] == 4 and c != 4:  # round((c*a + bg*(top-a)) / top); top is odd: no ties
                alpha = a[..., 3:4].astype(xp.uint64)
                mixed = a[..., :3].astype(xp.uint64) * alpha + bg * (top - alpha)
                a = (2 * mixed + top) // (2 * top)
            elif a.shape[2] == 1 and c == 3:
                a = xp.broadcast_to(a, (*a.shape[:2], 3))
            elif a.shape[2] != c:
                raise ArgumentError(f"cannot store a {a.shape[2]}-channel image as {c} channels")
            if to8:  # round(v * 255 / 65535) = round(v / 257); 257 is odd: no ties
                a = (2 * a.astype(xp.uint32) + 257) // 514
            xp.copyto(dst.array, a, casting="unsafe")
    return out
