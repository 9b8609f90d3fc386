"""An image's metadata (EXIF, XMP, ICC profile): what every Image carries, and what an
output keeps of it (:func:`for_output`).

The containers find the parts in a file (:func:`gpuimg.codec.metadata.read`) and put
them back into one (:func:`gpuimg.codec.embed.embed`); :func:`assemble` is where the
found parts are checked and the malformed ones named in :attr:`Metadata.problems`.

Example:
    >>> assemble({"icc": b"junk"}, []).problems
    ('the ICC profile is 4 bytes, shorter than its 128-byte header',)
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from ..errors import ArgumentError, check_choice
from . import exif as exif_mod
from . import icc as icc_mod
from . import tiff_ifd
from . import xmp as xmp_mod

__all__ = ["Metadata", "KEEP", "EMPTY", "assemble", "for_output"]

# keep= choices: everything, the ICC profile only (privacy: no EXIF, GPS or XMP), all but
# the GPS IFD, nothing.
KEEP = ("all", "icc", "no-gps", "none")


@dataclass(frozen=True)
class Metadata:
    """The metadata of one image.

    ``exif``: the EXIF block, TIFF-structured (starts ``II*\\0`` / ``MM\\0*``, no
    ``Exif\\0\\0`` prefix), or None. ``xmp``: the XMP packet (text) or None. ``icc``: the
    ICC profile's bytes or None. ``problems``: what was found malformed and left out.
    ``orientation_applied``: the decoded pixels were turned upright by the
    :attr:`orientation` (an output then says Orientation 1, in its EXIF and its XMP). ``cmyk``: the pixels are a CMYK
    JPEG's four ink channels (``gpuimg.read(..., mode="cmyk")``), which
    :func:`~gpuimg.ops.color.convert_colorspace` turns into sRGB.

    Example:
        >>> Metadata().empty, Metadata(xmp="<x/>").kept("icc").empty
        (True, True)
    """

    exif: bytes | None = None
    xmp: str | None = None
    icc: bytes | None = None
    problems: tuple[str, ...] = ()
    orientation_applied: bool = False
    cmyk: bool = False

    @property
    def empty(self) -> bool:
        return self.exif is None and self.xmp is None and self.icc is None

    @cached_property
    def exif_tags(self) -> dict[str, Any]:
        """The EXIF tags by name (:func:`gpuimg.meta.exif.tags`); {} without EXIF.

        Example:
            >>> Metadata().exif_tags
            {}
        """
        if self.exif is None:
            return {}
        try:
            return exif_mod.tags(self.exif)
        except (tiff_ifd.IfdError, struct.error, ValueError):
            return {}  # read() checked the block; a failure here is a value gpuimg cannot name

    @property
    def gps(self) -> bool:
        """The EXIF holds a GPS IFD (a location)."""
        return "GPSInfo" in self.exif_tags

    @cached_property
    def orientation(self) -> int:
        """The orientation as stored (1-8; 1 when absent or invalid): the EXIF
        Orientation tag where the EXIF has one, else the XMP ``tiff:Orientation``
        (:func:`gpuimg.meta.exif.orientation_of`, the reading the decoder applies;
        :func:`gpuimg.meta.exif.decide_orientation` gives the rule, after Pillow).

        Example:
            >>> Metadata(xmp='<d tiff:Orientation="6"/>').orientation
            6
        """
        return exif_mod.orientation_of(self.exif, self.xmp)

    @cached_property
    def icc_description(self) -> str | None:
        """The ICC profile's description tag ("sRGB IEC61966-2.1"), or None."""
        return icc_mod.description(self.icc) if self.icc is not None else None

    def kept(self, keep: str) -> Metadata:
        """What ``keep`` (one of :data:`KEEP`) leaves of this metadata: "all"; "icc" (the
        profile only); "no-gps" (the EXIF without its GPS IFD, and no XMP packet that
        mentions GPS); "none".

        Example:
            >>> Metadata(icc=b"x", xmp="<x/>").kept("icc").xmp is None
            True
        """
        if keep == "all":
            return self
        if keep == "none":
            return Metadata(orientation_applied=self.orientation_applied, cmyk=self.cmyk)
        if keep == "icc":
            return Metadata(icc=self.icc, orientation_applied=self.orientation_applied, cmyk=self.cmyk)
        if keep == "no-gps":
            block = self.exif
            if block is not None and self.gps:
                block = exif_mod.edited(block, drop_gps=True)
            # An XMP packet can hold the location too (exif:GPSLatitude, ...): one that
            # mentions GPS goes with it rather than be edited as text.
            xmp = None if self.xmp is not None and "GPS" in self.xmp else self.xmp
            return replace(self, exif=block, xmp=xmp)
        raise ArgumentError(f"keep={keep!r} is not a metadata choice; use one of {KEEP}")

    def __repr__(self) -> str:
        parts = []
        if self.exif is not None:
            parts.append(f"exif={len(self.exif)} bytes")
        if self.xmp is not None:
            parts.append(f"xmp={len(self.xmp)} chars")
        if self.icc is not None:
            parts.append(f"icc={self.icc_description or len(self.icc)!r}")
        if self.problems:
            parts.append(f"problems={list(self.problems)}")
        if self.cmyk:
            parts.append("cmyk")
        return f"Metadata({', '.join(parts)})"


EMPTY = Metadata()


def assemble(found: dict[str, Any], problems: list[str]) -> Metadata:
    """The Metadata of the parts a container reader found (``found``: raw "exif" block,
    "xmp" bytes, "icc" profile): the parts that hold up, the others left out and named
    after ``problems``. Never raises.

    Example:
        >>> assemble({"xmp": b"<x/>"}, []).xmp
        '<x/>'
    """
    block = found.get("exif")
    # its directories must hold (the tags' values are decoded on first use)
    why = exif_mod.block_problem(block) if block is not None else None
    if why is not None:
        problems.append(f"the EXIF block is malformed ({why})")
        block = None
    xmp = xmp_mod.text(found.get("xmp"))
    if xmp is None and found.get("xmp") is not None:
        problems.append("the XMP packet is not UTF-8 text")
    profile = found.get("icc")
    if profile is not None:
        why = icc_mod.problem(profile)
        if why:
            problems.append(why)
            profile = None
    return Metadata(block, xmp, profile, tuple(problems))


def for_output(meta: Metadata | None, keep: str = "all", size: tuple[int, int] | None = None) -> Metadata:
    """What an output keeps of ``meta`` under ``keep`` ("all", "icc", "no-gps", "none"):
    the EXIF without its thumbnail, its Orientation 1 when the pixels were turned
    upright (and the XMP's ``tiff:Orientation`` with it, set to 1 as the EXIF's is,
    rather than deleted as Pillow's exif_transpose does: :func:`gpuimg.meta.xmp.upright`),
    its pixel dimensions the
    output's ``size`` = (height, width) when given. An EXIF block that cannot be edited
    is left out (with a warning).

    Example:
        >>> for_output(Metadata(icc=b"p", xmp="<x/>"), "icc").xmp is None
        True
    """
    check_choice(keep, "keep", KEEP, "a metadata choice")
    if meta is None:
        return Metadata()
    if meta.orientation_applied and meta.xmp is not None:
        meta = replace(meta, xmp=xmp_mod.upright(meta.xmp))
    if meta.exif is None:
        return meta.kept(keep)
    try:
        out = meta.kept(keep)
        block = exif_mod.edited(out.exif, reset_orientation=out.orientation_applied, size=size) if out.exif is not None else None
    except (tiff_ifd.IfdError, struct.error, ValueError) as exc:
        warnings.warn(f"the EXIF block is left out of the output: it cannot be edited ({exc})", stacklevel=2)
        out, block = replace(meta, exif=None).kept(keep), None
    return replace(out, exif=block)

