"""The command line's value parsers and its op flags (one flag per common op)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import check_choice
from ..pipeline.files import OUTPUT_FORMATS, output_format


# --format takes every spelling of an output format, any case (files.output_format, from
# gpuimg.codec.formats); the help shows one per format, the first that is also a file
# extension (jpeg, ..., jp2, bmp).
_FORMAT_SHOWN = "{" + ",".join(f.extensions[0].lstrip(".") for f in OUTPUT_FORMATS) + "}"

# --------------------------------------------------------------------------- value parsers


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value

def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value

def _size(text: str) -> tuple[int, int]:
    """'HxW' or 'N' (a square) as (height, width)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected a size HxW (e.g. 224x224) or N, got {text!r}")
    return values[0], values[1]

def _box(text: str) -> tuple[int, int, int, int]:
    """'TOP,LEFT,HxW' as (top, left, height, width)."""
    try:
        top, left, size = text.split(",")
        height, width = _size(size)
        return int(top), int(left), height, width
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"expected TOP,LEFT,HxW (e.g. 10,20,224x224), got {text!r}") from None

def _format_name(text: str) -> str:
    """An output format's canonical name from any of its spellings (``jpg`` -> ``jpeg``)."""
    try:
        return output_format(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} ({exc})") from None

def _name_template(text: str) -> str:
    """A --name template, checked once here (unknown fields, separators) so a bad one is a
    usage error before any file is listed."""
    from ..pipeline.files import NameTemplate, NameTemplateError

    try:
        NameTemplate(text)
    except NameTemplateError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text

def _flip_axis(text: str) -> str:
    try:
        return check_choice(text, "--flip", ("h", "v", "hv"), "h (horizontal), v (vertical) or hv")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

def _overlay(text: str, with_opacity: bool) -> dict[str, Any]:
    """'FILE', 'FILE@TOP,LEFT' (or with ',OPACITY' for blend) as the op's parameters."""
    path, at, place = text.rpartition("@")
    if not at:
        path, place = text, ""
    counts = (0, 2, 3) if with_opacity else (0, 2)
    try:
        values = [float(v) for v in place.split(",")] if place else []
        ok = bool(path) and len(values) in counts and all(v == int(v) for v in values[:2]) \
            and (len(values) < 3 or 0 <= values[2] <= 1)
    except ValueError:
        ok = False
    if not ok:
        form = "FILE[@TOP,LEFT[,OPACITY]] (opacity in 0..1)" if with_opacity else "FILE[@TOP,LEFT]"
        raise argparse.ArgumentTypeError(f"expected {form}, e.g. logo.png@10,20, got {text!r}")
    params: dict[str, Any] = {"src": path, "top": int(values[0]) if values else 0, "left": int(values[1]) if values else 0}
    if len(values) == 3:
        params["opacity"] = values[2]
    return params

def _blend_overlay(text: str) -> dict[str, Any]:
    return _overlay(text, True)

def _paste_overlay(text: str) -> dict[str, Any]:
    return _overlay(text, False)

# --------------------------------------------------------------------------- op flags

# One flag per common op: (flag, metavar, value parser, help, step builder). The builder
# turns the parsed value into (op name, kwargs) in the ops' own parameter names.
OpFlag = tuple[str, str | None, Callable[[str], Any] | None, str, Callable[[Any], tuple[str, dict[str, Any]]]]

OP_FLAGS: tuple[OpFlag, ...] = (
    ("--resize-shorter", "N", _positive_int, "scale so the shorter side is N (antialiased)",
     lambda v: ("resize_shorter", {"size": v})),
    ("--resize", "HxW", _size, "resize to exactly HxW (antialiased)", lambda v: ("resize", {"size": v})),
    ("--center-crop", "HxW", _size, "crop HxW from the centre", lambda v: ("center_crop", {"size": v})),
    ("--crop", "T,L,HxW", _box, "crop HxW at (top, left)",
     lambda v: ("crop", {"top": v[0], "left": v[1], "height": v[2], "width": v[3]})),
    ("--flip", "h|v|hv", _flip_axis, "flip horizontally, vertically or both",
     lambda v: ("flip", {"horizontal": "h" in v, "vertical": "v" in v})),
    ("--blur", "SIGMA", _positive_float, "gaussian blur of standard deviation SIGMA",
     lambda v: ("gaussian_blur", {"sigma": v})),
    ("--sharpen", "A", _positive_float, "sharpen (unsharp mask) of amount A", lambda v: ("sharpen", {"amount": v})),
    ("--gray", None, None, "convert to grayscale", lambda v: ("to_gray", {})),
    ("--blend", "FILE[@T,L[,OP]]", _blend_overlay,
     "alpha-blend image FILE over each image at (top T, left L; default 0,0), its alpha scaled by "
     "opacity OP in 0..1 (a watermark); FILE is decoded once", lambda v: ("blend", v)),
    ("--paste", "FILE[@T,L]", _paste_overlay, "copy image FILE into each image at (top T, left L) without blending",
     lambda v: ("paste", v)),
    # colour
    ("--to-srgb", None, None, "convert colours from each image's embedded ICC profile to sRGB (a LittleCMS "
     "transform applied on the GPU; needs gpuimg[color]; CMYK JPEGs through their CMYK profile); the outputs "
     "carry the sRGB profile",
     lambda v: ("convert_colorspace", {"to": "srgb"})),
    ("--thumbnail", "N", _positive_int, "shrink to fit within NxN keeping the aspect ratio (never enlarging; "
     "Pillow's thumbnail size rule), colours to sRGB from the embedded profile", lambda v: ("fit_thumbnail", {"size": v})),
)

class _AppendStep(argparse.Action):
    """Records op flags in the order given on the command line (order matters for ops)."""

    def __init__(self, *args: Any, build: Callable[[Any], tuple[str, dict[str, Any]]], **kwargs: Any):
        self.build = build
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        steps = list(getattr(namespace, "steps", None) or [])
        steps.append(self.build(values))
        namespace.steps = steps

def _quality(text: str) -> int:
    value = _positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"expected a quality in 1..100, got {text!r}")
    return value

def _rgb(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        values = tuple(int(v) for v in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise argparse.ArgumentTypeError(f"expected R,G,B with each 0..255, got {text!r}")
    return values  # type: ignore[return-value]
