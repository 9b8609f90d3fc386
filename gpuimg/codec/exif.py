"""EXIF: the block's reading lives in :mod:`gpuimg.meta.exif`, a file's orientation in
:func:`gpuimg.codec.containers.exif_orientation`; these are the names first published here."""

from ..meta.exif import GPS_TAG_NAMES, TAG_NAMES, edited, oriented, swaps_axes, tags
from .containers import exif_orientation as orientation

__all__ = ["orientation", "swaps_axes", "oriented", "tags", "edited", "TAG_NAMES", "GPS_TAG_NAMES"]
