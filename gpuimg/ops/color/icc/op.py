"""The op: :func:`convert_colorspace`, pixels from their ICC profile's colours to sRGB
(the tables of :mod:`.tables`, applied by :mod:`.kernel` on the GPU and :mod:`.numpy_twin`
on the CPU).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from ....errors import ArgumentError, check_choice
from ...registry import register_op
from ..._engine.args import Source, check_src
from ..._engine.batch import pairs, prepare_out, same_memory
from . import kernel
from .engine import srgb_profile
from .numpy_twin import apply_cmyk_numpy, apply_lut_numpy
from .tables import INTENTS, CmykTable, ProfileTable, cmyk_lut, lut

__all__ = ["convert_colorspace", "rgb_profile"]


def rgb_profile(meta: Any) -> bytes | None:
    """The ICC profile in ``meta`` (an image's metadata) when it describes RGB pixels, else
    None. A CMYK JPEG's profile does not describe the RGB pixels of its default decode
    (nvImageCodec converts CMYK to RGB without it): such images are taken as they are;
    ``gpuimg.read(..., mode="cmyk")`` keeps the ink channels for the profile.

    Example:
        >>> rgb_profile(None) is None
        True
    """
    icc = getattr(meta, "icc", None)
    return icc if icc is not None and icc[16:20] == b"RGB " else None


class _Job(NamedTuple):
    kind: str  # "copy", "rgb" or "cmyk"
    profile: bytes | None  # the profile the pixels are in (None for "cmyk": Pillow's naive conversion)


def _jobs_of(src: Source, profile: Any) -> list[_Job]:
    """What each image of ``src`` needs: ``profile`` given (one for all, or a list; None
    in it: left as it is), else each image's own (``img.metadata.icc``, what gpuimg.read
    found). An image is CMYK when its metadata says so (``mode="cmyk"`` decodes) or the
    profile given for it is a CMYK profile; it then takes its CMYK profile, or none."""
    images = list(src) if not hasattr(src, "array") else [src]
    if profile is None:
        given: list[bytes | None] = [None] * len(images)
    elif isinstance(profile, bytes | bytearray | memoryview):
        given = [bytes(profile)] * len(images)
    else:
        given = [None if p is None else bytes(p) for p in profile]
        if len(given) != len(images):
            raise ArgumentError(f"profile= has {len(given)} entries for {len(images)} images")
    jobs = []
    for im, p in zip(images, given):
        meta = getattr(im, "metadata", None)
        if getattr(meta, "cmyk", False) or (p is not None and p[16:20] == b"CMYK"):
            if im.channels != 4 or im.dtype != np.uint8:
                raise ArgumentError(f"a CMYK image must be 4 uint8 ink channels, got {im.channels} channels of {im.dtype.name}")
            own = getattr(meta, "icc", None)
            jobs.append(_Job("cmyk", p if p is not None else (own if own is not None and own[16:20] == b"CMYK" else None)))
        elif profile is None:
            own = rgb_profile(meta)
            jobs.append(_Job("copy", None) if own is None else _Job("rgb", own))
        else:
            jobs.append(_Job("copy", None) if p is None else _Job("rgb", p))
    return jobs


def _conversion_intent(kwargs: Mapping[str, Any]) -> str:
    return kwargs.get("intent", "relative")


# A pipeline step sets its results' metadata (the profile they are now in); a pipeline
# running it decodes CMYK JPEGs to their inks and converts them with this intent.
@register_op(sets_metadata=True, colour_intent=_conversion_intent)
def convert_colorspace(
    src: Source,
    to: str = "srgb",
    profile: Any = None,
    *,
    intent: str = "relative",
    embed: str = "srgb",
    out: Source | None = None,
    stream: Any = None,
) -> Source:
    """Pixels from their ICC profile's colours to sRGB: a LittleCMS transform made into a
    table once per profile (:class:`ProfileTable` for RGB, :class:`CmykTable` for CMYK),
    applied with tetrahedral interpolation, ONE launch per Image or ImageBatch (RGB, RGBA
    and CMYK images and different profiles mixed); RGB within 1 level of LittleCMS
    (``ImageCms.profileToProfile``, same intent) for every 8-bit colour, CMYK within 2
    (but for a few colours in a million, see :class:`CmykTable`).

    ``profile``: ICC bytes (one for every image, or a list with one per image; None in
    the list: left as it is); default: each image's own (``img.metadata.icc``; an RGB
    image without one, or with a CMYK JPEG's profile (its default decode is RGB made
    without it), is taken to be sRGB already). CMYK images (4 uint8 ink channels, 255 =
    full ink: ``gpuimg.read(path, mode="cmyk")``, whose metadata says ``cmyk``; or any
    4-channel image given a CMYK profile) always come out as 3-channel sRGB (None for one
    in the list: its own profile); one without a profile as Pillow's ``convert("RGB")``
    makes it (see :func:`cmyk_lut`). ``to``:
    "srgb" (the one target). ``intent``: "relative" (colorimetric, default) or
    "perceptual". ``embed``: the profile the results carry in their ``metadata`` (kept by
    :func:`gpuimg.write` and the pipeline): "srgb" (the sRGB profile) or "none". RGB or
    RGBA, uint8 or uint16 (alpha kept; uint16 is interpolated between LittleCMS's 8-bit
    values, so it is as exact as 8-bit, not finer). A CMYK image cannot convert in place
    (``out=src``: 4 channels in, 3 out).

    Raises:
        ColorEngineMissingError: Pillow's ImageCms (LittleCMS) is missing; names the
            ``gpuimg[color]`` extra.
        ArgumentError: a ``profile`` list of another length than the batch, a CMYK image
            that is not 4 uint8 ink channels, ``out=src`` for a CMYK image, or a ``to``,
            ``intent`` or ``embed`` outside the choices (naming the allowed ones).

    Example:
        >>> import numpy as np, gpuimg
        >>> img = gpuimg.Image.from_array(np.array([[[255, 0, 0]]], np.uint8))
        >>> convert_colorspace(img, profile=srgb_profile()).numpy()[0, 0].tolist()
        [255, 0, 0]
        >>> from gpuimg.meta import Metadata
        >>> ink = gpuimg.Image.from_array(np.array([[[0, 255, 255, 0]]], np.uint8))  # magenta + yellow
        >>> ink.metadata = Metadata(cmyk=True)  # no profile: Pillow's conversion
        >>> convert_colorspace(ink).numpy()[0, 0].tolist()
        [255, 0, 0]
    """
    check_choice(to, "to", ("srgb",), "a target colour space")
    check_choice(embed, "embed", ("srgb", "none"), "a profile to embed")
    check_choice(intent, "intent", INTENTS, "a rendering intent")
    check_src(src, channels=(3, 4), dtypes=("uint8", "uint16"))
    jobs = _jobs_of(src, profile)
    keys: dict[tuple, int] = {}  # (kind, profile digest) -> its table's place in its upload
    tables: list[ProfileTable] = []
    cmyk_tables: list[CmykTable] = []
    which = []  # per image: an RGB table, -1 (copied) or -2 - a CMYK table
    for job in jobs:
        if job.kind == "copy":
            which.append(-1)
            continue
        digest = b"naive" if job.profile is None else hashlib.sha256(job.profile).digest()
        key = (job.kind, digest)
        if key not in keys:
            if job.kind == "rgb":
                keys[key] = len(tables)
                tables.append(lut(digest, job.profile, intent))  # type: ignore[arg-type]
            else:
                keys[key] = len(cmyk_tables)
                cmyk_tables.append(cmyk_lut(job.profile, intent))
        which.append(keys[key] if job.kind == "rgb" else -2 - keys[key])
    shapes = None
    if cmyk_tables:
        if out is not None and same_memory(src, out):
            raise ArgumentError("out=src cannot take CMYK images (4 ink channels in, 3 sRGB channels out); pass out=None")
        images = list(src) if not hasattr(src, "array") else [src]
        hwc = [(im.height, im.width, 3 if job.kind == "cmyk" else im.channels) for im, job in zip(images, jobs)]
        shapes = hwc if not hasattr(src, "array") else hwc[0]
    result = prepare_out(src, out, shapes)
    if src.device == "cpu":
        for (s, o, _), t in zip(pairs(src, result), which):
            if t >= 0:
                o.array[...] = apply_lut_numpy(s.array, tables[t])
            elif t == -1:
                o.array[...] = s.array
            else:
                o.array[...] = apply_cmyk_numpy(s.array, cmyk_tables[-2 - t])
    else:
        kernel.convert_on_gpu(src, result, tables, cmyk_tables, (tuple(keys), intent), which, stream)
    _carry_metadata(src, result, embed)
    return result


def _carry_metadata(src: Source, out: Source, embed: str) -> None:
    """The results carry their sources' metadata with the profile they now are in (and
    CMYK images are RGB now)."""
    icc = srgb_profile() if embed == "srgb" else None
    srcs = [src] if hasattr(src, "array") else list(src)
    outs = [out] if hasattr(out, "array") else list(out)
    for s, o in zip(srcs, outs):
        meta = getattr(s, "metadata", None)
        if meta is None:
            from ....meta import Metadata

            meta = Metadata()
        o.metadata = replace(meta, icc=icc, cmyk=False)
