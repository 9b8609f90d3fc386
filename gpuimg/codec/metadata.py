"""An image's metadata (EXIF, XMP, ICC profile), read from its container on the host:
:class:`~gpuimg.meta.Metadata` lives in :mod:`gpuimg.meta`, :func:`read` is
:func:`gpuimg.codec.containers.read_metadata`."""

from ..meta.exif import PREFIX as JPEG_EXIF
from ..meta.metadata import EMPTY, KEEP, Metadata
from .containers import read_metadata as read
from .containers.jpeg import ICC_ID as JPEG_ICC
from .containers.jpeg import XMP_ID as JPEG_XMP
from .containers.png import XMP_KEYWORD as PNG_XMP_KEYWORD

__all__ = ["Metadata", "read", "KEEP", "EMPTY", "JPEG_EXIF", "JPEG_XMP", "JPEG_ICC", "PNG_XMP_KEYWORD"]
