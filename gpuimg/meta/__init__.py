"""An image's metadata and the parsers of its byte formats, below the codec and the ops.

- :mod:`~gpuimg.meta.metadata`: :class:`Metadata` (EXIF, XMP, ICC profile), what every
  Image carries, and :func:`for_output`, what an output keeps of it;
- :mod:`~gpuimg.meta.exif`: EXIF blocks: the orientation and its view, tags by name, edits;
- :mod:`~gpuimg.meta.xmp`: XMP packets: the ``tiff:Orientation`` they state, and that
  orientation set upright for outputs;
- :mod:`~gpuimg.meta.icc`: ICC profile headers: valid or junk, colour space, description;
- :mod:`~gpuimg.meta.tiff_ifd`: TIFF-structured directories, read from hostile bytes
  and written back.

Finding these parts inside a file, and putting them back, is the containers' job
(:mod:`gpuimg.codec.containers`).

Example:
    >>> Metadata(xmp="<x/>").kept("icc").empty
    True
"""

from __future__ import annotations

from .metadata import EMPTY, KEEP, Metadata, assemble, for_output

__all__ = ["Metadata", "KEEP", "EMPTY", "assemble", "for_output"]
